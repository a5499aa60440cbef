"""CxlkvBackend: cxlkv's Store behind LMCache's storage-backend interface.

LMCache loads it as a storage plugin (external backend) from its configuration, e.g.

    external_backends: "cxlkv"
    extra_config:
      external_backend.cxlkv.module_path: cxlkv.lmcache_backend
      external_backend.cxlkv.class_name: CxlkvBackend
      cxlkv.tiers: "dram:8G,file:/mnt/cxl/pool:64G"

and calls contains, batched_submit_put_task, get_blocking, get_non_blocking,
batched_get_blocking, pin, unpin, remove and close. Chunks are LMCache MemoryObjs: their
bytes go into the store straight from the object's buffer, and come back straight into a
buffer the local CPU backend allocates, with no staging copy. The format, dtype and shape are
stored with each chunk, in the same encoding `cxlkv serve` uses for lm:// chunks.

LMCache is not needed to import this module (the tests drive it with LMCache-shaped
objects); where it is installed the class derives from its StorageBackendInterface.
"""
import select
import struct
import threading
from concurrent.futures import Future

import cxlkv

try:  # pragma: no cover - only where LMCache is installed
    from lmcache.v1.storage_backend.abstract_backend import StorageBackendInterface as _Base
except ImportError:  # LMCache absent: the same methods, no base class
    _Base = object

# LMCache's dtype numbers (lmcache/v1/protocol.py), by torch dtype name.
_DTYPE_TO_INT = {"float16": 2, "bfloat16": 3, "float32": 4, "float64": 5, "uint8": 6,
                 "float8_e4m3fn": 7, "float8_e5m2": 8}
_INT_TO_DTYPE = {v: k for k, v in _DTYPE_TO_INT.items()}
# Metadata: a version byte, then fmt, dtype and four shape dimensions as native int32; what
# server/protocol.cc writes for chunks stored over lm://.
_META = struct.Struct("=B6i")
_META_VERSION = 1


def encode_layout(fmt, dtype_name, shape):
    shape = list(shape)
    if len(shape) > 4:
        raise ValueError(f"shape {shape} has more than 4 dimensions")
    shape += [0] * (4 - len(shape))
    return _META.pack(_META_VERSION, int(fmt), _DTYPE_TO_INT.get(dtype_name, 0), *shape)


def decode_layout(meta):
    """(fmt, dtype name or None, shape tuple without trailing zeros) or None."""
    if meta is None or len(meta) != _META.size:
        return None
    version, fmt, dtype, *shape = _META.unpack(meta)
    if version != _META_VERSION:
        return None
    while len(shape) > 1 and shape[-1] == 0:
        shape.pop()
    return fmt, _INT_TO_DTYPE.get(dtype), tuple(shape)


def _key_str(key):
    return key.to_string() if hasattr(key, "to_string") else str(key)


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def _parse_tiers(text):
    """"dram:8G,file:/p:64G" -> tier dicts (the capacity is after the last colon)."""
    tiers = []
    for part in text.split(","):
        source, _, capacity = part.strip().rpartition(":")
        if not source or not capacity:
            raise ValueError(f"cxlkv.tiers entry {part!r} is not SOURCE:CAPACITY")
        tiers.append({"source": source, "capacity": capacity})
    return tiers


