#!/usr/bin/python3
"""Draws a `cxlkv replay sweep --csv` file: prefix hit ratio vs capacity for every policy, and
the share of the LRU-to-Belady gap each one closes.

usage: /usr/bin/python3 tools/replay_plot.py SWEEP.csv OUT.png [TITLE]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    rows = list(csv.DictReader(open(argv[1], newline="")))
    if not rows:
        print(f"replay_plot: {argv[1]} holds no rows", file=sys.stderr)
        return 2
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    title = argv[3] if len(argv) == 4 else rows[0]["trace"]
    fig, (hit, gap) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, policy in enumerate(policies):
        mine = sorted((float(r["capacity_percent"]), r) for r in rows if r["policy"] == policy)
        x = [c for c, _ in mine]
        style = dict(marker="o", color=colors[i % len(colors)],
                     linewidth=2.5 if policy == "prefix" else 1.2)
        if policy == "belady":
            style.update(color="black", linestyle="--")
        hit.plot(x, [100 * float(r["hit_ratio"]) for _, r in mine], label=policy, **style)
        if policy not in ("lru", "belady"):
            # Clipped: where Belady and LRU nearly meet, the share is noise.
            gap.plot(x, [max(-100.0, 100 * float(r["gap_closed"])) for _, r in mine],
                     label=policy, **style)
    unbounded = 100 * float(rows[0]["unbounded_hit_ratio"])
    hit.axhline(unbounded, color="grey", linewidth=0.8, linestyle=":")
    ticks = sorted({float(r["capacity_percent"]) for r in rows})
    for axis in (hit, gap):
        axis.set_xscale("log")
        axis.set_xticks(ticks, [f"{t:g}%" for t in ticks])
        axis.minorticks_off()
    hit.set_xlabel("capacity, % of the trace's unique bytes")
    hit.set_ylabel("prefix hit ratio, % of prompt tokens")
    hit.set_title(f"{title}: hit ratio (dotted: never evicting)")
    hit.legend(fontsize=8)
    gap.axhline(0, color="grey", linewidth=0.8)
    gap.axhline(25, color="grey", linewidth=0.8, linestyle=":")
    gap.set_ylim(-100, 100)
    gap.set_xlabel("capacity, % of the trace's unique bytes")
    gap.set_ylabel("% of the LRU-to-Belady gap closed")
    gap.set_title("share of the gap closed (clipped at -100%)")
    gap.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(argv[2], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
