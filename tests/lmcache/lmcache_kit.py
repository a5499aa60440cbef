"""LMCache's own code for the project's tests: the files of ../shared/lmcache-kit (unmodified,
never copied here) put on sys.path the way the kit's checks put them, plus the cxlkv package
from the build tree. Importing this module skips the importing test module, with one line,
when the kit or the cxlkv package cannot be found.

Environment: LMCACHE_KIT (default: ../shared/lmcache-kit beside the project root),
CXLKV_PYTHONPATH (the build tree's python/ directory) and CXLKV_BIN (the cxlkv binary), both set
by ctest.
"""
import json
import os
import socket
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KIT = os.path.abspath(os.environ.get("LMCACHE_KIT") or
                      os.path.join(ROOT, "..", "shared", "lmcache-kit"))
if not os.path.isfile(os.path.join(KIT, "run.sh")):
    pytest.skip(f"LMCache's code (the kit) is not at {KIT}; set LMCACHE_KIT",
                allow_module_level=True)
for mod in ("torch", "numpy", "sortedcontainers"):
    pytest.importorskip(mod, reason=f"{mod} is not installed for {sys.executable} (tools/setup.sh)")

_pythonpath = os.environ.get("CXLKV_PYTHONPATH")
if not _pythonpath or not os.path.isfile(os.path.join(_pythonpath, "cxlkv", "__init__.py")):
    pytest.skip("the cxlkv Python package is not built (CXLKV_PYTHONPATH)", allow_module_level=True)

# As the kit's checks do (kitlib.use_trees): shims first, then LMCache's trees; the newest
# abstract_backend.py (plugin/) and the MP adapter files (mp/) in front of the g2b generation.
sys.path[:0] = [os.path.join(KIT, "shims")] + [os.path.join(KIT, "upstream", t)
                                               for t in ("plugin", "mp", "g2b")]
sys.path.insert(0, _pythonpath)
import kit_torch_float8  # noqa: E402,F401  (before LMCache's protocol tables are built)

CXLKV_BIN = os.environ.get("CXLKV_BIN", "")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_l2_adapter(spec):
    """LMCache's own path from `--l2-adapter JSON` to an L2AdapterInterface, as its MP server
    takes it (the kit's mp checks do the same)."""
    import argparse
    from lmcache.v1.distributed.l2_adapters import create_l2_adapter
    from lmcache.v1.distributed.l2_adapters.config import (add_l2_adapters_args,
                                                           parse_args_to_l2_adapters_config)
    parser = argparse.ArgumentParser()
    add_l2_adapters_args(parser)
    text = spec if isinstance(spec, str) else json.dumps(spec)
    ns = parser.parse_args(["--l2-adapter", text])
    (cfg,) = parse_args_to_l2_adapters_config(ns).adapters
    return create_l2_adapter(cfg)


# ---- MP mode: LMCache objects and waits on LMCache's adapter (bounded)

def mp_key(tag, i, model="tests/mp-model"):
    import zlib
    from lmcache.v1.distributed.api import ObjectKey
    h = (zlib.crc32(tag.encode()) ^ (i * 0x9E3779B1)) & 0xFFFFFFFFFFFFFFFF  # same in every process
    return ObjectKey(chunk_hash=h.to_bytes(8, "big") + i.to_bytes(8, "big"), model_name=model,
                     kv_rank=ObjectKey.ComputeKVRank(1, 0, 1, 0), object_group_id=0)


def mp_layout(shape, dtype):
    from lmcache.v1.distributed.api import MemoryLayoutDesc
    return {0: MemoryLayoutDesc(shapes=[shape], dtypes=[dtype])}


def _wait_fd(fd, timeout):
    import select
    p = select.poll()
    p.register(fd, select.POLLIN)
    if p.poll(int(timeout * 1000)):
        try:
            os.eventfd_read(fd)
        except (BlockingIOError, OSError):
            pass


def mp_store(adapter, keys, objs, timeout=10.0):
    """Submits one store task and waits for LMCache's L2StoreResult."""
    import time
    tid = adapter.submit_store_task(keys, objs)
    end = time.monotonic() + timeout
    while True:
        done = adapter.pop_completed_store_tasks()
        if tid in done:
            return done[tid]
        if time.monotonic() > end:
            raise TimeoutError(f"store task {tid}: no completion in {timeout} s")
        _wait_fd(adapter.get_store_event_fd(), 0.05)


def _query(adapter, fd, query, tid, timeout):
    import time
    end = time.monotonic() + timeout
    while True:
        r = query(tid)
        if r is not None:
            return r
        if time.monotonic() > end:
            raise TimeoutError(f"task {tid}: no result in {timeout} s")
        _wait_fd(fd, 0.05)


def mp_lookup(adapter, keys, layout, timeout=10.0):
    tid = adapter.submit_lookup_and_lock_task(keys, layout)
    bm = _query(adapter, adapter.get_lookup_and_lock_event_fd(),
                adapter.query_lookup_and_lock_result, tid, timeout)
    found = [bool(bm.test(i)) for i in range(len(keys))]
    adapter.submit_unlock([k for k, f in zip(keys, found) if f])
    return found


def mp_load(adapter, keys, objs, timeout=10.0):
    tid = adapter.submit_load_task(keys, objs)
    bm = _query(adapter, adapter.get_load_event_fd(), adapter.query_load_result, tid, timeout)
    return [bool(bm.test(i)) for i in range(len(keys))]
