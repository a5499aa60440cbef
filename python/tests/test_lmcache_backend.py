"""cxlkv.lmcache_backend.CxlkvBackend driven the way LMCache drives a storage backend, with
LMCache-shaped MemoryObjs and a local CPU backend that allocates torch tensors."""
import threading
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (apt-get install python3-torch)")

import cxlkv  # noqa: E402
from cxlkv.lmcache_backend import CxlkvBackend, decode_layout, encode_layout  # noqa: E402


class MemoryObj:
    """What LMCache's MemoryObj offers a backend: a tensor, its bytes, shape, dtype, format
    and a reference count."""

    def __init__(self, shape, dtype, fmt):
        self.tensor = torch.zeros(shape, dtype=dtype)
        self.fmt = fmt
        self.refs = 1
        self.lock = threading.Lock()

    @property
    def byte_array(self):
        return cxlkv.as_buffer(self.tensor)

    def get_shape(self):
        return self.tensor.shape

    def get_dtype(self):
        return self.tensor.dtype

    def get_memory_format(self):
        return self.fmt

    def ref_count_up(self):
        with self.lock:
            self.refs += 1

    def ref_count_down(self):
        with self.lock:
            self.refs -= 1


class LocalCPUBackend:
    def __init__(self):
        self.allocated = 0

    def allocate(self, shape, dtype, fmt):
        self.allocated += 1
        return MemoryObj(shape, dtype, fmt)


class Key:
    def __init__(self, text):
        self.text = text

    def to_string(self):
        return self.text


KV_2LTD = SimpleNamespace(value=1)


def chunk(i, shape=(2, 4, 32, 256), dtype=torch.bfloat16):
    obj = MemoryObj(shape, dtype, KV_2LTD)
    obj.tensor.copy_(torch.arange(obj.tensor.numel()).reshape(shape).to(dtype) + i)
    return obj


@pytest.fixture
def backend():
    store = cxlkv.open([{"source": "dram", "capacity": "128M"}], slab_size="1M")
    b = CxlkvBackend(local_cpu_backend=LocalCPUBackend(), store=store)
    yield b
    b.close()


def keys(n, prefix="vllm@llama@1@0@"):
    return [Key(f"{prefix}{i:08x}") for i in range(n)]


def test_put_then_get_blocking_with_shape_dtype_format(backend):
    ks = keys(4)
    objs = [chunk(i) for i in range(4)]
    futures = backend.batched_submit_put_task(ks, objs)
    assert [f.result(timeout=10) for f in futures] == [o.tensor.numel() * 2 for o in objs]
    assert all(o.refs == 1 for o in objs)  # every reference taken for the put was returned
    assert not backend.exists_in_put_tasks(ks[0])
    for k, o in zip(ks, objs):
        assert backend.contains(k)
        got = backend.get_blocking(k)
        assert got.get_shape() == o.get_shape() and got.get_dtype() == torch.bfloat16
        assert got.get_memory_format().value == 1
        assert torch.equal(got.tensor, o.tensor)
    assert backend.get_blocking(Key("vllm@llama@1@0@absent")) is None
    assert not backend.contains(Key("vllm@llama@1@0@absent"))


def test_batched_and_non_blocking_gets(backend):
    ks = keys(12)
    objs = [chunk(i, shape=(2, 2, 16, 64), dtype=torch.float16) for i in range(12)]
    for f in backend.batched_submit_put_task(ks, objs):
        f.result(timeout=10)
    got = backend.batched_get_blocking(ks + [Key("missing")])
    assert got[-1] is None
    for g, o in zip(got, objs):
        assert torch.equal(g.tensor, o.tensor)
    future = backend.get_non_blocking(ks[3])
    assert torch.equal(future.result(timeout=10).tensor, objs[3].tensor)
    assert backend.get_non_blocking(Key("missing")) is None
    assert backend.submit_prefetch_task(ks[0]) and not backend.submit_prefetch_task(Key("missing"))


def test_pin_unpin_remove_close(backend):
    [k] = keys(1)
    backend.batched_submit_put_task([k], [chunk(7)])[0].result(timeout=10)
    assert backend.contains(k, pin=True)
    assert backend.pin(k) and backend.unpin(k)
    assert not backend.unpin(k)  # nothing pinned any more
    assert backend.pin(k)
    assert backend.remove(k)  # drops the lease too
    assert not backend.contains(k) and backend.get_blocking(k) is None
    assert not backend.pin(k) and not backend.remove(k)
    assert backend.batched_remove(keys(3)) == 0


def test_layout_encoding_is_the_lm_servers():
    meta = encode_layout(1, "bfloat16", (2, 32, 256, 1024))
    assert len(meta) == 25 and meta[0] == 1
    assert decode_layout(meta) == (1, "bfloat16", (2, 32, 256, 1024))
    assert decode_layout(encode_layout(2, "uint8", (3000,))) == (2, "uint8", (3000,))
    assert decode_layout(b"") is None