class CxlkvBackend(_Base):
    """LMCache storage backend over a cxlkv Store. Thread-safe: LMCache calls it from its
    event loop and worker threads."""

    def __init__(self, config=None, metadata=None, loop=None, local_cpu_backend=None,
                 dst_device="cpu", store=None, **_):
        self.dst_device = dst_device
        self.local_cpu_backend = local_cpu_backend
        self.loop = loop
        if store is None:
            extra = getattr(config, "extra_config", None) or {}
            tiers = _parse_tiers(extra.get("cxlkv.tiers", "dram:1G"))
            store = cxlkv.open(tiers, chunk_sizes=extra.get("cxlkv.chunk_sizes"))
        self.store = store
        self._lock = threading.Lock()
        self._leases = {}          # key -> Pinned (pin/unpin)
        self._putting = set()      # keys whose put is in flight
        self._cq = cxlkv.CompletionQueue()
        self._closed = False
        self._reaper = threading.Thread(target=self._reap, name="cxlkv-completions", daemon=True)
        self._reaper.start()

    # --- completions: one thread waits on the queue's eventfd and settles futures ---

    def _reap(self):
        while not self._closed or self._cq.in_flight:
            ready, _, _ = select.select([self._cq.fd], [], [], 0.05)
            if not ready:
                continue
            for user_data, code, size, message, meta in self._cq.poll():
                future, finish = user_data
                try:
                    future.set_result(finish(code, size, message, meta))
                except Exception as e:  # noqa: BLE001 - handed to the waiter
                    future.set_exception(e)

    # --- the interface ---

    def contains(self, key, pin=False):
        k = _key_str(key)
        if not self.store.contains(k):
            return False
        return self.pin(key) if pin else True

    def exists_in_put_tasks(self, key):
        with self._lock:
            return _key_str(key) in self._putting

    def batched_submit_put_task(self, keys, objs, transfer_spec=None):
        requests, futures = [], []
        for key, obj in zip(keys, objs):
            k = _key_str(key)
            meta = encode_layout(int(obj.get_memory_format().value), _dtype_name(obj.get_dtype()),
                                 obj.get_shape())
            if hasattr(obj, "ref_count_up"):
                obj.ref_count_up()  # LMCache's objects stay allocated until the put is done
            future = Future()

            def finish(code, size, message, meta_out, k=k, obj=obj):
                with self._lock:
                    self._putting.discard(k)
                if hasattr(obj, "ref_count_down"):
                    obj.ref_count_down()
                if code != "OK":
                    raise RuntimeError(f"cxlkv put of {k}: {code}: {message}")
                return size

            with self._lock:
                self._putting.add(k)
            requests.append((k, obj.byte_array, (future, finish), meta))
            futures.append(future)
        self.store.submit_puts(requests, self._cq)
        return futures

    def submit_prefetch_task(self, key):
        # Memory tiers need no prefetch; a spilled chunk comes back on its first read.
        return self.store.contains(_key_str(key))

    def _allocate(self, k):
        layout = decode_layout(self.store.meta(k))
        if layout is None or self.local_cpu_backend is None:
            return None
        fmt, dtype_name, shape = layout
        import torch
        from types import SimpleNamespace
        dtype = getattr(torch, dtype_name) if dtype_name else torch.uint8
        try:  # LMCache's MemoryFormat, when it is installed
            from lmcache.v1.memory_management import MemoryFormat
            fmt = MemoryFormat(fmt)
        except ImportError:
            fmt = SimpleNamespace(value=fmt)
        return self.local_cpu_backend.allocate(torch.Size(shape), dtype, fmt)

    def get_blocking(self, key):
        k = _key_str(key)
        obj = self._allocate(k)
        if obj is None:
            return None
        try:
            self.store.get_into(k, obj.byte_array)
        except KeyError:  # evicted since the metadata was read
            if hasattr(obj, "ref_count_down"):
                obj.ref_count_down()
            return None
        return obj

    def _submit_gets(self, keys):
        """Futures (or None for chunks absent at submit) for one ordered batch of gets."""
        requests, futures = [], []
        for key in keys:
            k = _key_str(key)
            obj = self._allocate(k)
            if obj is None:
                futures.append(None)
                continue
            future = Future()

            def finish(code, size, message, meta, obj=obj):
                if code == "OK":
                    return obj
                if hasattr(obj, "ref_count_down"):
                    obj.ref_count_down()
                if code == "NotFound":
                    return None
                raise RuntimeError(f"cxlkv get: {code}: {message}")

            requests.append((k, obj.byte_array, (future, finish)))
            futures.append(future)
        if requests:
            self.store.submit_gets(requests, self._cq)
        return futures

    def get_non_blocking(self, key):
        return self._submit_gets([key])[0]

    def batched_get_blocking(self, keys):
        # One ordered batch: the store's copy threads read the chunks in the order LMCache
        # will use them, a large chunk split across threads.
        return [f.result() if f is not None else None for f in self._submit_gets(keys)]

    def pin(self, key):
        k = _key_str(key)
        with self._lock:
            if k in self._leases:
                return True
            try:
                self._leases[k] = self.store.pin(k)
            except KeyError:
                return False
        return True

    def unpin(self, key):
        with self._lock:
            lease = self._leases.pop(_key_str(key), None)
        if lease is None:
            return False
        lease.release()
        return True

    def remove(self, key, force=True):
        self.unpin(key)
        return self.store.remove(_key_str(key))

    def batched_remove(self, keys, force=True):
        return sum(1 for k in keys if self.remove(k, force))

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._reaper.join()
        with self._lock:
            leases, self._leases = self._leases, {}
        for lease in leases.values():
            lease.release()
        self.store.close()
