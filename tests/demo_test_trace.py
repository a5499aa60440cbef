#!/usr/bin/env python3
"""Small Mooncake-format traces for the `cxlkv demo` CLI tests, and what replaying one must give.

  demo_test_trace.py write PATH [KIND]
      Writes a 16-request trace. KIND good (the default) is well formed; the others break one
      line the way a damaged or foreign file would: bad-json, not-an-object, negative-length,
      wrong-block-count, float-id, empty.
  demo_test_trace.py expect PATH BYTES_PER_TOKEN CHUNK_TOKENS
      Prints, as JSON, the lookups, hits, bytes read and bytes written of a replay against a
      cache that never evicts: what the demo must report when its tiers never fill.

  demo_test_trace.py check OUT_JSON [EXPECT_JSON [never-drops|drops]]
      Checks the demo's --json output for consistency (counts add up, every hit verified, bytes
      per tier agree with the store's counters, the scratch directory gone) and, given the
      output of `expect`, against it: equal when no chunk was dropped (demotions lose nothing),
      bounded when the last tier had to drop some.

The chunking rule is restated here from the trace format rather than shared with the C++ code,
so the tests check the demo's replay against a second implementation.
"""
import json
import sys

BLOCK_TOKENS = 512


def requests():
    """New chats open with a 2-block shared system prompt; every third request is a later turn
    of an earlier chat (its full blocks, then new ones). Last blocks are partial."""
    next_id = [100]

    def new_ids(n):
        ids = list(range(next_id[0], next_id[0] + n))
        next_id[0] += n
        return ids

    chats = []
    out = []
    for i in range(16):
        if i % 3 == 2:
            previous = chats[(i * 5) % len(chats)]
            ids = previous[:-1] + new_ids(2)  # its partial last block changes in the next turn
        else:
            ids = [0, 1] + new_ids(2)
        chats.append(ids)
        tokens = BLOCK_TOKENS * (len(ids) - 1) + 300  # last block: a full and a 44-token chunk
        out.append({"timestamp": 250 * i, "input_length": tokens, "output_length": 40,
                    "hash_ids": ids})
    return out


def write(path, kind):
    lines = [json.dumps(r) for r in requests()]
    if kind == "bad-json":
        lines[3] = lines[3][:-5]
    elif kind == "not-an-object":
        lines[3] = "[1, 2, 3]"
    elif kind == "negative-length":
        lines[3] = lines[3].replace('"input_length": ', '"input_length": -')
    elif kind == "wrong-block-count":
        lines[3] = lines[3].replace('"hash_ids": [', '"hash_ids": [7, ')
    elif kind == "float-id":
        lines[3] = lines[3].replace('"hash_ids": [0', '"hash_ids": [0.5')
    elif kind == "empty":
        lines = []
    elif kind != "good":
        sys.exit("unknown kind " + kind)
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def chunks(request, chunk_tokens):
    """(key, tokens) of each chunk: a key names the block, the chunk's place in it and its
    token count, so a partial chunk never matches a full one."""
    left = request["input_length"]
    for block in request["hash_ids"]:
        for part in range(BLOCK_TOKENS // chunk_tokens):
            if left == 0:
                break
            tokens = min(chunk_tokens, left)
            left -= tokens
            yield (block, part, tokens), tokens


def expect(path, bytes_per_token, chunk_tokens):
    stored = set()
    e = {"requests": 0, "lookups": 0, "hits": 0, "bytes_read": 0, "bytes_written": 0}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            request = json.loads(line)
            e["requests"] += 1
            prefix = True
            for key, tokens in chunks(request, chunk_tokens):
                e["lookups"] += 1
                prefix = prefix and key in stored
                if prefix:
                    e["hits"] += 1
                    e["bytes_read"] += tokens * bytes_per_token
                elif key not in stored:
                    stored.add(key)
                    e["bytes_written"] += tokens * bytes_per_token
    print(json.dumps(e))


def check(out_path, expect_path, mode):
    import os
    d = json.load(open(out_path))
    tiers = d["tiers"]
    assert d["requests"] > 0 and d["lookups"] > 0, d
    assert d["lookups"] == d["hits"] + d["misses"], d
    assert 0 <= d["hit_ratio"] <= 1 and abs(d["hit_ratio"] - d["hits"] / d["lookups"]) < 1e-9, d
    assert d["verified"] == d["hits"] and d["failed"] == 0, "not every hit verified"
    assert d["chunks_written"] + d["already_stored"] == d["misses"], d
    assert sum(t["hits"] for t in tiers) == d["hits"], "tier hits do not add up"
    assert sum(t["get_chunks"] for t in tiers) == d["hits"], "gets per tier do not add up"
    assert sum(t["get_bytes"] for t in tiers) == d["bytes_read"], "bytes read per tier"
    for t in tiers:
        assert abs(t["hit_ratio"] - t["hits"] / d["lookups"]) < 1e-9, t
        assert t["get_bytes"] <= t["bytes_out"], t
        assert t["used_bytes"] <= t["capacity"], t
    # Bytes into the tiers are the puts plus the demotions; bytes out are the gets plus the
    # same demotions.
    demoted_in = sum(t["bytes_in"] for t in tiers) - d["bytes_written"]
    demoted_out = sum(t["bytes_out"] for t in tiers) - d["bytes_read"]
    assert demoted_in == demoted_out >= 0, (demoted_in, demoted_out)
    assert d["memcpy_bytes"] == d["bytes_read"], "baseline must copy what the gets read"
    assert tiers[0]["source"] == "dram", tiers[0]
    assert tiers[1]["source"].startswith("file:") and tiers[1]["source"].endswith("/tier1.pool")
    assert d["kept"] or not os.path.exists(d["dir"]), "scratch directory left behind"
    if expect_path:
        e = json.load(open(expect_path))
        assert d["requests"] == e["requests"] and d["lookups"] == e["lookups"], (d, e)
        dropped = sum(t["evictions"] - t["demotions"] for t in tiers)
        if mode == "never-drops":
            assert dropped == 0, "tiers too small for this test: %d chunks dropped" % dropped
            for key in ("hits", "bytes_read", "bytes_written"):
                assert d[key] == e[key], (key, d[key], e[key])
        else:
            assert tiers[0]["demotions"] > 0 and dropped > 0, tiers
            assert d["hits"] <= e["hits"] and d["bytes_written"] >= e["bytes_written"], (d, e)
    print("demo json ok: %d requests, %d/%d chunks hit (%s), %d verified" % (
        d["requests"], d["hits"], d["lookups"],
        ", ".join("%s %d" % (t["name"], t["hits"]) for t in tiers), d["verified"]))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "good")
    elif len(sys.argv) in (3, 4, 5) and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None,
              sys.argv[4] if len(sys.argv) > 4 else "never-drops")
    elif len(sys.argv) == 5 and sys.argv[1] == "expect":
        expect(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
