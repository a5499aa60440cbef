"""`cxlkv serve` as a process, for what issue 18 asked of it beyond the C++ tests
(server/server_limits_test.cc): the default slot classes fill a tier with 2 MiB chunks, a
second server on a live server's Unix socket is refused, and --help documents the budgets."""
import os
import re
import subprocess
import urllib.request

from conftest import Server
from lm_client import Client


def metric(text, name):
    m = re.search("^" + re.escape(name) + r" (\d+)", text, re.M)
    assert m, name
    return int(m.group(1))


def test_default_classes_fill_a_tier_with_2mib_chunks():
    # Before, a 2 MiB chunk took a 2.1 MiB geometric slot alone in a 4 MiB slab: half the tier.
    s = Server("--tier", "dram,256M", "--quiet")
    try:
        with Client(s.tcp) as c:
            data = bytes(range(256)) * (8 << 10)  # 2 MiB
            for i in range(160):
                c.put(f"chunk-{i}", data)
            assert c.health() == 200
            text = urllib.request.urlopen(
                f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=10).read().decode()
            held = metric(text, 'cxlkv_tier_chunks{tier="dram"}')
            # 256 MiB is 64 slabs of 4 MiB; one holds the headers: 126 chunks fit.
            assert held >= 120, held
    finally:
        assert s.stop()[0] == 0


def test_a_second_server_on_a_live_unix_socket_is_refused():
    first = Server("--tier", "dram,64M")
    try:
        out = subprocess.run(
            [os.environ["CXLKV_BIN"], "serve", "--port", "0", "--tier", "dram,64M",
             "--unix", first.unix_path], capture_output=True, text=True, timeout=30)
        assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
        assert first.unix_path in out.stderr and "held by a running server" in out.stderr, out.stderr
        assert f"pid {first.proc.pid}" in out.stderr, out.stderr
        with Client(first.unix_path) as c:  # the first server still owns the path
            assert c.health() == 200
    finally:
        assert first.stop()[0] == 0


def test_help_documents_the_budgets():
    out = subprocess.run([os.environ["CXLKV_BIN"], "serve", "--help"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0
    for flag in ("--request-timeout-ms", "--reply-timeout-ms", "--min-transfer-rate",
                 "--idle-timeout-ms", "--max-reserved", "--max-reply-bytes",
                 "--max-connections", "--max-connections-per-peer", "--max-list-bytes",
                 "--log-rate", "--chunk-size"):
        assert flag in out.stdout, flag
