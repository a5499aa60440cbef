"""Warm restart through LMCache's own code: store, SIGKILL, reopen on the same pool, load.

Every chunk LMCache saw acknowledged comes back byte for byte; a chunk whose store was in
flight at the kill comes back whole or not at all, never wrong.

- MP: mp_writer.py stores through LMCache's NativeConnectorL2Adapter (built by LMCache's factory
  from the --l2-adapter JSON) and prints each store task LMCache saw succeed; it is killed at a
  random point; a new adapter, built the same way on the same pool, looks up and loads.
- lm://: `cxlkv serve` with a durable tier and the spill tier, filled through LMCache's
  LMCServerConnector (acknowledged once `exists` on the same connection is True), killed, then
  restarted on the same files and read back through a new connector.
"""
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import lmcache_kit as kit  # noqa: F401  (skips this module without the kit)
import numpy as np
import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mp_writer  # noqa: E402


def mp_spec(tmp_path):
    return json.dumps({
        "type": "native_plugin", "module_path": "cxlkv.lmcache_native",
        "class_name": "CxlkvConnector",
        "adapter_params": {
            "tiers": [{"source": f"file:{tmp_path}/pool", "capacity": "48M",
                       "durability": "persist-on-put"}],
            "spill_path": f"{tmp_path}/spill", "spill_capacity": "320M"}})


