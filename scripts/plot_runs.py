#!/usr/bin/env python3
"""Loss curves of pgolf runs: train loss and val bpb against step and against training time.

Usage (pgolf-report --plot calls it): plot_runs.py OUT.png --run LABEL RUN_DIR [--run LABEL RUN_DIR ...]
Reads RUN_DIR/metrics.jsonl ({"type": "train", "step", "loss", "train_ms"} and the in-loop
{"type": "eval", "step", "val_bpb", "train_ms"}). One colour per LABEL (recipe); each seed a thin line, the
mean over the seeds (at the steps every seed logged) a thick one. Writes a 1200 x 800 PNG.
matplotlib comes from the Debian package python3-matplotlib (scripts/setup.sh).
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # no display: render to a file
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(run_dir):
    train, val = [], []
    with open(f"{run_dir}/metrics.jsonl") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("type") == "train" and r.get("loss") is not None:
                train.append((r["step"], r.get("train_ms", 0) / 1000.0, r["loss"]))
            elif r.get("type") == "eval" and "stage" not in r and r.get("val_bpb") is not None:
                val.append((r["step"], r.get("train_ms", 0) / 1000.0, r["val_bpb"]))
    return {"train": train, "val": val}


def mean_curve(curves):
    """Mean time and value at the steps every seed has."""
    steps = set.intersection(*(set(p[0] for p in c) for c in curves)) if curves else set()
    out = []
    for s in sorted(steps):
        pts = [next(p for p in c if p[0] == s) for c in curves]
        out.append((s, sum(p[1] for p in pts) / len(pts), sum(p[2] for p in pts) / len(pts)))
    return out


def parse(argv):
    if len(argv) < 4 or argv[2] != "--run":
        sys.exit("usage: plot_runs.py OUT.png --run LABEL RUN_DIR [--run LABEL RUN_DIR ...]")
    out, runs, i = argv[1], {}, 2
    while i < len(argv):
        if argv[i] != "--run" or i + 2 >= len(argv):
            sys.exit(f"plot_runs.py: expected --run LABEL RUN_DIR at '{argv[i]}'")
        runs.setdefault(argv[i + 1], []).append(argv[i + 2])
        i += 3
    return out, runs


def main(argv):
    out, runs = parse(argv)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), dpi=100)
    panels = [("train", 0, "train loss (nats/token)"), ("val", 1, "val bpb")]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, dirs) in enumerate(runs.items()):
        colour = colours[k % len(colours)]
        metrics = [read_metrics(d) for d in dirs]
        for key, row, ylabel in panels:
            curves = [m[key] for m in metrics if m[key]]
            dots = {"marker": "o", "markersize": 4} if key == "val" else {}  # evaluations are few: a lone one shows
            for x, xlabel in ((0, "step"), (1, "training time (s)")):
                ax = axes[row][x]
                for c in curves:
                    ax.plot([p[x] for p in c], [p[2] for p in c], color=colour, linewidth=0.8, alpha=0.45, **dots)
                mean = mean_curve(curves)
                if mean:
                    ax.plot([p[x] for p in mean], [p[2] for p in mean], color=colour, linewidth=2.5, **dots,
                            label=f"{label} (mean of {len(curves)} seed{'s' if len(curves) != 1 else ''})")
                ax.set_xlabel(xlabel)
                ax.set_ylabel(ylabel)
                ax.grid(True, alpha=0.3)
    for ax in axes.flat:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, title="thin: seeds, thick: mean", title_fontsize=8)
    fig.suptitle("pgolf runs: train loss and val bpb")
    fig.tight_layout()
    tmp = out + ".tmp.png"  # written whole, then renamed: never a half-written OUT
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, out)


if __name__ == "__main__":
    main(sys.argv)
