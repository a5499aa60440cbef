"""CxlkvBackend: cxlkv's Store as an LMCache storage plugin (LMCache's in-process mode).

LMCache's current loader (storage_plugin_launcher) finds it from its configuration:

    storage_plugins: ["cxlkv"]
    extra_config:
      storage_plugin.cxlkv.module_path: cxlkv.lmcache_backend
      storage_plugin.cxlkv.class_name: CxlkvBackend
      cxlkv.tiers: "dram:8G,file:/mnt/cxl/pool:64G:persist-on-put"

and the older keyword loader the same with `external_backends: "cxlkv"` and
`external_backend.cxlkv.module_path/class_name`. The constructor takes both loaders' calls: the
keyword one (config=, dst_device=, metadata=, local_cpu_backend=, loop=) and the positional one
of LMCache's first loader (config, metadata, loop, memory_allocator, local_cpu_backend,
dst_device, lookup_server).

Settings, all in extra_config, all optional; an unknown `cxlkv.*` key is an error, never
ignored:
    cxlkv.tiers           "SOURCE:CAPACITY[:DURABILITY],..." fastest first (default
                          "dram:1G"), or a list of cxlkv.open tier dicts (or its JSON)
    cxlkv.KEY             every keyword argument of cxlkv.open (cxlkv.OPTION_KEYS: the
                          [store] keys, the [spill] keys prefixed spill_; cxlkv.option_help()),
                          e.g. cxlkv.chunk_sizes "2M,4M", cxlkv.spill_path, cxlkv.ttl_seconds

It implements LMCache's StorageBackendInterface as its newest abstract_backend.py declares it
(docs/lmcache.md names the commit): contains, exists_in_put_tasks, batched_submit_put_task
(with on_complete_callback), get_blocking, get_non_blocking (with location),
batched_get_blocking, batched_async_contains, batched_get_non_blocking, batched_contains, pin,
unpin, remove, batched_remove, get_allocator_backend, touch_cache, close. Chunk bytes go from a
MemoryObj's byte_array into the store and come back into one the local CPU backend allocates,
one copy each way; the format, dtype and shape are stored with each chunk in the encoding
`cxlkv serve` uses for lm:// chunks.

LMCache is not needed to import this module: where it is installed the class derives from its
StoragePluginInterface, else from nothing.
"""
import asyncio
import json
import logging
import select
import struct
import threading
from concurrent.futures import Future

import cxlkv

try:  # LMCache's plugin base class (its newest abstract_backend.py), where LMCache is installed
    from lmcache.v1.storage_backend.abstract_backend import StoragePluginInterface as _Base
    _BASE_TAKES_CONFIG = True
except ImportError:
    try:
        from lmcache.v1.storage_backend.abstract_backend import StorageBackendInterface as _Base
    except ImportError:
        _Base = object
    _BASE_TAKES_CONFIG = False

logger = logging.getLogger(__name__)

# LMCache's dtype numbers (lmcache/v1/protocol.py, DTYPE_TO_INT), by torch dtype name.
_DTYPE_TO_INT = {"float16": 2, "bfloat16": 3, "float32": 4, "float64": 5, "uint8": 6,
                 "float8_e4m3fn": 7, "float8_e5m2": 8}
_INT_TO_DTYPE = {v: k for k, v in _DTYPE_TO_INT.items()}
_INT_TO_DTYPE[1] = "float16"  # torch.half
# Metadata: a version byte, then fmt, dtype and four shape dimensions as native int32; what
# server/protocol.cc writes for chunks stored over lm://.
_META = struct.Struct("=B6i")
_META_VERSION = 1
_BINARY_FORMATS = (4, 5)  # MemoryFormat.BINARY, BINARY_BUFFER: shapes keep their zeros


def encode_layout(fmt, dtype_name, shape):
    shape = list(shape)
    if len(shape) > 4:
        raise ValueError(f"shape {shape} has more than 4 dimensions")
    shape += [0] * (4 - len(shape))
    return _META.pack(_META_VERSION, int(fmt), _DTYPE_TO_INT.get(dtype_name, 0), *shape)


def decode_layout(meta):
    """(fmt, dtype name or None, shape tuple) or None. Tensor shapes lose the zeros that padded
    them to 4 dimensions; byte-buffer shapes ([n, 0, 0, 0]) keep them, as LMCache's do."""
    if meta is None or len(meta) != _META.size:
        return None
    version, fmt, dtype, *shape = _META.unpack(meta)
    if version != _META_VERSION:
        return None
    if fmt not in _BINARY_FORMATS:
        while len(shape) > 1 and shape[-1] == 0:
            shape.pop()
    return fmt, _INT_TO_DTYPE.get(dtype), tuple(shape)


def _key_str(key):
    return key.to_string() if hasattr(key, "to_string") else str(key)


def _dtype_name(dtype):
    return None if dtype is None else str(dtype).replace("torch.", "")


