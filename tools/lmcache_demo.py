"""LMCache's own MP-mode code over a cxlkv pool, replaying the Mooncake conversation trace, with
a kill -9 of the process halfway: the hits that survive the restart.

Run through tools/lmcache_demo.sh (it builds cxlkv and finds LMCache's code in the kit):

    tools/lmcache_demo.sh [--requests N] [--chunk-kib K] [--dir DIR] [--trace PATH]

Each request of the trace is served as LMCache's MP server serves it from its L2: its prompt's
256-token chunks (two per 512-token trace block) are looked up in order through LMCache's own
NativeConnectorL2Adapter (built by LMCache's native_plugin factory from the --l2-adapter JSON,
over cxlkv.lmcache_native.CxlkvConnector); the cached prefix is loaded into LMCache's host
buffers and every byte compared with what was stored; the chunks after it are stored. The first
half of the requests runs in one process, which is killed with SIGKILL; the second half runs in
a new process on the same pool. The same is then run with a volatile DRAM tier, which is what
every LMCache L2 tier of today gives after a restart.
"""
import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def use_kit(kit):
    sys.path[:0] = [os.path.join(kit, "shims")] + [os.path.join(kit, "upstream", t)
                                                   for t in ("mp", "g2b")]
    import kit_torch_float8  # noqa: F401


def chunk_keys(hash_ids):
    """Two 256-token chunks per 512-token block; a chunk's identity is its block's (prefix-
    chained, as the trace's ids are) and its half."""
    return [(h, half) for h in hash_ids for half in (0, 1)]


