"""One options schema behind every route: cxlkv.open, LMCache's MP connector (adapter_params),
LMCache's plugin settings (extra_config cxlkv.*) and `cxlkv serve` (its TOML file and its
flags) give the same options for the same values, and refuse the same bad ones by name."""
import os
import subprocess

import pytest

import cxlkv
from cxlkv import lmcache_backend, lmcache_native

TIERS = [{"source": "dram", "capacity": "64M", "name": "dram", "eviction": "s3fifo"},
         {"source": "file:/tmp/pool", "capacity": "128M", "name": "file",
          "promote_after_hits": 5, "durability": "persist-on-put", "high_watermark": 0.9}]
KWARGS = {"slab_size": "1M", "chunk_sizes": ["2M", "4M"], "ttl_seconds": 30, "copy_threads": 3,
          "spill_path": "/tmp/spill", "spill_capacity": "1G", "spill_queue_depth": 8,
          "spill_promote_after_hits": 63}
FLAGS = ["--store", "slab_size=1M", "--store", "chunk_sizes=2M,4M", "--store", "ttl_seconds=30",
         "--store", "copy_threads=3", "--tier", "dram,64M,s3fifo",
         "--tier", "file:/tmp/pool,128M,persist-on-put,promote_after_hits=5,high_watermark=0.9",
         "--spill", "/tmp/spill,1G,queue_depth=8,promote_after_hits=63"]


def serve(*args):
    binary = os.environ.get("CXLKV_BIN")
    if not binary:
        pytest.skip("CXLKV_BIN is not set (ctest sets it)")
    return subprocess.run([binary, "serve", *args], capture_output=True, text=True, timeout=60)


def store_part(printed):
    """The [store], [[tier]] and [spill] tables of `cxlkv serve --print-options`."""
    return printed[printed.index("[store]"):]


def test_every_route_gives_the_same_options(tmp_path):
    want = cxlkv.describe_options(TIERS, **KWARGS)
    assert "promote_after_hits = 5" in want and "[spill]" in want, want
    assert cxlkv._cxlkv.describe_connector_options(tiers=TIERS, **KWARGS) == want
    # LMCache's YAML gives strings; the schema parses them.
    extra = {"cxlkv.tiers": TIERS, "cxlkv.slab_size": "1M", "cxlkv.chunk_sizes": "2M,4M",
             "cxlkv.ttl_seconds": "30", "cxlkv.copy_threads": "3",
             "cxlkv.spill_path": "/tmp/spill", "cxlkv.spill_capacity": "1G",
             "cxlkv.spill_queue_depth": "8", "cxlkv.spill_promote_after_hits": "63"}
    tiers, options = lmcache_backend.store_options_from_config(extra)
    assert cxlkv.describe_options(tiers, **options) == want
    # The description is a config file (server/config_test.cc starts from one written by hand).
    config = tmp_path / "c.toml"
    config.write_text(want)
    from_file = serve("--config", str(config), "--print-options")
    assert from_file.returncode == 0, from_file.stderr
    assert store_part(from_file.stdout) == want
    from_flags = serve(*FLAGS, "--print-options")
    assert from_flags.returncode == 0, from_flags.stderr
    assert store_part(from_flags.stdout) == want


def test_promote_after_hits_64_is_refused_by_every_route_naming_the_key(tmp_path):
    past = [dict(TIERS[0]), dict(TIERS[1], promote_after_hits=64)]
    limit = "is 64; it must be 0 to 63"
    with pytest.raises(ValueError, match=r"'promote_after_hits' in tiers\[1\] " + limit):
        cxlkv.open(past)
    with pytest.raises(ValueError, match="spill_promote_after_hits " + limit):
        cxlkv.open(TIERS[:1], spill_path=str(tmp_path / "s"), spill_promote_after_hits=64)
    with pytest.raises(ValueError, match=r"'promote_after_hits' in tiers\[1\] " + limit):
        lmcache_native.CxlkvConnector(tiers=past)
    with pytest.raises(ValueError, match="spill_promote_after_hits " + limit):
        lmcache_backend.open_store_from_config(
            {"cxlkv.tiers": "dram:64M", "cxlkv.spill_path": str(tmp_path / "s"),
             "cxlkv.spill_promote_after_hits": "64"})
    config = tmp_path / "c.toml"
    config.write_text('[[tier]]\nsource = "dram"\ncapacity = "64M"\npromote_after_hits = 64\n')
    out = serve("--config", str(config))
    assert out.returncode == 2 and "tier[0].promote_after_hits " + limit in out.stderr, out.stderr
    out = serve("--tier", "dram,64M,promote_after_hits=64")
    assert out.returncode == 2 and "promote_after_hits " + limit in out.stderr, out.stderr


def test_unknown_keys_are_refused_by_name_in_every_route(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key 'evicton' in tiers\[0\]"):
        cxlkv.open([{"source": "dram", "capacity": "64M", "evicton": "lru"}])
    with pytest.raises(ValueError, match="unknown key spill_pth"):
        cxlkv.open(TIERS[:1], spill_pth="/tmp/x")
    with pytest.raises(ValueError, match="unknown key slab"):
        lmcache_native.CxlkvConnector(slab="1M")
    with pytest.raises(ValueError, match=r"unknown cxlkv settings \['cxlkv.slab'\]"):
        lmcache_backend.open_store_from_config({"cxlkv.slab": "1M"})
    out = serve("--tier", "dram,64M,evicton=lru")
    assert out.returncode == 2 and "unknown key --tier dram,64M,evicton=lru: evicton" in out.stderr
    out = serve("--store", "slab=1M")
    assert out.returncode == 2 and "unknown key --store slab=1M: slab" in out.stderr


def test_help_comes_from_the_schema():
    text = cxlkv.option_help()
    for heading in ("[store]", "[[tier]]", "[spill]"):
        assert heading in text
    assert "promote_after_hits (0..63" in text
    assert set(cxlkv.OPTION_KEYS) >= {"slab_size", "chunk_sizes", "spill_path", "spill_capacity"}
    out = serve("--help")
    assert out.returncode == 0 and "promote_after_hits (0..63" in out.stdout
