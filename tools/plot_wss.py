#!/usr/bin/env python3
"""Plots of `cxlkv bench wss`: retrieve bandwidth and latency vs working-set size.

Usage: plot_wss.py WSS_CSV OUT_DIR. Writes OUT_DIR/wss_bandwidth.png and wss_latency.png, in
the shape of the CXL-SSD study's two figures, with the NAND-parallelism bound and the
emulator's ceiling (host prefetch with NAND latency 0) as horizontal lines.
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = list(csv.DictReader(open(sys.argv[1])))
    if not rows:
        sys.exit("plot_wss.py: no rows in " + sys.argv[1])
    out = sys.argv[2]
    series = {}
    for r in rows:
        series.setdefault(r["config"], []).append(r)
    bound = float(rows[0]["nand_bound_mb_per_s"])
    cache_mib = int(rows[0]["cache_bytes"]) / 2**20
    styles = {"dram": "k-", "none": "r-o", "host": "b-s", "host+next8": "g-^"}

    for metric, fname, ylabel in (
        ("mb_per_s", "wss_bandwidth.png", "retrieve bandwidth (MB/s)"),
        ("retrieve_s", "wss_latency.png", "retrieve latency of the working set (ms)"),
    ):
        fig, ax = plt.subplots(figsize=(8, 5))
        for name, rs in series.items():
            if name.startswith("ceiling:"):
                continue
            xs = [int(r["wss_bytes"]) / 2**20 for r in rs]
            ys = [float(r[metric]) * (1000 if metric == "retrieve_s" else 1) for r in rs]
            ax.plot(xs, ys, styles.get(name, "--."), label=name)
        if metric == "mb_per_s":
            ax.axhline(bound, color="grey", ls=":", label="NAND-parallelism bound")
            for name, rs in series.items():
                if name.startswith("ceiling:"):
                    ax.axhline(float(rs[-1]["mb_per_s"]), ls="-.", lw=0.8,
                               label=name.replace("ceiling:", "emulator ceiling, "))
        ax.axvline(cache_mib, color="grey", ls="--", lw=0.8, label="device cache")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("working-set size (MiB)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out, fname)
        fig.savefig(path, dpi=110)
        print("wrote " + path)


if __name__ == "__main__":
    main()
