"""cxlkv under LMCache's multi-process (MP) mode, as an L2 adapter.

LMCache's MP server (`lmcache server`) loads it with its `native_plugin` L2 adapter type:

    lmcache server ... --l2-adapter '{"type": "native_plugin",
        "module_path": "cxlkv.lmcache_native", "class_name": "CxlkvConnector",
        "adapter_params": {"tiers": [{"source": "file:/mnt/cxl/pool", "capacity": "64G",
                                      "durability": "persist-on-put"}]}}'

LMCache imports this module, calls CxlkvConnector(**adapter_params) and wraps the object in its
NativeConnectorL2Adapter, which drives event_fd, submit_batch_get/set/exists/delete and
drain_completions. adapter_params are cxlkv.open's arguments: "tiers" (a list of
{"source", "capacity", "durability", ...} dicts, fastest first; default one DRAM tier of
1 GiB) and its keyword arguments (cxlkv.OPTION_KEYS: "chunk_sizes", "slab_size",
"ttl_seconds", "spill_path", "spill_capacity", ...), checked by the same options schema. A durable tier (persist-on-put or background) keeps its chunks
across restarts of LMCache's server. See docs/lmcache.md.
"""
from ._cxlkv import LmcacheConnector as CxlkvConnector

__all__ = ["CxlkvConnector"]
