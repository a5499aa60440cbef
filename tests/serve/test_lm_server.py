"""`cxlkv serve` driven by a client written from LMCache's protocol description."""
import hashlib
import random
import socket
import struct
import subprocess
import os
import threading
import time
import urllib.request

import pytest

import lm_client
from lm_client import Client, request


def pattern(seed, size):
    """size bytes derived from seed (checkable without keeping them)."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    while len(out) < size:
        out += block
        block = block[1:] + block[:1]
    return bytes(out[:size])


def key(*parts):
    return "vllm@llama-3.1-8b@1@0@" + "".join(format(p, "x") for p in parts)


# Real layouts: LMCache's KV_2LTD [2, layers, tokens, heads*head_dim] for a few models and
# chunk lengths, scaled down in tokens so the test stays fast.
LAYOUTS = [
    ("bfloat16", 1, (2, 16, 16, 512)),    # llama-3.2-1b, 16 tokens: 1 MiB
    ("float16", 1, (2, 32, 8, 1024)),     # llama-3.1-8b, 8 tokens: 1 MiB
    ("float32", 2, (2, 4, 64, 256)),      # a layer-wise format
    ("uint8", 1, (3000, 0, 0, 0)),        # a bytes object: [x, 0, 0, 0]
    ("float8_e4m3fn", 1, (2, 80, 4, 1024)),
]


def nbytes(dtype, shape):
    n = lm_client.DTYPES[dtype][1]
    for d in shape:
        n *= d if d else 1
    return n


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_put_get_exist_list_health_with_real_layouts(server, transport):
    address = server.tcp if transport == "tcp" else server.unix_path
    with Client(address) as c:
        assert c.health() == lm_client.SUCCESS
        stored = set()
        for i, (dtype, fmt, shape) in enumerate(LAYOUTS):
            k = key(0x100 + i, len(transport))
            data = pattern(k, nbytes(dtype, shape))
            assert not c.exist(k)
            c.put(k, data, fmt=fmt, dtype=lm_client.DTYPES[dtype][0], shape=shape)
            stored.add(k)
            assert c.exist(k)
            r, got = c.get(k)
            assert r.code == lm_client.SUCCESS
            assert (r.length, r.fmt, r.dtype, r.location, r.shape) == \
                (len(data), fmt, lm_client.DTYPES[dtype][0], 0, shape)
            assert got == data
        r, got = c.get(key(0xdead))
        assert r.code == lm_client.FAIL and r.length == 0 and got is None
        assert not c.exist(key(0xdead))
        assert stored <= c.list()
        # Write once: a second PUT of a key keeps the first bytes.
        k = key(0x100, len(transport))
        c.put(k, b"x" * 10, shape=(10, 0, 0, 0))
        r, got = c.get(k)
        assert len(got) == nbytes(*LAYOUTS[0][::2]) and r.shape == LAYOUTS[0][2]


def test_a_150_byte_key_and_pipelined_requests(server):
    k = "k" * 150  # the longest key: no padding at all
    with Client(server.tcp) as c:
        data = pattern(k, 4096)
        # PUT, then EXIST and GET sent back to back before reading any reply.
        c.sock.sendall(request(lm_client.PUT, k, len(data), 1, 6, (4096, 0, 0, 0)) + data +
                       request(lm_client.EXIST, k) + request(lm_client.GET, k))
        assert c.reply().code == lm_client.SUCCESS
        r = c.reply()
        assert r.code == lm_client.SUCCESS and c.recv_exactly(r.length) == data


def test_32_concurrent_clients_with_verified_payloads(server):
    errors = []
    sizes = [4096, 65536, 1 << 20, 2 << 20, 123457]

    def client(n):
        try:
            rng = random.Random(n)
            address = server.tcp if n % 4 else server.unix_path
            with Client(address) as c:
                mine = []
                for i in range(6):
                    k = key(0x32000 + n, i)
                    data = pattern(k, rng.choice(sizes))
                    c.put(k, data, shape=(len(data), 0, 0, 0), dtype=6)
                    mine.append((k, data))
                    # Read back one of this client's chunks at random, and one of another's.
                    k2, d2 = rng.choice(mine)
                    r, got = c.get(k2)
                    assert r.code == lm_client.SUCCESS and got == d2, k2
                    other = key(0x32000 + rng.randrange(32), rng.randrange(6))
                    r, got = c.get(other)
                    if got is not None:
                        assert got == pattern(other, len(got)), other
        except Exception as e:  # reported by the main thread
            errors.append(f"client {n}: {e!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with Client(server.tcp) as c:
        for n in range(32):
            for i in range(6):
                k = key(0x32000 + n, i)
                r, got = c.get(k)
                assert got is not None and got == pattern(k, len(got)), k


def closed_by_server(c):
    """True when the server closed the connection (EOF, no reply)."""
    try:
        return c.sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("case,log", [
    ("over_max", "is above the maximum"),
    ("negative", "negative length"),
    ("unknown_command", "unknown command 42"),
    ("control_key", "control character"),
    ("empty_key", "empty key"),
    ("not_utf8_key", "key is not UTF-8"),
    ("unknown_fmt", "unknown memory format 9"),
    ("unknown_dtype", "unknown dtype 12"),
    ("tensor_size", "is not the size of the tensor"),
    ("location_last", "length 8192 is not the size of the tensor (fmt 1, dtype 3, shape [2, 16, 64, 0])"),
    ("mid_payload", "closed in the middle of a PUT"),
    ("mid_header", "closed in the middle of a request header"),
])
def test_bad_input_closes_only_that_connection(server, case, log):
    keeper_key = key(0xbeef, len(case))
    keeper = pattern(keeper_key, 1 << 20)
    with Client(server.tcp) as good:
        good.put(keeper_key, keeper, dtype=6)
        assert good.exist(keeper_key)
        bad = Client(server.tcp)
        victim = key(0xbad, len(case))
        if case == "over_max":
            bad.sock.sendall(request(lm_client.PUT, victim, (8 << 20) + 1))
        elif case == "negative":
            bad.sock.sendall(request(lm_client.PUT, victim, -4096))
        elif case == "unknown_command":
            bad.sock.sendall(request(42, victim))
        elif case == "control_key":
            bad.sock.sendall(request(lm_client.GET, b"vllm@\x07bell"))
        elif case == "empty_key":
            bad.sock.sendall(request(lm_client.PUT, "", 100))
        elif case == "not_utf8_key":
            bad.sock.sendall(request(lm_client.EXIST, b"vllm@\xc3(@1"))
        elif case == "unknown_fmt":
            bad.sock.sendall(request(lm_client.PUT, victim, 4096, 9, 6, (4096, 0, 0, 0)))
        elif case == "unknown_dtype":
            bad.sock.sendall(request(lm_client.PUT, victim, 4096, 1, 12, (4096, 0, 0, 0)))
        elif case == "tensor_size":  # bf16 [2, 2, 16, 64] is 8192 bytes, not 4096
            bad.sock.sendall(request(lm_client.PUT, victim, 4096, 1, 3, (2, 2, 16, 64)))
        elif case == "location_last":  # a request laid out like a reply: the shape moves by one
            raw = request(lm_client.PUT, victim, 8192, 1, 3, (2, 2, 16, 64))
            bad.sock.sendall(raw[:16] + raw[20:36] + raw[16:20] + raw[36:])
        elif case == "mid_payload":
            bad.sock.sendall(request(lm_client.PUT, victim, 1 << 20, 1, 6, (1 << 20, 0, 0, 0)))
            bad.sock.sendall(pattern(victim, 300000))
            time.sleep(0.05)
            assert not good.exist(victim)  # never visible half received
            bad.close()
        elif case == "mid_header":
            bad.sock.sendall(request(lm_client.EXIST, victim)[:100])
            bad.close()
        if case not in ("mid_payload", "mid_header"):
            assert closed_by_server(bad), case
            bad.close()
        deadline = time.time() + 10
        while log not in server.log() and time.time() < deadline:
            time.sleep(0.01)
        assert log in server.log(), server.log()
        # The server, this connection and the stored chunk are unaffected; the victim is absent.
        assert server.alive()
        assert good.health() == lm_client.SUCCESS
        assert not good.exist(victim)
        r, got = good.get(keeper_key)
        assert got == keeper
    with Client(server.tcp) as fresh:
        assert fresh.health() == lm_client.SUCCESS


def parse_prometheus(text):
    """{(name, frozenset(labels)): value} from the text exposition format."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        labels = frozenset()
        if "{" in name_labels:
            name, rest = name_labels.split("{", 1)
            pairs = [p for p in rest.rstrip("}").split(",") if p]
            labels = frozenset(tuple(p.split("=", 1)) for p in pairs)
        else:
            name = name_labels
        samples[(name, labels)] = float(value)
    return samples


