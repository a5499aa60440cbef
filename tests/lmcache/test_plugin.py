"""cxlkv.lmcache_backend.CxlkvBackend with LMCache's own objects and loaders (the kit's files):
what the kit's plugin checks do not already cover. LMCache's MemoryObjs come from LMCache's
allocators, keys are LMCache's CacheEngineKeys, and the backend is loaded by LMCache's loader
functions."""
import asyncio
import logging
import threading

import lmcache_kit as kit  # noqa: F401  (skips this module without the kit)
import pytest
import torch

import loaders  # the kit's upstream/plugin/loaders.py: LMCache's loader function bodies
from lmcache.config import LMCacheEngineMetadata
from lmcache.utils import CacheEngineKey
from lmcache.v1.config import LMCacheEngineConfig
from lmcache.v1.memory_management import BytesBufferMemoryObj, MemoryFormat
from lmcache.v1.storage_backend.local_cpu_backend import LocalCPUBackend


def key(i):
    return CacheEngineKey("vllm", "meta-llama/Llama-3.1-8B-Instruct", 1, 0, 0xB0B0000 + i)


def load(extra, loader="L3"):
    """Runs one of LMCache's loaders; returns (backend or None, error lines logged)."""
    name = "cxlkv"
    cpu = LocalCPUBackend(size=128 << 20)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    backends = {"LocalCPUBackend": cpu}
    errors = []

    class Grab(logging.Handler):
        def emit(self, rec):
            errors.append(rec.getMessage())

    grab = Grab(logging.ERROR)
    loaders.logger.addHandler(grab)
    try:
        if loader == "L3":
            extra = dict(extra, **{f"storage_plugin.{name}.module_path": "cxlkv.lmcache_backend",
                                   f"storage_plugin.{name}.class_name": "CxlkvBackend"})
            loaders.storage_plugin_launcher_L3(
                LMCacheEngineConfig(storage_plugins=[name], extra_config=extra),
                LMCacheEngineMetadata(), loop, cpu, "cpu", backends)
        else:  # LMCache's first loader: positional arguments, with a memory allocator
            extra = dict(extra, **{f"external_backend.{name}.module_path": "cxlkv.lmcache_backend",
                                   f"external_backend.{name}.class_name": "CxlkvBackend"})
            loaders.create_dynamic_backends(
                LMCacheEngineConfig(external_backends=[name], extra_config=extra),
                LMCacheEngineMetadata(), loop, None, cpu, "cpu", None, backends)
    finally:
        loaders.logger.removeHandler(grab)
    backend = backends.get(name)
    if backend is not None:
        backend.test_loop = loop
    return backend, errors


def tensor_obj(cpu, i, shape=(2, 4, 16, 128)):
    o = cpu.allocate(torch.Size(shape), torch.bfloat16, MemoryFormat.KV_2LTD)
    o.tensor.copy_((torch.arange(o.tensor.numel()).reshape(shape) % 97 + i).to(torch.bfloat16))
    return o


@pytest.fixture
def backend():
    b, errors = load({"cxlkv.tiers": "dram:64M"})
    assert b is not None, errors
    yield b
    b.close()


def test_the_first_positional_loader_also_loads_it():
    b, errors = load({"cxlkv.tiers": "dram:64M"}, loader="L1")
    assert b is not None, errors
    assert b.local_cpu_backend is not None and b.get_allocator_backend() is b.local_cpu_backend
    b.close()


def test_unknown_settings_fail_the_load_by_name():
    b, errors = load({"cxlkv.tiers": "dram:64M", "cxlkv.tier": "dram:1G"})
    assert b is None
    assert any("cxlkv.tier" in e and "unknown cxlkv settings" in e for e in errors), errors
    b, errors = load({"cxlkv.tiers": "dram"})
    assert b is None and any("SOURCE:CAPACITY" in e for e in errors), errors


def test_on_complete_callback_once_per_key(backend):
    cpu = backend.local_cpu_backend
    keys = [key(i) for i in range(5)]
    objs = [tensor_obj(cpu, i) for i in range(5)]
    done = []
    futures = backend.batched_submit_put_task(keys, objs, on_complete_callback=done.append)
    for f in futures:
        f.result(10)
    assert sorted(k.to_string() for k in done) == sorted(k.to_string() for k in keys)
    # A raising callback is caught and logged: the put still completes.
    fut = backend.batched_submit_put_task([key(9)], [tensor_obj(cpu, 9)],
                                          on_complete_callback=lambda k: 1 / 0)
    assert fut[0].result(10) > 0


def test_batched_async_contains_and_get_non_blocking(backend):
    cpu = backend.local_cpu_backend
    keys = [key(i) for i in range(4)]
    objs = [tensor_obj(cpu, i) for i in range(4)]
    for f in backend.batched_submit_put_task(keys, objs):
        f.result(10)
    run = lambda c: asyncio.run_coroutine_threadsafe(c, backend.test_loop).result(10)  # noqa
    # Prefix semantics: a gap stops the count.
    assert run(backend.batched_async_contains("req-1", keys)) == 4
    assert run(backend.batched_async_contains("req-2", keys[:2] + [key(77)] + keys[2:])) == 2
    assert backend.batched_contains(keys + [key(78)]) == 4
    got = run(backend.batched_get_non_blocking("req-3", keys))
    assert len(got) == 4
    for o, ref in zip(got, objs):
        assert bytes(o.byte_array) == bytes(ref.byte_array)
        assert o.get_memory_format() == MemoryFormat.KV_2LTD and o.get_dtype() == torch.bfloat16
    # Only the leading keys that load come back; what follows a miss is given back.
    got = run(backend.batched_get_non_blocking("req-4", [keys[0], key(79), keys[1]]))
    assert len(got) == 1 and bytes(got[0].byte_array) == bytes(objs[0].byte_array)
    backend.touch_cache()  # the store's policy already saw the reads; must not raise
    assert backend.get_non_blocking(keys[2], location="cxlkv").result(10) is not None


def test_bytes_buffers_keep_their_lmcache_shape(backend):
    data = bytearray(range(256)) * 40
    obj = BytesBufferMemoryObj(data)
    backend.batched_submit_put_task([key(50)], [obj])[0].result(10)
    got = backend.get_blocking(key(50))
    assert got.get_memory_format() == MemoryFormat.BINARY_BUFFER
    assert list(got.get_shape()) == [len(data), 0, 0, 0] and got.get_dtype() is None
    assert bytes(got.byte_array) == bytes(data)


def test_a_durable_plugin_store_comes_back(tmp_path):
    extra = {"cxlkv.tiers": f"file:{tmp_path}/pool:32M:persist-on-put"}
    b, errors = load(extra)
    assert b is not None, errors
    cpu = b.local_cpu_backend
    objs = [tensor_obj(cpu, i) for i in range(3)]
    for f in b.batched_submit_put_task([key(i) for i in range(3)], objs):
        f.result(10)
    refs = [bytes(o.byte_array) for o in objs]
    b.close()
    again, errors = load(extra)
    assert again is not None, errors
    tier = again.store.stats()["tiers"][0]
    assert tier["durability"] == "persist-on-put" and tier["recovered"] == 3, tier
    assert tier["recovered_from_snapshot"]  # closed cleanly: no header scan
    try:
        for i in range(3):
            got = again.get_blocking(key(i))
            assert got is not None and bytes(got.byte_array) == refs[i]
    finally:
        again.close()
