"""A process that stores chunks through LMCache's MP L2 adapter until it is killed.

    mp_writer.py SPEC_JSON FIRST BATCHES

Builds the adapter with LMCache's own factory from the `--l2-adapter` JSON, then stores the
batches FIRST .. FIRST+BATCHES-1 of 4 chunks each; before each it prints `submit B SIZE`, and
`ack B SIZE` once LMCache's adapter reports the store task successful. test_warm_restart.py kills it with SIGKILL.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmcache_kit as kit  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from lmcache.v1.memory_management import HostMemoryAllocator, MemoryFormat  # noqa: E402

# Chunk sizes by batch: 64 KiB batches are copied at submit, 256 KiB ones by the copy threads.
SHAPES = {64 << 10: torch.Size([2, 1, 64, 256]), 256 << 10: torch.Size([2, 4, 64, 256])}


def size_of(batch):
    return 64 << 10 if batch % 3 == 0 else 256 << 10


def payload(index, size):
    return np.random.default_rng(index).integers(0, 256, size, dtype=np.uint8)


def main():
    spec, first, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    adapter = kit.build_l2_adapter(spec)
    alloc = HostMemoryAllocator(8 << 20)
    print("ready", flush=True)
    for b in range(first, first + batches):
        size = size_of(b)
        keys = [kit.mp_key("warm", 4 * b + j) for j in range(4)]
        objs = []
        for j in range(4):
            o = alloc.allocate(SHAPES[size], torch.bfloat16, MemoryFormat.KV_2LTD)
            o.tensor.view(torch.uint8).view(-1).copy_(torch.from_numpy(payload(4 * b + j, size)))
            objs.append(o)
        print(f"submit {b} {size}", flush=True)
        if kit.mp_store(adapter, keys, objs).is_successful():
            print(f"ack {b} {size}", flush=True)
        for o in objs:
            alloc.free(o)
    print("done", flush=True)
    time.sleep(120)  # until killed


if __name__ == "__main__":
    main()
