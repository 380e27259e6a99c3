#!/usr/bin/env python3
"""Tokens/s per training phase from a run's metrics.jsonl (one "train" line per logged step).

The seeds of family A train without their depth recurrence until the loop activates, then with it; the two
phases run at different speeds, so a single average hides both. Given the step at which the loop turned on
(the first looped step), this prints tokens/s over [skip, switch) and [switch + skip, end], each measured
between two logged steps (cumulative train_ms), so warm-up steps and the switch itself stay out.

  python3 scripts/phase_throughput.py RUN_DIR/metrics.jsonl --batch-tokens 786432 --switch 51 [--skip 10]
"""
import argparse
import json
import sys


def rate(points, lo, hi, batch_tokens):
    """tokens/s between the logged steps nearest inside [lo, hi]; None when fewer than two lie there."""
    inside = [(s, ms) for s, ms in points if lo <= s <= hi]
    if len(inside) < 2:
        return None
    (s0, t0), (s1, t1) = inside[0], inside[-1]
    return (s1 - s0) * batch_tokens / ((t1 - t0) / 1000.0), s1 - s0, (t1 - t0) / (s1 - s0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics")
    ap.add_argument("--batch-tokens", type=int, required=True)
    ap.add_argument("--switch", type=int, default=0, help="first step of the looped phase (0: one phase)")
    ap.add_argument("--skip", type=int, default=10, help="steps left out at the start of each phase")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    points = []
    with open(a.metrics) as f:
        for line in f:
            j = json.loads(line)
            if j.get("type") == "train":
                points.append((int(j["step"]), float(j["train_ms"])))
    if not points:
        sys.exit(f"{a.metrics}: no train lines (was train.log_every set?)")
    end = points[-1][0]
    # A logged step s closes step s; the interval (s0, s1] covers steps s0+1..s1.
    phases = [("pre-loop", a.skip, (a.switch - 1) if a.switch else end)]
    if a.switch:
        phases.append(("looped", a.switch - 1 + a.skip, end))
    for name, lo, hi in phases:
        r = rate(points, lo, hi, a.batch_tokens)
        if r is None:
            print(f"{a.label}\t{name}\tnot enough logged steps in [{lo}, {hi}]")
        else:
            tps, steps, ms = r
            print(f"{a.label}\t{name}\t{tps / 1e6:.3f}M tokens/s\t{ms:.1f} ms/step over {steps} steps")


if __name__ == "__main__":
    main()