def test_metrics_endpoint_counts_what_happened(server):
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    before = parse_prometheus(urllib.request.urlopen(url, timeout=10).read().decode())
    with Client(server.tcp) as c:
        for i in range(3):
            c.put(key(0x3e7, i), pattern(i, 65536), dtype=6)
        for i in range(3):
            assert c.get(key(0x3e7, i))[1] is not None
        assert c.get(key(0x3e7, 99))[1] is None
        assert c.exist(key(0x3e7, 0))
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        after = parse_prometheus(resp.read().decode())

    def delta(name, **labels):
        lab = frozenset((k, f'"{v}"') for k, v in labels.items())
        return after[(name, lab)] - before.get((name, lab), 0)

    assert delta("cxlkv_requests_total", command="PUT") == 3
    assert delta("cxlkv_requests_total", command="GET") == 4
    assert delta("cxlkv_get_total", result="hit") == 3
    assert delta("cxlkv_get_total", result="miss") == 1
    assert delta("cxlkv_put_total", result="stored") == 3
    assert delta("cxlkv_network_bytes_total", direction="in") == 3 * 65536
    assert delta("cxlkv_network_bytes_total", direction="out") == 3 * 65536
    assert delta("cxlkv_tier_chunks", tier="dram") == 3
    assert delta("cxlkv_tier_hits_total", tier="dram") == 3
    assert delta("cxlkv_tier_bytes_in_total", tier="dram") == 3 * 65536
    assert delta("cxlkv_request_duration_seconds_count", command="GET") == 4
    # Histogram buckets are cumulative and end with +Inf == count.
    buckets = sorted((float(dict(k[1])["le"].strip('"')), v) for k, v in after.items()
                     if k[0] == "cxlkv_request_duration_seconds_bucket" and
                     ("command", '"GET"') in k[1])
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
    assert buckets[-1][0] == float("inf")
    assert buckets[-1][1] == after[("cxlkv_request_duration_seconds_count",
                                    frozenset({("command", '"GET"')}))]
    # `cxlkv stats` prints the same text.
    out = subprocess.run([os.environ["CXLKV_BIN"], "stats", "--port", str(server.metrics_port)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    stats = parse_prometheus(out.stdout)
    assert stats[("cxlkv_put_total", frozenset({("result", '"stored"')}))] >= \
        after[("cxlkv_put_total", frozenset({("result", '"stored"')}))]


def test_config_file_sets_tiers_and_a_bad_one_is_one_clear_line(tmp_path):
    from conftest import Server
    good = tmp_path / "serve.toml"
    good.write_text(
        '[server]\nthreads = 1\nmax_payload = "1M"\n'
        '[store]\nslab_size = "1M"\n'
        '[[tier]]\nname = "fast"\nsource = "dram"\ncapacity = "16M"\neviction = "fifo"\n'
        f'[[tier]]\nname = "pool"\nsource = "file:{tmp_path}/pool"\ncapacity = "32M"\n')
    s = Server("--config", str(good))
    try:
        with Client(s.tcp) as c:
            c.put(key(0xc0f), pattern(1, 4096), dtype=6)
            assert c.get(key(0xc0f))[1] == pattern(1, 4096)
            c.sock.sendall(request(lm_client.PUT, key(0xc0f, 1), (1 << 20) + 1))
            assert closed_by_server(c)  # max_payload came from the file
        text = urllib.request.urlopen(
            f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=10).read().decode()
        assert 'cxlkv_tier_capacity_bytes{tier="pool"} 33554432' in text
        assert 'cxlkv_tier_chunks{tier="fast"} 1' in text
    finally:
        assert s.stop()[0] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[[tier]]\nsource = "dram"\ncapacity = "1G"\nevicton = "lru"\n')
    out = subprocess.run([os.environ["CXLKV_BIN"], "serve", "--config", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key tier[0].evicton" in lines[0] and str(bad) in lines[0], \
        out.stderr


def test_stats_without_a_server_is_one_clear_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    out = subprocess.run([os.environ["CXLKV_BIN"], "stats", "--port", str(port)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect" in lines[0], out.stderr


def test_chunks_spilled_to_the_nvme_tier_come_back_over_lm(tmp_path):
    """A DRAM tier far smaller than what is put, over a spill log: every chunk reads back."""
    from conftest import Server
    config = tmp_path / "spill.toml"
    config.write_text(
        '[store]\nslab_size = "1M"\n'
        '[[tier]]\nname = "dram"\nsource = "dram"\ncapacity = "8M"\n'
        f'[spill]\npath = "{tmp_path}/spill.log"\ncapacity = "64M"\nsegment_size = "4M"\n')
    s = Server("--config", str(config))
    try:
        with Client(s.tcp) as c:
            keys = [key(0x5b111, i) for i in range(48)]  # 24 MiB of 512 KiB chunks
            for k in keys:
                c.put(k, pattern(k, 512 << 10), dtype=6)
            assert c.exist(keys[-1])
            for k in keys:
                r, got = c.get(k)
                assert got == pattern(k, 512 << 10), k
        text = urllib.request.urlopen(
            f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=10).read().decode()
        hits = [line for line in text.splitlines()
                if line.startswith('cxlkv_tier_hits_total{tier="spill"}')]
        assert hits and float(hits[0].split()[-1]) > 0, text
    finally:
        assert s.stop()[0] == 0
