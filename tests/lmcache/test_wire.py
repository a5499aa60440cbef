"""tests/serve/lm_client.py, the raw client the server's own tests use for frames LMCache would
never send, encodes and decodes exactly as LMCache's protocol.py does (both wire generations in
the kit): its requests byte for byte, its reply parser on LMCache's serialized replies."""
import importlib
import os
import sys

import lmcache_kit as kit  # noqa: F401  (skips this module without the kit)
import pytest
import torch

sys.path.insert(0, os.path.join(kit.ROOT, "tests", "serve"))
import lm_client  # noqa: E402

from lmcache.utils import CacheEngineKey  # noqa: E402
from lmcache.v1 import protocol as P  # noqa: E402  (the g2b generation: Constants)
from lmcache.v1.memory_management import MemoryFormat  # noqa: E402

CASES = [  # (fmt, dtype, shape)
    (MemoryFormat.KV_2LTD, torch.bfloat16, (2, 32, 256, 1024)),
    (MemoryFormat.KV_MLA_FMT, torch.bfloat16, (1, 61, 256, 576)),
    (MemoryFormat.KV_2LTD, torch.float32, (2, 2, 16, 128)),
    (MemoryFormat.KV_2LTD, torch.uint8, (2, 2, 16, 64)),
    (MemoryFormat.BINARY_BUFFER, None, (100000, 0, 0, 0)),
]


@pytest.mark.parametrize("fmt,dtype,shape", CASES)
def test_requests_are_lmcaches_bytes(fmt, dtype, shape):
    key = CacheEngineKey("vllm", "meta-llama/Llama-3.1-8B-Instruct", 1, 0, 0x1234abcd)
    length = 4096
    theirs = P.ClientMetaMessage(P.Constants.CLIENT_PUT, key, length, fmt, dtype,
                                 torch.Size(shape)).serialize()
    ours = lm_client.request(lm_client.PUT, key.to_string(), length, fmt.value,
                             P.DTYPE_TO_INT[dtype], shape)
    assert ours == theirs


@pytest.mark.parametrize("fmt,dtype,shape", CASES)
def test_replies_parse_as_lmcache_writes_them(fmt, dtype, shape):
    raw = P.ServerMetaMessage(P.Constants.SERVER_SUCCESS, 777, fmt, dtype,
                              torch.Size(shape)).serialize()
    r = lm_client.Reply(raw)
    assert (r.code, r.length, r.fmt, r.dtype, r.shape, r.location) == \
        (200, 777, fmt.value, P.DTYPE_TO_INT[dtype], tuple(shape), 0)
