#!/usr/bin/env python3
"""Writes the seed corpus of the lm:// fuzz targets: server/fuzz/make_corpus.py DIR
(DIR/lm_frame_fuzz/, DIR/connection_fuzz/; file names are the contents' SHA-1, as libFuzzer
names what it adds). The input formats are described in lm_frame_fuzz.cc and
connection_fuzz.cc; the seeds cover every command, LMCache-shaped headers, each kind of bad
header, and for the connection: pipelined requests, payloads split at odd points, a cut
PUT, a stalled PUT and an unread reply with the clock advanced, duplicates and budgets."""
import hashlib
import os
import struct
import sys

PUT, GET, EXIST, LIST, HEALTH = 1, 2, 3, 4, 5


def header(command, key=b"", length=0, fmt=1, dtype=2, location=0, shape=(0, 0, 0, 0), pad=b" "):
    return struct.pack("<9i", command, length, fmt, dtype, location, *shape) + key.ljust(150, pad)


def frame_seeds():
    key = b"vllm@meta-llama/Llama-3.1-8B@1@0@9f3c2a"
    yield header(PUT, key, 2 << 20, 1, 3, shape=(2, 32, 256, 128))  # KV_2LTD bf16, 2 MiB
    yield header(PUT, key, 4096, 5, 0, shape=(4096, 0, 0, 0))        # BINARY_BUFFER
    yield header(PUT, key, 1000, 4, 6, shape=(1000, 0, 0, 0))        # BINARY uint8
    yield header(PUT, key, 4096, 6, 3, shape=(1, 2048, 0, 0))        # KV_MLA
    yield header(GET, key)
    yield header(EXIST, key, pad=b"\0")
    yield header(LIST)
    yield header(HEALTH)
    yield header(GET, b"k" * 150)
    yield header(GET, "ключ-日本".encode())
    yield header(9, key)                          # unknown command
    yield header(PUT, key, -1)                    # negative length
    yield header(PUT, key, 0)                     # empty PUT
    yield header(GET, b"bad\x01key")              # control character
    yield header(GET, b"\xc3\x28")                # not UTF-8
    yield header(GET, b"")                        # empty key
    yield header(PUT, key, 4096, 1, 3, shape=(2, 4, 8, 0))  # length is not the tensor's
    yield header(PUT, key, 4096, 7, 3)            # unknown format
    yield header(PUT, key, 8192, 5, 0, shape=(8192, 0, 0, 0)) + struct.pack("<I", 4096)  # > max


class Ops:
    REQUEST, RAW, DELIVER, DELIVER_ALL, TICK, TOGGLE_READING, HALF_CLOSE = range(7)

    def __init__(self, c0, c1):
        self.b = bytearray([c0, c1])

    def request(self, cmd, key, length=0, layout=0, seed=1):
        # cmd: 0 PUT, 1 GET, 2 EXIST, 3 LIST, 4 HEALTH, 5 a raw command byte
        self.b += bytes([self.REQUEST, cmd, key, layout, seed]) + struct.pack("<H", length)
        return self

    def raw(self, data):
        self.b += bytes([self.RAW, len(data)]) + data
        return self

    def deliver(self, n):
        self.b += bytes([self.DELIVER]) + struct.pack("<H", n - 1)
        return self

    def deliver_all(self):
        self.b += bytes([self.DELIVER_ALL])
        return self

    def tick(self, ms):
        self.b += bytes([self.TICK]) + struct.pack("<H", ms)
        return self

    def toggle_reading(self):
        self.b += bytes([self.TOGGLE_READING])
        return self

    def half_close(self):
        self.b += bytes([self.HALF_CLOSE])
        return self


def connection_seeds():
    # c0: budgets 64 KiB / 64 KiB, 256 KiB store, max payload 4 KiB, list 4 KiB; c1: no timers
    roomy = 0b0_01_0_10_10
    yield Ops(roomy, 0).request(0, 0, 1000).request(1, 0).request(2, 0).request(3, 0) \
        .request(4, 0).deliver_all().b
    yield Ops(roomy, 0).request(0, 1, 3000, 0, 7).deliver(1).deliver(185).deliver(1000) \
        .deliver(7).deliver_all().request(1, 1).deliver_all().b
    yield Ops(roomy, 0).request(0, 2, 2048, 1).request(1, 2).deliver(300).deliver(2000) \
        .deliver_all().b                                   # KV_2LTD layout, split oddly
    yield Ops(roomy, 0).request(0, 3, 1500).deliver(900).half_close().b   # cut mid-payload
    yield Ops(roomy, 0).request(0, 0, 800, 0, 1).request(0, 0, 800, 0, 2).request(1, 0) \
        .deliver_all().b                                   # duplicate: the first is kept
    yield Ops(roomy, 0b00_010_011).request(0, 1, 4000).deliver(500).tick(200).tick(200) \
        .request(2, 1).deliver_all().b                     # stalled PUT, request timeout
    yield Ops(roomy, 0b11_000_000).request(0, 1, 4000).deliver(300).tick(1500).tick(1000).b
    yield Ops(roomy, 0b00_010_000).request(0, 0, 4000).request(1, 0).toggle_reading() \
        .deliver_all().tick(250).tick(250).b              # unread GET, reply timeout
    yield Ops(0b0_01_0_00_00, 0).request(0, 0, 2000).request(1, 0).deliver_all().b  # over budget
    yield Ops(0b0_01_1_10_10, 0).request(0, 0, 3000).request(0, 1, 3000) \
        .request(0, 2, 3000).request(0, 3, 3000).request(0, 4, 3000).request(0, 5, 3000) \
        .request(1, 5).deliver_all().b                     # the 16 KiB store fills
    yield Ops(0b1_01_0_10_10, 0).request(0, 0, 100).request(0, 1, 100).request(0, 0x85, 100) \
        .request(3, 0).deliver_all().b                     # LIST cut at 64 bytes
    yield Ops(roomy, 0).request(4, 0).raw(b"\x09\x00\x00\x00" + b"\x00" * 60).deliver_all().b
    yield Ops(roomy, 0).request(5, 0).deliver_all().b      # a raw command byte
    yield Ops(roomy, 0).request(0, 1, 4160).deliver_all().b  # over max payload


def write(directory, seeds):
    os.makedirs(directory, exist_ok=True)
    for seed in seeds:
        data = bytes(seed)
        with open(os.path.join(directory, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    write(os.path.join(out, "lm_frame_fuzz"), frame_seeds())
    write(os.path.join(out, "connection_fuzz"), connection_seeds())
