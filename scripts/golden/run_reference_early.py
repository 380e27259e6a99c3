#!/usr/bin/env python3
"""The reference's first steps, as scripts/gpu/early_curve.sh measures them (issue 15): runs a reference
script's own main() (env-configured, as its README shows) and stops it after the validation at --stop,
writing one JSON line: the train loss of every step, and val_bpb at --stop both as the reference scores
its live model (looping_active as training left it) and with the loop switched on (pgolf's rule before
the fix, which evaluated the loop from step 0).

    python3 scripts/golden/run_reference_early.py --reference DIR --data DATA_DIR --seed 42 --out run.json
        [--script pr1755_train_gpt.py] [--iterations 300] [--stop 100] [--batch-tokens 262144] [--warmup 0]

Patched, and why: eval_val is wrapped to skip the step-0 validation (not measured), to score the
uncompiled model (torch.compile would recompile for eval; the arithmetic is the same), to score the loop
both ways, and to end the run after --stop; log() is tapped for the train losses. Nothing else changes.
"""
import argparse
import importlib.util
import json
import math
import os
import re
import sys
import time


class Stop(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", required=True)
    ap.add_argument("--script", default="pr1755_train_gpt.py")
    ap.add_argument("--data", required=True, help="DATA_DIR with datasets/fineweb10B_sp8192 and tokenizers/")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--iterations", type=int, default=300, help="the schedule's length (warmdown, loop at 0.35)")
    ap.add_argument("--stop", type=int, default=100, help="the step whose validation ends the run")
    ap.add_argument("--batch-tokens", type=int, default=262144)
    ap.add_argument("--warmup", type=int, default=0, help="rolled-back warmup steps (exact, so 0 saves time)")
    a = ap.parse_args()
    os.environ.update(DATA_DIR=a.data, SEED=str(a.seed), ITERATIONS=str(a.iterations), MAX_WALLCLOCK_SECONDS="0",
                      TRAIN_BATCH_TOKENS=str(a.batch_tokens), VAL_LOSS_EVERY=str(a.stop), TRAIN_LOG_EVERY="1",
                      TTT_ENABLED="0", WARMUP_STEPS=str(a.warmup), RUN_ID=f"early-s{a.seed}")
    sys.path.insert(0, a.reference)
    spec = importlib.util.spec_from_file_location("reference", os.path.join(a.reference, a.script))
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)

    record = {"impl": "reference", "script": a.script, "seed": a.seed, "batch_tokens": a.batch_tokens,
              "iterations": a.iterations, "warmup": a.warmup, "loss": {}}
    log = ref.log
    step_line = re.compile(r"^(\d+)/\d+ train_loss: ([0-9.naninf]+)")

    def tap(msg, console=True):
        m = step_line.match(str(msg))
        if m:
            record["loss"][int(m.group(1))] = float(m.group(2))
        log(msg, console)

    ref.log = tap
    eval_val = ref.eval_val
    calls = {"n": 0}
    t0 = time.time()

    def scored(h, device, val_data, model, *rest):
        calls["n"] += 1
        if calls["n"] == 1:
            return math.nan, math.nan  # step 0
        base = getattr(model, "_orig_mod", model)
        live = bool(base.looping_active)
        record["val_loss"], record["val_bpb"] = map(float, eval_val(h, device, val_data, base))
        record["looping_at_stop"] = live
        base.looping_active = True
        record["val_loss_looped"], record["val_bpb_looped"] = map(float, eval_val(h, device, val_data, base))
        base.looping_active = live
        record["seconds"] = time.time() - t0
        raise Stop()

    ref.eval_val = scored
    try:
        ref.main()
    except Stop:
        pass
    if "val_bpb" not in record:
        sys.exit("the run ended before its validation at step %d" % a.stop)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(record) + "\n")
    os.replace(tmp, a.out)
    print(f"reference seed {a.seed}: val_bpb {record['val_bpb']:.4f} (looped {record['val_bpb_looped']:.4f}) "
          f"at step {a.stop}, {len(record['loss'])} train losses", file=sys.stderr)


if __name__ == "__main__":
    main()
