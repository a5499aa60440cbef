"""The plugin LMCache's MP server loads, driven through its contract methods from Python as
LMCache's NativeConnectorL2Adapter drives it (submit, wait on event_fd, drain_completions),
against a memcpy of the same bytes into the same buffers in the same run (numpy's copyto, one
thread). bench/lmcache_bench.cc measures the C++ object under it.

    PYTHONPATH=build/release/python /usr/bin/python3 bench/lmcache_native_bench.py [--reps N]

Goals: batched get of 32 x 2 MiB >= 0.9x memcpy, batched set >= 0.8x, and the latency of one
64 KiB get from submit until drain_completions returns it after the eventfd turned readable
< 20 us at p99.
"""
import argparse
import select
import statistics
import time

import numpy as np
from cxlkv.lmcache_native import CxlkvConnector


def wait(c, fid):
    while True:
        select.select([c.event_fd()], [], [], 10)
        for done in c.drain_completions():
            if done[0] == fid:
                return done


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--ops", type=int, default=20000, help="64 KiB gets timed for the latency")
    a = ap.parse_args()
    c = CxlkvConnector(tiers=[{"source": "dram", "capacity": "256M"}], chunk_sizes=["2M", "64K"])
    n, size = 32, 2 << 20
    src = [np.random.default_rng(i).integers(0, 256, size, dtype=np.uint8) for i in range(n)]
    dst = [np.zeros(size, dtype=np.uint8) for _ in range(n)]
    keys = [f"bench/model@00000001@0@{i:032x}" for i in range(n)]
    src_mv = [memoryview(x) for x in src]
    dst_mv = [memoryview(x) for x in dst]
    get_s, set_s, mem_s = [], [], []
    for r in range(a.reps + 1):  # the first round warms the slots up
        t0 = time.perf_counter()
        done = wait(c, c.submit_batch_set(keys, src_mv))
        t_set = time.perf_counter() - t0
        assert done[1] and all(done[3]), done[2]
        t0 = time.perf_counter()
        done = wait(c, c.submit_batch_get(keys, dst_mv))
        t_get = time.perf_counter() - t0
        assert done[1] and all(done[3]), done[2]
        assert all(np.array_equal(s, d) for s, d in zip(src, dst))
        t0 = time.perf_counter()
        for s, d in zip(src, dst):
            np.copyto(d, s)
        t_mem = time.perf_counter() - t0
        assert all(wait(c, c.submit_batch_delete(keys))[3])
        if r:
            get_s.append(t_get)
            set_s.append(t_set)
            mem_s.append(t_mem)
    gb = n * size / 1e9
    get, put, mem = gb / statistics.median(get_s), gb / statistics.median(set_s), \
        gb / statistics.median(mem_s)
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(f"batched get, 32 x 2 MiB, from Python: {get:.2f} GB/s, {get / mem:.2f}x memcpy "
          f"({mem:.2f} GB/s, one thread; goal >= 0.90x: {met(get / mem >= 0.9)})")
    print(f"batched set, 32 x 2 MiB, from Python: {put:.2f} GB/s, {put / mem:.2f}x memcpy "
          f"(goal >= 0.80x: {met(put / mem >= 0.8)})")
    small = np.random.default_rng(7).integers(0, 256, 64 << 10, dtype=np.uint8)
    out = memoryview(np.zeros(64 << 10, dtype=np.uint8))
    key = ["bench/model@00000001@0@" + "ab" * 16]
    assert all(wait(c, c.submit_batch_set(key, [memoryview(small)]))[3])
    lat = []
    for i in range(a.ops + 200):
        t0 = time.perf_counter()
        done = wait(c, c.submit_batch_get(key, [out]))
        t = time.perf_counter() - t0
        assert done[3][0]
        if i >= 200:
            lat.append(t * 1e6)
    lat.sort()
    p = lambda q: lat[int(q * (len(lat) - 1))]  # noqa: E731
    print(f"completion latency from Python, one 64 KiB get, submit to drained ({a.ops} ops): "
          f"p50 {p(0.5):.1f} us, p99 {p(0.99):.1f} us (goal < 20 us: {met(p(0.99) < 20)}), "
          f"p99.9 {p(0.999):.1f} us")
    c.close()


if __name__ == "__main__":
    main()