def parse_tiers(value):
    """cxlkv.tiers -> tier dicts. A string "SOURCE:CAPACITY[:DURABILITY],..." (the capacity is
    after the last colon but an optional durability), a list of dicts, or that list's JSON."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        value = json.loads(value)
    if isinstance(value, (list, tuple)):
        return [dict(t) for t in value]
    tiers = []
    for part in str(value).split(","):
        part = part.strip()
        durability = None
        head, _, last = part.rpartition(":")
        if last in cxlkv.DURABILITIES:
            durability, part = last, head
        source, _, capacity = part.rpartition(":")
        if not source or not capacity:
            raise ValueError(f"cxlkv.tiers entry {part!r} is not SOURCE:CAPACITY[:DURABILITY]")
        tier = {"source": source, "capacity": capacity}
        if durability:
            tier["durability"] = durability
        tiers.append(tier)
    return tiers


def store_options_from_config(extra):
    """(tiers, keyword arguments) of cxlkv.open from LMCache's extra_config (the cxlkv.* keys).
    The keys are the options schema's (cxlkv.OPTION_KEYS); values may be strings, as LMCache's
    YAML gives them ("4", "2M,4M"): the schema parses them."""
    extra = extra or {}
    known = ("tiers",) + tuple(cxlkv.OPTION_KEYS)
    unknown = [k for k in extra if k.startswith("cxlkv.") and k[6:] not in known]
    if unknown:
        raise ValueError(f"unknown cxlkv settings {sorted(unknown)} in extra_config (known: "
                         + ", ".join("cxlkv." + s for s in known) + ")")
    options = {k[6:]: v for k, v in extra.items() if k.startswith("cxlkv.") and k != "cxlkv.tiers"}
    return parse_tiers(extra.get("cxlkv.tiers", "dram:1G")), options


def open_store_from_config(extra):
    """A cxlkv store from LMCache's extra_config (the cxlkv.* keys)."""
    tiers, options = store_options_from_config(extra)
    return cxlkv.open(tiers, **options)


class CxlkvBackend(_Base):
    """LMCache storage plugin over a cxlkv Store. Thread-safe: LMCache calls it from its event
    loop and worker threads."""

    def __init__(self, config=None, metadata=None, loop=None, memory_allocator=None,
                 local_cpu_backend=None, dst_device="cpu", lookup_server=None, *, store=None):
        if _BASE_TAKES_CONFIG:
            super().__init__(dst_device=dst_device, config=config, metadata=metadata,
                             local_cpu_backend=local_cpu_backend, loop=loop)
        elif _Base is not object:
            super().__init__(dst_device=dst_device)
        self.config = config
        self.metadata = metadata
        self.dst_device = dst_device
        self.local_cpu_backend = local_cpu_backend
        self.loop = loop
        if store is None:
            store = open_store_from_config(getattr(config, "extra_config", None))
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

    # --- lookups ---

    def contains(self, key, pin=False):
        k = _key_str(key)
        if not self.store.contains(k):
            return False
        return self.pin(key) if pin else True

    def batched_contains(self, keys, pin=False):
        """How many leading keys are stored (LMCache's prefix match)."""
        hits = 0
        for key in keys:
            if not self.contains(key, pin):
                break
            hits += 1
        return hits

    async def batched_async_contains(self, lookup_id, keys, pin=False):
        return self.batched_contains(keys, pin)

    def exists_in_put_tasks(self, key):
        with self._lock:
            return _key_str(key) in self._putting

    # --- puts ---

    def batched_submit_put_task(self, keys, objs, transfer_spec=None, on_complete_callback=None):
        requests, futures = [], []
        for key, obj in zip(keys, objs):
            k = _key_str(key)
            meta = encode_layout(int(obj.get_memory_format().value), _dtype_name(obj.get_dtype()),
                                 obj.get_shape())
            if hasattr(obj, "ref_count_up"):
                obj.ref_count_up()  # LMCache's object stays allocated until the put is done
            future = Future()

            def finish(code, size, message, meta_out, k=k, key=key, obj=obj):
                with self._lock:
                    self._putting.discard(k)
                if hasattr(obj, "ref_count_down"):
                    obj.ref_count_down()
                if code != "OK":
                    raise RuntimeError(f"cxlkv put of {k}: {code}: {message}")
                if on_complete_callback is not None:
                    try:
                        on_complete_callback(key)
                    except Exception:  # noqa: BLE001 - LMCache's contract: caught and logged
                        logger.exception("on_complete_callback for %s raised", k)
                return size

            with self._lock:
                self._putting.add(k)
            requests.append((k, obj.byte_array, (future, finish), meta))
            futures.append(future)
        if requests:
            self.store.submit_puts(requests, self._cq)
        return futures

    async def async_batched_submit_put_task(self, keys, objs, transfer_spec=None,
                                            on_complete_callback=None):
        futures = self.batched_submit_put_task(keys, objs, transfer_spec, on_complete_callback)
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures),
                             return_exceptions=True)

    def submit_prefetch_task(self, key):
        # Memory tiers need no prefetch; a spilled chunk comes back on its first read.
        return self.store.contains(_key_str(key))

    # --- gets ---

    def get_allocator_backend(self):
        """Gets allocate their MemoryObjs from LMCache's local CPU backend."""
        return self.local_cpu_backend

    def _allocate(self, k):
        layout = decode_layout(self.store.meta(k))
        if layout is None or self.local_cpu_backend is None:
            return None
        fmt, dtype_name, shape = layout
        import torch
        from types import SimpleNamespace
        dtype = getattr(torch, dtype_name) if dtype_name else None
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

    def get_non_blocking(self, key, location=None):
        return self._submit_gets([key])[0]

    def batched_get_blocking(self, keys):
        # One ordered batch: the store's copy threads read the chunks in the order LMCache
        # will use them, a large chunk split across threads.
        return [f.result() if f is not None else None for f in self._submit_gets(keys)]

    async def batched_get_non_blocking(self, lookup_id, keys, transfer_spec=None):
        """The MemoryObjs of the leading keys that load (LMCache asks for a prefix it found
        with batched_async_contains); objects after the first miss are given back."""
        futures = self._submit_gets(keys)
        got = []
        for f in futures:
            got.append(None if f is None else await asyncio.wrap_future(f))
        out = []
        for obj in got:
            if obj is None:
                break
            out.append(obj)
        for obj in got[len(out):]:
            if obj is not None and hasattr(obj, "ref_count_down"):
                obj.ref_count_down()
        return out

    def touch_cache(self):
        # Every read already updates the store's own eviction policy.
        return None

    # --- leases and removal ---

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
