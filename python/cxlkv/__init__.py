"""cxlkv: a tiered store of KV-cache chunks over DRAM, CXL memory, /dev/dax and files.

    import cxlkv, numpy as np
    store = cxlkv.open([{"source": "dram", "capacity": "1G"}])
    store.put("vllm@m@1@0@abc", np.arange(1024, dtype=np.float32))
    out = np.empty(1024, dtype=np.float32)
    store.get_into("vllm@m@1@0@abc", out)

Buffers go straight to and from the store with no extra copy: anything with the buffer
protocol (bytes, bytearray, memoryview, numpy arrays), and CPU torch tensors through
as_buffer (a byte view of the tensor's own storage). Batched operations complete on a
CompletionQueue whose fd (an eventfd) can be watched by select, epoll or asyncio.
"""
from ._cxlkv import (DURABILITIES, MAX_KEY_SIZE, MAX_META_SIZE, OPTION_KEYS, CompletionQueue,
                     Pinned, Store, describe_options, option_help)

__all__ = ["DURABILITIES", "MAX_KEY_SIZE", "MAX_META_SIZE", "OPTION_KEYS", "CompletionQueue",
           "Pinned", "Store", "as_buffer", "describe_options", "open", "option_help"]


def as_buffer(obj):
    """A buffer over obj's bytes, without copying them.

    Buffer-protocol objects are returned as they are. A torch tensor must be on the CPU and
    contiguous; it is viewed as uint8 (numpy has no bfloat16), sharing its storage.
    """
    if hasattr(obj, "data_ptr") and hasattr(obj, "is_contiguous"):  # a torch tensor
        import torch
        if obj.device.type != "cpu":
            raise ValueError(f"tensor is on {obj.device}; cxlkv needs a CPU tensor")
        if not obj.is_contiguous():
            raise ValueError("tensor is not contiguous")
        return obj.detach().reshape(-1).view(torch.uint8).numpy()
    return obj


class _Store(Store):
    """Store with torch tensors accepted wherever a buffer is."""

    def put(self, key, data, meta=b""):
        return super().put(key, as_buffer(data), meta)

    def get_into(self, key, out):
        return super().get_into(key, as_buffer(out))

    def submit_gets(self, requests, cq):
        return super().submit_gets([(k, as_buffer(b), u) for k, b, u in requests], cq)

    def submit_puts(self, requests, cq):
        return super().submit_puts([(k, as_buffer(b), u, m) for k, b, u, m in requests], cq)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open(tiers, **options):  # noqa: A001 (the natural name: cxlkv.open)
    """Opens a store. tiers: fastest first, dicts of [[tier]] keys: "source" ("dram", "numa:N",
    "file:PATH", "devdax:PATH") and "capacity" (bytes or "256M"), optionally "name",
    "eviction" (lru, fifo, lfu, s3fifo, prefix-chains, prefix, prefix-hazard), "copy",
    "high_watermark", "low_watermark", "promote_after_hits", "durability", "format",
    "flush_interval_ms". options: the [store]
    keys (chunk_sizes, slab_size, ttl_seconds, copy_threads, background) and the [spill] keys
    prefixed spill_ (spill_path, spill_capacity, ...): OPTION_KEYS; option_help() gives each
    one's type, range and meaning. The keys and ranges are those of `cxlkv serve`'s config."""
    return _Store(list(tiers), **options)