def run_writer(spec, first, batches, kill_after_acks):
    """Starts mp_writer, kills it with SIGKILL after `kill_after_acks` acknowledgements (or at
    the end); returns ({batch: size} acknowledged, {batch: size} submitted, not acknowledged)."""
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-B", os.path.join(HERE, "mp_writer.py"), spec,
                             str(first), str(batches)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    acked, pending = {}, {}
    deadline = time.monotonic() + 60
    try:
        for line in proc.stdout:
            word, *rest = line.split()
            if word == "submit":
                pending[int(rest[0])] = int(rest[1])
            elif word == "ack":
                acked[int(rest[0])] = pending.pop(int(rest[0]))
                if len(acked) >= kill_after_acks:
                    break
            elif word == "done":
                break
            if time.monotonic() > deadline:
                pytest.fail("the writer made no progress in 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        err = proc.stderr.read()
        proc.wait(10)
    assert acked, f"the writer acknowledged nothing: {err[-2000:]}"
    return acked, pending


def check_mp(spec, acked, pending):
    from lmcache.v1.memory_management import HostMemoryAllocator, MemoryFormat
    adapter = kit.build_l2_adapter(spec)
    alloc = HostMemoryAllocator(64 << 20)
    wrong, lost = [], []
    try:
        for batches, must in ((acked, True), (pending, False)):
            for b, size in sorted(batches.items()):
                keys = [kit.mp_key("warm", 4 * b + j) for j in range(4)]
                shape = mp_writer.SHAPES[size]
                found = kit.mp_lookup(adapter, keys, kit.mp_layout(shape, torch.bfloat16))
                objs = [alloc.allocate(shape, torch.bfloat16, MemoryFormat.KV_2LTD) for _ in keys]
                loaded = kit.mp_load(adapter, keys, objs)
                for j, (k, f, ok, o) in enumerate(zip(keys, found, loaded, objs)):
                    if must and not (f and ok):
                        lost.append(4 * b + j)
                    if ok and not np.array_equal(np.frombuffer(bytes(o.byte_array), np.uint8),
                                                 mp_writer.payload(4 * b + j, size)):
                        wrong.append(4 * b + j)
                for o in objs:
                    alloc.free(o)
    finally:
        adapter.close()
    return lost, wrong


def test_mp_adapter_kill_9_and_reopen(tmp_path):
    spec = mp_spec(tmp_path)
    rng = random.Random(os.environ.get("CXLKV_TEST_SEED", 17))
    acked, pending, first = {}, {}, 0
    for cycle in range(3):
        # 40 batches of up to 1 MiB over three cycles pass the 48 MiB pool: later cycles run
        # with chunks demoted into the spill log.
        a, p = run_writer(spec, first, 40, kill_after_acks=rng.randrange(8, 36))
        acked.update(a)
        pending.update(p)
        first += 40
        lost, wrong = check_mp(spec, acked, pending)
        assert not wrong, f"cycle {cycle}: chunks {wrong[:8]} came back with wrong bytes"
        assert not lost, f"cycle {cycle}: acknowledged chunks {lost[:8]} are missing"
    print(f"MP warm restart: {len(acked)} acknowledged batches back over 3 kill -9 cycles, "
          f"{len(pending)} in-flight batches whole or absent")


# ---- lm://

def start_server(tmp_path):
    port = kit.free_port()
    proc = subprocess.Popen(
        [kit.CXLKV_BIN, "serve", "--port", str(port),
         "--tier", f"file:{tmp_path}/lm.pool,48M,persist-on-put",
         "--spill", f"{tmp_path}/lm.spill,320M"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "listening on lm://" in line:
            return proc, port, lines
    pytest.fail("cxlkv serve did not start: " + "".join(lines))


class Connector:
    """LMCache's LMCServerConnector on its own event-loop thread, as LMCache runs it."""

    def __init__(self, port, cpu):
        from lmcache.v1.storage_backend.connector.lm_connector import LMCServerConnector
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.c = LMCServerConnector("127.0.0.1", port, self.loop, cpu)

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)


def lm_key(i):
    from lmcache.utils import CacheEngineKey
    return CacheEngineKey("vllm", "meta-llama/Llama-3.1-8B-Instruct", 1, 0, 0x5EED0000 + i)


def lm_bytes(i):
    return mp_writer.payload(100000 + i, 256 << 10)


def test_lm_server_kill_9_and_restart(tmp_path):
    if not kit.CXLKV_BIN:
        pytest.skip("CXLKV_BIN is not set")
    from lmcache.v1.memory_management import MemoryFormat
    from lmcache.v1.storage_backend.local_cpu_backend import LocalCPUBackend
    cpu = LocalCPUBackend(size=256 << 20)
    shape = torch.Size([2, 4, 64, 256])  # 256 KiB of bf16
    acked, sent = [], []
    n = 0
    for cycle in range(2):
        proc, port, _ = start_server(tmp_path)
        try:
            conn = Connector(port, cpu)
            # Everything acknowledged so far is back, byte for byte.
            for i in acked:
                got = conn.run(conn.c.get(lm_key(i)))
                assert got is not None, f"cycle {cycle}: acknowledged chunk {i} is missing"
                assert np.array_equal(np.frombuffer(bytes(got.byte_array), np.uint8),
                                      lm_bytes(i)), f"cycle {cycle}: chunk {i} differs"
                got.ref_count_down()
            for i in set(sent) - set(acked):  # in flight at the kill: whole or absent
                got = conn.run(conn.c.get(lm_key(i)))
                if got is not None:
                    assert np.array_equal(np.frombuffer(bytes(got.byte_array), np.uint8),
                                          lm_bytes(i)), f"in-flight chunk {i} came back wrong"
                    got.ref_count_down()
            # 123 chunks (31 MiB) a cycle; every 10th is confirmed with exists, so the last
            # three are in flight at the kill.
            cycle_start = n
            for _ in range(123):
                obj = cpu.allocate(shape, torch.bfloat16, MemoryFormat.KV_2LTD)
                obj.tensor.view(torch.uint8).view(-1).copy_(torch.from_numpy(lm_bytes(n)))
                conn.run(conn.c.put(lm_key(n), obj))
                obj.ref_count_down()
                sent.append(n)
                n += 1
                if n % 10 == 0:
                    assert conn.run(conn.c.exists(lm_key(n - 1))) is True
                    # One connection, served in order: every put before it is in.
                    acked.extend(range(max(n - 10, cycle_start), n))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    proc, port, lines = start_server(tmp_path)
    try:
        assert any("chunks recovered" in ln for ln in lines), "".join(lines)
        conn = Connector(port, cpu)
        for i in acked:
            got = conn.run(conn.c.get(lm_key(i)))
            assert got is not None, f"after the last kill: acknowledged chunk {i} is missing"
            assert np.array_equal(np.frombuffer(bytes(got.byte_array), np.uint8), lm_bytes(i))
            got.ref_count_down()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    print(f"lm:// warm restart: {len(acked)} acknowledged chunks back after 2 kill -9")
