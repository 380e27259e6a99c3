#!/usr/bin/env bash
# Resume on the GPU (issue 5): the same short run of a seed recipe twice — once uninterrupted, once killed
# with SIGKILL a few steps after a checkpoint and continued with `trainer --resume` — then the per-step
# losses compared. On the CPU they are equal bit for bit (tests/test_resume.cpp); on the GPU the flash
# attention backward accumulates with atomics, so they agree to bf16 noise. A small batch (2 micro-batches
# of 48 x 2048) keeps it short; the loop switches on after the checkpoint, EMA runs throughout.
#   scripts/gpu/check_resume.sh OUT_DIR [SEED]     (data from scripts/gpu/prepare_data.sh in DATA, .gpu/data)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: check_resume.sh OUT_DIR [SEED]}
SEED=${2:-pr1855}
DATA=${DATA:-.gpu/data}
STEPS=${STEPS:-40}
EVERY=${EVERY:-10}
KILL_AFTER=${KILL_AFTER:-25}
case $SEED in
  pr461) v=sp1024 ;; pr1693) v=casefold8192 ;; pr1755 | pr1855) v=sp8192-caseops ;; pr1938) v=cap8192 ;;
  *) echo "unknown seed '$SEED'" >&2; exit 1 ;;
esac
BIN=build-gpu/bin/trainer
args=(--recipe "recipes/$SEED.json" --set "data.train=$DATA/$v/fineweb_train_*.bin" --set "data.val=$DATA/$v/fineweb_val_*.bin"
  --set "data.tokenizer=.gpu/tokenizers/$v.model" --set data.batch_tokens=196608 --set data.micro_batches=2
  --set data.val_max_tokens=262144 --set train.iterations="$STEPS" --set train.max_wallclock_seconds=0
  --set train.log_every=1 --set train.warmup_steps=2 --set train.checkpoint_every="$EVERY" --set artifact.enabled=false)
[ "$SEED" != pr461 ] && args+=(--set model.recurrence.activate_at=0.6 --set train.warmup_looped_steps=2)
mkdir -p "$OUT"
"$BIN" "${args[@]}" --out "$OUT/whole" > "$OUT/whole.log" 2>&1
"$BIN" "${args[@]}" --out "$OUT/killed" > "$OUT/killed.log" 2>&1 &
pid=$!
until grep -Eq "\"step\":$KILL_AFTER[,}]" "$OUT/killed/metrics.jsonl" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { echo "the run ended before step $KILL_AFTER" >&2; exit 1; }
  sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
echo "[check-resume] killed after step $KILL_AFTER (checkpoint every $EVERY); resuming"
"$BIN" --resume "$OUT/killed" > "$OUT/resumed.log" 2>&1
python3 - "$OUT/whole" "$OUT/killed" <<'PY'
import json, sys
def run(d):
    train = {}
    for line in open(d + "/metrics.jsonl"):
        j = json.loads(line)
        if j["type"] == "train":
            if j["step"] in train:
                sys.exit(f"{d}: step {j['step']} logged twice")
            train[j["step"]] = j["loss"]
    return train, json.load(open(d + "/summary.json"))
(a, sa), (b, sb) = run(sys.argv[1]), run(sys.argv[2])
if sorted(a) != sorted(b):
    sys.exit(f"logged steps differ: {sorted(set(a) ^ set(b))}")
d = {s: abs(a[s] - b[s]) for s in a}
worst = max(d, key=d.get)
exact = sum(1 for s in a if a[s] == b[s])
print(f"steps {len(a)}: {exact} losses identical, max |diff| {d[worst]:.3g} at step {worst} "
      f"(loss {a[worst]:.5f}); final loss {a[max(a)]:.5f} vs {b[max(b)]:.5f}; "
      f"val_bpb {sa['val_bpb']:.5f} vs {sb['val_bpb']:.5f}")
PY
