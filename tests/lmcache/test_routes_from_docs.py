"""The three LMCache configurations docs/lmcache.md gives, each fed to LMCache's own code.

Each block is read from the document itself (after its `<!-- route: NAME -->` marker), so the
document cannot drift from what works. The text is parsed exactly as written by LMCache's own
parsers; to run it here, paths under /mnt/ move into a temporary directory and capacities of
gigabytes become 256 MiB (a file tier is allocated in full).
"""
import asyncio
import json
import os
import re
import shlex
import subprocess
import threading

import lmcache_kit as kit  # noqa: F401  (skips this module without the kit)
import pytest
import torch
import yaml

DOC = os.path.join(kit.ROOT, "docs", "lmcache.md")


def block(route):
    text = open(DOC, encoding="utf-8").read()
    m = re.search(r"<!-- route: %s -->\s*```(\w+)\n(.*?)```" % re.escape(route), text, re.S)
    assert m, f"docs/lmcache.md has no block marked <!-- route: {route} -->"
    return m.group(2)


def localize(text, tmp):
    """Paths under /mnt/ into tmp, gigabytes into 256 MiB."""
    text = text.replace("/mnt/", str(tmp) + "/")
    return re.sub(r"\b\d+G\b", "256M", text)


def roundtrip_bytes(i, n=1 << 16):
    return bytes((i * 131 + j * 7) % 251 for j in range(256)) * (n // 256)


def test_mp_route_through_lmcaches_config_parser_and_factory(tmp_path):
    from lmcache.v1.distributed.l2_adapters.native_plugin_l2_adapter import (
        NativePluginL2AdapterConfig)
    from lmcache.v1.memory_management import HostMemoryAllocator, MemoryFormat
    command = block("mp")
    assert command.startswith("lmcache server "), command
    spec = re.search(r"--l2-adapter '(\{.*\})'", command).group(1)
    # As written: LMCache's own --l2-adapter parsing takes it.
    import argparse
    from lmcache.v1.distributed.l2_adapters.config import (add_l2_adapters_args,
                                                           parse_args_to_l2_adapters_config)
    parser = argparse.ArgumentParser()
    add_l2_adapters_args(parser)
    (cfg,) = parse_args_to_l2_adapters_config(parser.parse_args(["--l2-adapter", spec])).adapters
    assert isinstance(cfg, NativePluginL2AdapterConfig)
    assert (cfg.module_path, cfg.class_name) == ("cxlkv.lmcache_native", "CxlkvConnector")
    assert cfg.adapter_params["tiers"][0]["durability"] == "persist-on-put"
    # Built by LMCache's factory and used through LMCache's adapter, twice: the second adapter
    # finds what the first stored (the durable pool and the spill log).
    local = localize(spec, tmp_path)
    os.makedirs(tmp_path / "cxl")
    os.makedirs(tmp_path / "nvme")
    alloc = HostMemoryAllocator(16 << 20)
    shape = torch.Size([2, 4, 256, 64])  # 256 KiB of bf16
    keys = [kit.mp_key("docs-mp", i) for i in range(4)]
    objs = []
    for i in range(4):
        o = alloc.allocate(shape, torch.bfloat16, MemoryFormat.KV_2LTD)
        o.tensor.view(torch.uint8).view(-1).copy_(
            torch.frombuffer(bytearray(roundtrip_bytes(i, 256 << 10)), dtype=torch.uint8))
        objs.append(o)
    adapter = kit.build_l2_adapter(local)
    try:
        assert adapter.report_status()["is_healthy"]
        assert kit.mp_store(adapter, keys, objs).is_successful()
    finally:
        adapter.close()
    again = kit.build_l2_adapter(local)
    try:
        layout = kit.mp_layout(shape, torch.bfloat16)
        assert kit.mp_lookup(again, keys, layout) == [True] * 4
        outs = [alloc.allocate(shape, torch.bfloat16, MemoryFormat.KV_2LTD) for _ in keys]
        assert kit.mp_load(again, keys, outs) == [True] * 4
        for i, o in enumerate(outs):
            assert bytes(o.byte_array) == roundtrip_bytes(i, 256 << 10)
    finally:
        again.close()


def test_lm_route_serve_command_and_lmcache_config(tmp_path):
    if not kit.CXLKV_BIN:
        pytest.skip("CXLKV_BIN is not set")
    from lmcache.utils import CacheEngineKey
    from lmcache.v1.memory_management import MemoryFormat
    from lmcache.v1.storage_backend.connector import parse_remote_url
    from lmcache.v1.storage_backend.connector.lm_connector import LMCServerConnector
    from lmcache.v1.storage_backend.local_cpu_backend import LocalCPUBackend
    argv = shlex.split(localize(block("lm"), tmp_path))
    assert argv[:2] == ["cxlkv", "serve"], argv
    port = kit.free_port()
    argv[argv.index("--port") + 1] = str(port)
    os.makedirs(tmp_path / "cxl")
    os.makedirs(tmp_path / "nvme")
    config = yaml.safe_load(block("lm-config"))
    assert config["remote_serde"] == "naive"
    url = config["remote_url"].replace(":65432", f":{port}")
    proc = subprocess.Popen([kit.CXLKV_BIN] + argv[1:], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "listening on lm://" in line:
                break
        else:
            pytest.fail(f"cxlkv serve did not start: {proc.wait()}")
        # As LMCache's lm:// adapter builds its connector (connector/lm_adapter.py).
        parsed = parse_remote_url(url)
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        cpu = LocalCPUBackend(size=64 << 20)
        conn = LMCServerConnector(host=parsed.host, port=parsed.port, loop=loop,
                                  local_cpu_backend=cpu)
        run = lambda c: asyncio.run_coroutine_threadsafe(c, loop).result(10)  # noqa: E731
        key = CacheEngineKey("vllm", "meta-llama/Llama-3.1-8B-Instruct", 1, 0, 0xD0C5)
        obj = cpu.allocate(torch.Size([2, 2, 16, 128]), torch.bfloat16, MemoryFormat.KV_2LTD)
        obj.tensor.copy_(torch.randn(2, 2, 16, 128).to(torch.bfloat16))
        run(conn.put(key, obj))
        assert run(conn.exists(key)) is True
        got = run(conn.get(key))
        assert bytes(got.byte_array) == bytes(obj.byte_array)
        assert list(got.get_shape()) == [2, 2, 16, 128] and got.get_dtype() == torch.bfloat16
        run(conn.close())
        loop.call_soon_threadsafe(loop.stop)
    finally:
        proc.terminate()
        proc.wait(10)


def test_plugin_route_through_lmcaches_current_loader(tmp_path):
    import loaders  # the kit's upstream/plugin/loaders.py: LMCache's loader function bodies
    from lmcache.config import LMCacheEngineMetadata
    from lmcache.v1.config import LMCacheEngineConfig
    from lmcache.v1.storage_backend.local_cpu_backend import LocalCPUBackend
    config = yaml.safe_load(block("plugin"))
    assert config["storage_plugins"] == ["cxlkv"]
    assert ":persist-on-put" in config["extra_config"]["cxlkv.tiers"]
    local = yaml.safe_load(localize(block("plugin"), tmp_path))
    os.makedirs(tmp_path / "cxl")
    os.makedirs(tmp_path / "nvme")
    loop = asyncio.new_event_loop()
    cpu = LocalCPUBackend(size=64 << 20)
    backends = {"LocalCPUBackend": cpu}
    loaders.storage_plugin_launcher_L3(LMCacheEngineConfig(**local), LMCacheEngineMetadata(), loop,
                                       cpu, "cpu", backends)
    assert "cxlkv" in backends, "LMCache's storage_plugin_launcher registered no cxlkv backend"
    backend = backends["cxlkv"]
    try:
        stats = backend.store.stats()
        assert [t["name"] for t in stats["tiers"]][:2] == ["tier0", "tier1"]
        assert backend.get_allocator_backend() is cpu
    finally:
        backend.close()
