#!/usr/bin/env python3
"""The early-gap table for docs/fidelity.md from scripts/gpu/early_curve.sh's early_curve.jsonl (issue 15).

    python3 scripts/early_gap_table.py early_curve.jsonl [--stop 100]

Each line of the input is one run: {"impl": "reference" | "pgolf", "seed", "loss": {step: train loss},
"val_bpb", and for the reference "val_bpb_looped"}. Prints markdown: val_bpb at the last step as each
implementation scores it (mean ± sample sd over seeds), the reference's score with the loop switched on
(what pgolf's evaluation computed before the fix), the gap in units of the reference's sd, and the mean
train loss over windows of steps, with the before-the-fix figures of issue 15 beside them.
"""
import argparse
import json
import math
import sys

# Issue 15 (H200, 2026-12-01, 300-step runs, 20 + 20 warmup steps): val_bpb at step 100 before the fix.
BEFORE = {"reference": (1.9094, 0.0073), "pgolf": (1.9309, 0.0053)}
WINDOWS = [(1, 10), (11, 25), (26, 50), (51, 75), (76, 100)]


def mean_sd(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, sd, len(xs)


def fmt(m, sd, n):
    if m is None:
        return "—"
    return f"{m:.4f} ± {sd:.4f} (n={n})" if n > 1 else f"{m:.4f} (n=1)"


def load(path):
    runs = {"reference": [], "pgolf": []}
    for line in open(path):
        line = line.strip()
        if line:
            r = json.loads(line)
            r["loss"] = {int(k): v for k, v in r.get("loss", {}).items()}
            runs.setdefault(r["impl"], []).append(r)
    return runs


def window_mean(run, lo, hi):
    xs = [run["loss"][s] for s in range(lo, hi + 1) if s in run["loss"]]
    return sum(xs) / len(xs) if len(xs) == hi - lo + 1 else None


def table(runs, stop):
    ref, pg = runs["reference"], runs["pgolf"]
    rm, rsd, rn = mean_sd([r.get("val_bpb") for r in ref])
    pm, psd, pn = mean_sd([r.get("val_bpb") for r in pg])
    lm, lsd, ln = mean_sd([r.get("val_bpb_looped") for r in ref])
    out = [f"| at step {stop} | reference | pgolf | pgolf − reference |", "| --- | --- | --- | --- |"]

    def gap(a, b, sd):
        if a is None or b is None:
            return "—"
        return f"{b - a:+.4f} ({(b - a) / sd:+.1f} sd)" if sd and not math.isnan(sd) else f"{b - a:+.4f}"

    out.append(f"| val_bpb, live model (after the fix: both score what training runs) | {fmt(rm, rsd, rn)} | "
               f"{fmt(pm, psd, pn)} | {gap(rm, pm, rsd)} |")
    out.append(f"| val_bpb with the loop switched on (pgolf's rule before the fix) | {fmt(lm, lsd, ln)} | — | "
               f"looped − live: {gap(rm, lm, rsd)} |")
    b_r, b_p = BEFORE["reference"], BEFORE["pgolf"]
    out.append(f"| before the fix (issue 15: 300-step runs, warmup 20 + 20) | {b_r[0]:.4f} ± {b_r[1]:.4f} | "
               f"{b_p[0]:.4f} ± {b_p[1]:.4f} | {b_p[0] - b_r[0]:+.4f} ({(b_p[0] - b_r[0]) / b_r[1]:+.1f} sd) |")
    for lo, hi in WINDOWS:
        if hi > stop:
            break
        a = mean_sd([window_mean(r, lo, hi) for r in ref])
        b = mean_sd([window_mean(r, lo, hi) for r in pg])
        out.append(f"| train loss, mean of steps {lo}–{hi} | {fmt(*a)} | {fmt(*b)} | {gap(a[0], b[0], a[1])} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("jsonl")
    ap.add_argument("--stop", type=int, default=100)
    a = ap.parse_args()
    runs = load(a.jsonl)
    if not runs["reference"] and not runs["pgolf"]:
        sys.exit(f"{a.jsonl}: no runs")
    print(table(runs, a.stop))
    seeds = lambda rs: ", ".join(str(r["seed"]) for r in rs) or "none"
    print(f"\nseeds: reference {seeds(runs['reference'])}; pgolf {seeds(runs['pgolf'])}")


if __name__ == "__main__":
    main()
