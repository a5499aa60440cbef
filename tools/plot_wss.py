#!/usr/bin/env python3
"""Plots of `cxlkv bench wss`: retrieve bandwidth and latency vs working-set size.

Usage: plot_wss.py WSS_CSV OUT_DIR. Writes OUT_DIR/wss_bandwidth.png and wss_latency.png, in
the shape of the CXL-SSD study's two figures, with the study's published points beside ours.

Ours are in the device's time: the miss region runs under time dilation D (every modelled NAND
time x D), so its measured rates are multiplied by D (and its times divided by D); the hit
region runs at D = 1. The NAND-parallelism bound and the emulator's ceiling (x D) are lines.
The study's working sets are placed at our scale (our device cache / its 4.8 GB), and its
latencies scaled with them (a set k times smaller takes k times less at the same bandwidth).
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The study (../shared/anchors.md): 8 GB set, no prefetch 86 MB/s (~94,000 ms), device next-8
# 534 MB/s (15,321 ms); the cache-hit region ~6,000 MB/s. Its cache was 4.8 GB.
STUDY_CACHE_MIB = 4800
STUDY_MISS_MIB = 8000
STUDY_HIT_MIB = [250, 500, 1000, 2000, 4000]
STUDY = {"none": 86, "next8": 534}
STUDY_HIT = 6000


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = list(csv.DictReader(open(sys.argv[1])))
    if not rows:
        sys.exit("plot_wss.py: no rows in " + sys.argv[1])
    out = sys.argv[2]
    series, ceilings = {}, {}
    dilation = 1
    for r in rows:
        if r["config"].startswith("ceiling:"):
            ceilings[r["config"]] = float(r["mb_per_s"])
            continue
        if r["convergence"] == "1":
            continue
        if r["region"] == "miss":
            dilation = int(r["dilation"])
        series.setdefault(r["config"], []).append(r)
    bound = float(rows[0]["nand_bound_d1_mb_per_s"])
    cache_mib = int(rows[0]["cache_bytes"]) / 2**20
    scale = cache_mib / STUDY_CACHE_MIB
    styles = {"dram": "k-", "none": "r-o", "next8": "m-v", "host": "b-s", "host+next8": "g-^",
              "none@1": "r:o", "next8@1": "m:v"}

    for metric, fname, ylabel in (
        ("device_mb_per_s", "wss_bandwidth.png", "retrieve bandwidth, MB/s in the device's time"),
        ("device_retrieve_s", "wss_latency.png",
         "retrieve latency of the working set, ms in the device's time"),
    ):
        fig, ax = plt.subplots(figsize=(9, 5.5))
        for name, rs in series.items():
            rs = sorted(rs, key=lambda r: int(r["wss_bytes"]))
            xs = [int(r["wss_bytes"]) / 2**20 for r in rs]
            ys = [float(r[metric]) * (1000 if metric == "device_retrieve_s" else 1) for r in rs]
            ax.plot(xs, ys, styles.get(name, "--."), label="cxlkv " + name)
        miss_x = STUDY_MISS_MIB * scale
        for name, mbps in STUDY.items():
            y = mbps if metric == "device_mb_per_s" else miss_x * 2**20 / (mbps * 1e6) * 1000
            ax.plot([miss_x], [y], "*", ms=13, color=styles.get(name, "k-")[0],
                    markeredgecolor="k", label="study " + name + " (1 reader)")
        hit_x = [m * scale for m in STUDY_HIT_MIB]
        hit_y = [STUDY_HIT if metric == "device_mb_per_s" else x * 2**20 / (STUDY_HIT * 1e6) * 1000
                 for x in hit_x]
        ax.plot(hit_x, hit_y, "*", ms=10, color="0.5", markeredgecolor="k",
                label="study, cache-hit region")
        if metric == "device_mb_per_s":
            ax.axhline(bound, color="grey", ls=":", label="NAND-parallelism bound")
            for (name, mbps), color in zip(sorted(ceilings.items()), ("b", "g", "c", "y")):
                ax.axhline(mbps * dilation, ls="-.", lw=0.8, color=color,
                           label=name.replace("ceiling:", "emulator ceiling x D, "))
        ax.axvline(cache_mib, color="grey", ls="--", lw=0.8, label="device cache")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("working-set size (MiB); the study's sets at our scale (x %.3g)" % scale)
        ax.set_ylabel(ylabel)
        ax.set_title("cxlkv bench wss: miss region at time dilation D = %d (measured x D), "
                     "hit region at D = 1" % dilation, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = os.path.join(out, fname)
        fig.savefig(path, dpi=110)
        print("wrote " + path)


if __name__ == "__main__":
    main()