def payload(chunk, size):
    import numpy as np
    seed = int.from_bytes(hashlib.blake2b(repr(chunk).encode(), digest_size=8).digest(), "big")
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def phase(args):
    """One process's share of the trace; prints one JSON line, then waits to be killed."""
    use_kit(args.kit)
    import argparse as ap
    import numpy as np
    import torch
    from lmcache.v1.distributed.api import MemoryLayoutDesc, ObjectKey
    from lmcache.v1.distributed.l2_adapters import create_l2_adapter
    from lmcache.v1.distributed.l2_adapters.config import (add_l2_adapters_args,
                                                           parse_args_to_l2_adapters_config)
    from lmcache.v1.memory_management import HostMemoryAllocator, MemoryFormat
    sys.path.insert(0, os.path.join(ROOT, "tests", "lmcache"))

    t0 = time.monotonic()
    parser = ap.ArgumentParser()
    add_l2_adapters_args(parser)
    (cfg,) = parse_args_to_l2_adapters_config(
        parser.parse_args(["--l2-adapter", args.spec])).adapters
    adapter = create_l2_adapter(cfg)
    opened = time.monotonic() - t0
    stats = adapter._client.stats()  # not LMCache's: what the pool brought back
    recovered = sum(t["recovered"] for t in stats["tiers"])

    size = args.chunk_kib << 10
    shape = torch.Size([2, 1, 256, size // 1024])  # KV_2LTD, bf16: 256 tokens
    layout = {0: MemoryLayoutDesc(shapes=[shape], dtypes=[torch.bfloat16])}
    alloc = HostMemoryAllocator(256 << 20)
    model = "demo/llama-scaled"

    def okey(chunk):
        h = hashlib.blake2b(repr(chunk).encode(), digest_size=16).digest()
        return ObjectKey(chunk_hash=h, model_name=model,
                         kv_rank=ObjectKey.ComputeKVRank(1, 0, 1, 0), object_group_id=0)

    def wait(fd, query, tid):
        import select
        end = time.monotonic() + 30
        while True:
            r = query(tid)
            if r is not None:
                return r
            if time.monotonic() > end:
                raise TimeoutError("LMCache's adapter gave no result in 30 s")
            select.select([fd], [], [], 0.05)
            try:
                os.eventfd_read(fd)
            except (BlockingIOError, OSError):
                pass

    def store(keys, objs):
        tid = adapter.submit_store_task(keys, objs)
        while True:
            done = adapter.pop_completed_store_tasks()
            if tid in done:
                return done[tid].is_successful()
            import select
            select.select([adapter.get_store_event_fd()], [], [], 0.05)

    earlier = set()
    if args.earlier:
        with open(args.earlier) as f:
            earlier = set(tuple(c) for c in json.load(f))
    looked = hits = hits_earlier = verified = stored = 0
    stored_chunks = []
    stored_here = set()
    with open(args.trace) as f:
        requests = [json.loads(line) for _, line in zip(range(args.last), f)][args.first:]
    for r in requests:
        chunks = chunk_keys(r["hash_ids"])
        keys = [okey(c) for c in chunks]
        bits = wait(adapter.get_lookup_and_lock_event_fd(), adapter.query_lookup_and_lock_result,
                    adapter.submit_lookup_and_lock_task(keys, layout))
        prefix = 0
        while prefix < len(keys) and bits.test(prefix):
            prefix += 1
        adapter.submit_unlock([k for i, k in enumerate(keys) if bits.test(i)])
        looked += len(keys)
        for i in range(0, prefix, 32):  # load the cached prefix, 32 chunks a task
            part = list(range(i, min(prefix, i + 32)))
            objs = [alloc.allocate(shape, torch.bfloat16, MemoryFormat.KV_2LTD) for _ in part]
            got = wait(adapter.get_load_event_fd(), adapter.query_load_result,
                       adapter.submit_load_task([keys[j] for j in part], objs))
            for n, (j, o) in enumerate(zip(part, objs)):
                if got.test(n):
                    data = np.frombuffer(bytes(o.byte_array), dtype=np.uint8)
                    if not np.array_equal(data, payload(chunks[j], size)):
                        print(json.dumps({"error": f"chunk {chunks[j]} came back wrong"}),
                              flush=True)
                        sys.exit(1)
                    verified += 1
                    hits += 1
                    # Served by a chunk this process did not store: one from before the kill.
                    hits_earlier += chunks[j] in earlier and chunks[j] not in stored_here
                alloc.free(o)
        for i in range(prefix, len(keys), 32):  # store what the prefill computed
            part = list(range(i, min(len(keys), i + 32)))
            objs = []
            for j in part:
                o = alloc.allocate(shape, torch.bfloat16, MemoryFormat.KV_2LTD)
                o.tensor.view(torch.uint8).view(-1).copy_(torch.from_numpy(payload(chunks[j],
                                                                                    size)))
                objs.append(o)
            if store([keys[j] for j in part], objs):
                stored += len(part)
                stored_chunks.extend(chunks[j] for j in part)
                stored_here.update(chunks[j] for j in part)
            for o in objs:
                alloc.free(o)
    print(json.dumps({"pid": os.getpid(), "opened_s": opened, "recovered": recovered,
                      "from_snapshot": any(t["recovered_from_snapshot"] for t in stats["tiers"]),
                      "requests": len(requests), "looked_up": looked, "hits": hits,
                      "hits_stored_before": hits_earlier, "verified": verified,
                      "stored": stored, "seconds": time.monotonic() - t0,
                      "stored_chunks": stored_chunks}), flush=True)
    time.sleep(600)  # the caller kills this process


def run_phase(args, spec, first, last, earlier):
    earlier_file = os.path.join(args.dir, "stored-before.json")
    with open(earlier_file, "w") as f:
        json.dump(earlier, f)
    cmd = [sys.executable, "-B", os.path.abspath(__file__), "--phase", "--kit", args.kit,
           "--trace", args.trace, "--chunk-kib", str(args.chunk_kib), "--spec", spec,
           "--first", str(first), "--last", str(last), "--earlier", earlier_file]
    log = os.path.join(args.dir, "phase.log")  # LMCache's own log lines
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        line = proc.stdout.readline()
        proc.send_signal(signal.SIGKILL)  # kill -9, the pool still open
        proc.wait()
    if not line:
        with open(log) as f:
            tail = f.read()[-3000:]
        sys.exit(f"lmcache_demo: the phase for requests {first}..{last - 1} failed:\n{tail}")
    out = json.loads(line)
    if "error" in out:
        sys.exit("lmcache_demo: " + out["error"])
    return out


def pct(a, b):
    return f"{100.0 * a / b:.1f}%" if b else "-"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=400, help="requests replayed (default 400)")
    p.add_argument("--chunk-kib", type=int, default=64,
                   help="bytes of one 256-token chunk, in KiB (default 64: a scaled-down model)")
    p.add_argument("--dir", default=None, help="where the pool and spill files go (default: a "
                   "temporary directory, removed)")
    p.add_argument("--trace", default=os.path.join(ROOT, "..", "shared", "traces",
                                                   "mooncake_conversation_trace.jsonl"))
    p.add_argument("--kit", default=os.environ.get("LMCACHE_KIT") or
                   os.path.join(ROOT, "..", "shared", "lmcache-kit"))
    p.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--first", type=int, help=argparse.SUPPRESS)
    p.add_argument("--last", type=int, help=argparse.SUPPRESS)
    p.add_argument("--earlier", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:
        return phase(args)
    if not os.path.isfile(os.path.join(args.kit, "run.sh")):
        sys.exit(f"lmcache_demo: LMCache's code (the kit) is not at {args.kit}; give --kit")
    if not os.path.isfile(args.trace):
        sys.exit(f"lmcache_demo: no trace at {args.trace}; give --trace")
    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="cxlkv-lmcache-demo-")
        args.dir = tmp.name
    half = args.requests // 2
    pool_mib = max(256, (args.requests * 60 * args.chunk_kib) // 1024)
    durable = {"type": "native_plugin", "module_path": "cxlkv.lmcache_native",
               "class_name": "CxlkvConnector",
               "adapter_params": {"tiers": [{"source": f"file:{args.dir}/cxlkv.pool",
                                             "capacity": f"{pool_mib}M",
                                             "durability": "persist-on-put"}],
                                  "spill_path": f"{args.dir}/cxlkv.spill",
                                  "spill_capacity": f"{2 * pool_mib}M"}}
    volatile = {**durable, "adapter_params": {"tiers": [{"source": "dram",
                                                         "capacity": f"{pool_mib}M"}]}}
    print("cxlkv under LMCache's MP mode: LMCache's NativeConnectorL2Adapter, built by its "
          "native_plugin factory, over cxlkv.lmcache_native.CxlkvConnector")
    print(f"trace {os.path.relpath(args.trace)}: requests 0..{half - 1} in one process, "
          f"kill -9, requests {half}..{args.requests - 1} in the next; 256-token chunks of "
          f"{args.chunk_kib} KiB (two per trace block)")
    print(f"L2: file:{args.dir}/cxlkv.pool, {pool_mib} MiB, persist-on-put; spill "
          f"{args.dir}/cxlkv.spill, {2 * pool_mib} MiB")
    results = {}
    for name, spec in (("durable", durable), ("volatile", volatile)):
        text = json.dumps(spec)
        a = run_phase(args, text, 0, half, [])
        b = run_phase(args, text, half, args.requests, a["stored_chunks"])
        results[name] = (a, b)
        if name == "durable":
            print(f"before the restart (pid {a['pid']}): {a['requests']} requests, "
                  f"{a['looked_up']} chunks looked up, {a['hits']} hits ({pct(a['hits'], a['looked_up'])}), "
                  f"{a['verified']} loaded and verified, {a['stored']} stored, {a['seconds']:.1f} s")
            print(f"kill -9 {a['pid']}")
            print(f"after the restart (pid {b['pid']}): the adapter opened in "
                  f"{b['opened_s'] * 1e3:.0f} ms with {b['recovered']} chunks recovered "
                  f"({'index snapshot' if b['from_snapshot'] else 'header scan and log'})")
            print(f"  {b['requests']} requests, {b['looked_up']} chunks looked up, {b['hits']} hits "
                  f"({pct(b['hits'], b['looked_up'])}), {b['hits_stored_before']} of them stored "
                  f"before the restart; {b['verified']} loaded and verified byte for byte")
        else:
            print(f"the same with a volatile DRAM tier (what LMCache's L2 tiers keep across a "
                  f"restart): after it {b['hits']} hits ({pct(b['hits'], b['looked_up'])}), all "
                  f"on chunks stored after it" if b["hits_stored_before"] == 0 else
                  f"the same with a volatile DRAM tier: {b['hits_stored_before']} hits on chunks "
                  f"from before the restart (a volatile tier cannot have them)")
    d, v = results["durable"][1], results["volatile"][1]
    ok = d["hits_stored_before"] > 0 and v["hits_stored_before"] == 0
    print(f"hits that survived the kill -9: {d['hits_stored_before']} with cxlkv's durable pool, "
          f"{v['hits_stored_before']} without")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
