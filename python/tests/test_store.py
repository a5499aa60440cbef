"""import cxlkv: the Store with numpy arrays and CPU torch tensors, batched operations on an
eventfd, leases, stats, errors."""
import os
import select
import threading

import pytest

import cxlkv

np = pytest.importorskip("numpy", reason="numpy is not installed (apt-get install python3-numpy)")


@pytest.fixture
def store(tmp_path):
    s = cxlkv.open([{"name": "dram", "source": "dram", "capacity": "64M"},
                    {"name": "file", "source": f"file:{tmp_path}/pool", "capacity": "64M"}],
                   slab_size="1M", chunk_sizes=[1 << 20])
    yield s
    s.close()


def test_numpy_round_trip_into_any_buffer_with_meta(store):
    a = np.arange(256 * 1024, dtype=np.float32)  # 1 MiB
    store.put("vllm@m@1@0@a", a, meta=b"fmt=1;dtype=f32")
    assert "vllm@m@1@0@a" in store and store.size("vllm@m@1@0@a") == a.nbytes
    out = np.zeros_like(a)
    assert store.get_into("vllm@m@1@0@a", out) == a.nbytes
    assert np.array_equal(out, a)
    assert store.meta("vllm@m@1@0@a") == b"fmt=1;dtype=f32"
    # Into a bytearray, a memoryview slice, a 2-D array: all C-contiguous buffers.
    ba = bytearray(a.nbytes)
    store.get_into("vllm@m@1@0@a", ba)
    assert bytes(ba) == a.tobytes()
    m = np.zeros((512, 512), dtype=np.float32)
    store.get_into("vllm@m@1@0@a", m)
    assert np.array_equal(m.reshape(-1), a)
    assert store.get("vllm@m@1@0@a") == a.tobytes()
    assert store.get("absent") is None


def test_get_into_writes_the_callers_memory_in_place(store):
    a = np.random.default_rng(1).integers(0, 255, 4096, dtype=np.uint8)
    store.put("k", a)
    out = np.zeros(8192, dtype=np.uint8)
    address = out.__array_interface__["data"][0]
    assert store.get_into("k", out) == 4096  # a larger buffer takes the chunk at its start
    assert out.__array_interface__["data"][0] == address
    assert np.array_equal(out[:4096], a) and not out[4096:].any()


def test_torch_tensors_in_and_out_without_copies(store):
    torch = pytest.importorskip("torch", reason="torch is not installed (apt-get install python3-torch)")
    t = torch.randn(2, 4, 16, 128, dtype=torch.float32).to(torch.bfloat16)  # KV_2LTD-like
    store.put("vllm@m@1@0@t", t)
    out = torch.empty_like(t)
    assert store.get_into("vllm@m@1@0@t", out) == t.numel() * 2
    assert torch.equal(out, t)
    # as_buffer is a view of the tensor's own storage, not a copy.
    view = cxlkv.as_buffer(out)
    assert view.__array_interface__["data"][0] == out.data_ptr()
    with pytest.raises(ValueError, match="contiguous"):
        store.put("x", t.transpose(0, 3))
    # float16 and float32 tensors too.
    for dtype in (torch.float16, torch.float32):
        x = torch.arange(1000, dtype=dtype)
        store.put(f"d{dtype}", x)
        y = torch.zeros_like(x)
        store.get_into(f"d{dtype}", y)
        assert torch.equal(x, y)


def test_pin_is_a_zero_copy_read_only_view(store):
    a = np.arange(1000, dtype=np.int64)
    store.put("p", a)
    with store.pin("p") as lease:
        view = np.frombuffer(lease, dtype=np.int64)
        assert np.array_equal(view, a)
        assert lease.size == a.nbytes and lease.tier == 0
        assert not view.flags.writeable
        with pytest.raises(ValueError, match="still held"):
            store.close()
        del view
    assert lease.released
    with pytest.raises(KeyError):
        store.pin("absent")


def test_batched_gets_and_puts_complete_on_the_eventfd(store):
    chunks = {f"vllm@m@1@0@{i:04x}": np.full(1 << 18, i, dtype=np.float32) for i in range(16)}
    cq = cxlkv.CompletionQueue()
    store.submit_puts([(k, v, ("put", k), b"m" + k.encode()[-4:]) for k, v in chunks.items()], cq)
    done = []
    while len(done) < len(chunks):
        select.select([cq.fd], [], [], 10)
        done += cq.poll()
    assert all(code == "OK" for _, code, _, _, _ in done), done
    assert {u[1] for u, *_ in done} == set(chunks)
    outs = {k: np.zeros_like(v) for k, v in chunks.items()}
    requests = [(k, outs[k], k) for k in chunks] + [("vllm@m@1@0@absent", np.zeros(4), "miss")]
    store.submit_gets(requests, cq)
    results = {}
    while len(results) < len(requests):
        for user, code, size, message, meta in cq.poll(timeout_ms=10000):
            results[user] = (code, size, meta)
    for k, v in chunks.items():
        assert results[k][0] == "OK" and results[k][1] == v.nbytes
        assert results[k][2] == b"m" + k.encode()[-4:]
        assert np.array_equal(outs[k], v)
    assert results["miss"][0] == "NotFound"
    assert cq.in_flight == 0


def test_a_queue_dropped_with_operations_in_flight_waits_for_them(store):
    a = np.ones(1 << 20, dtype=np.uint8)
    cq = cxlkv.CompletionQueue()
    store.submit_puts([(f"q{i}", a, i, b"") for i in range(8)], cq)
    del cq  # must not free the buffers under the copy threads
    assert all(store.contains(f"q{i}") for i in range(8))


def test_threads_share_one_store(store):
    errors = []

    def worker(n):
        try:
            for i in range(50):
                a = np.full(4096, n * 1000 + i, dtype=np.int32)
                store.put(f"t{n}-{i}", a)
                out = np.empty_like(a)
                store.get_into(f"t{n}-{i}", out)
                assert np.array_equal(out, a)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    stats = store.stats()
    assert stats["index_entries"] >= 200
    assert stats["tiers"][0]["name"] == "dram" and stats["tiers"][0]["hits"] >= 200
    assert stats["put_latency"]["count"] >= 200
    assert "dram" in store.stats_text()


def test_errors_are_python_exceptions(store, tmp_path):
    with pytest.raises(KeyError):
        store.get_into("absent", bytearray(10))
    store.put("small", b"x" * 100)
    with pytest.raises(ValueError, match="smaller than the chunk"):
        store.get_into("small", bytearray(10))
    with pytest.raises(ValueError):
        store.put("k" * 151, b"x")
    with pytest.raises(ValueError):
        store.put("m", b"x", meta=b"y" * 65)
    with pytest.raises(TypeError, match="buffer"):
        store.put("n", 12345)
    with pytest.raises(BufferError):
        store.get_into("small", b"read-only bytes")  # not writable
    with pytest.raises(ValueError, match="unknown key 'capacty'"):
        cxlkv.open([{"source": "dram", "capacty": "1G"}])
    with pytest.raises(ValueError, match="256Q"):
        cxlkv.open([{"source": "dram", "capacity": "256Q"}])
    with pytest.raises(ValueError, match="unknown kind"):
        cxlkv.open([{"source": "nowhere", "capacity": "16M"}])
    with pytest.raises(RuntimeError, match="NotFound"):
        cxlkv.open([{"source": f"file:{tmp_path}/no/such/dir/pool", "capacity": "16M"}])
