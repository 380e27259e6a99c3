#!/usr/bin/env bash
# The issue-4 GPU benchmark: each seed model trains from its recipe on the benchmark data that
# scripts/gpu/prepare_data.sh made in .gpu/data/<variant>/, for STEPS steps at the seed's full batch
# (786,432 tokens in 8 micro-batches of 48 x 2048 on one GPU), with the loop switched on half way
# (model.recurrence.activate_at = 0.5) so that the pre-loop and looped phases are timed in one run.
# Warmup is shortened to 5 + 5 rolled-back steps; no artifact. Per-phase tokens/s come from
# scripts/phase_throughput.py. PROFILE_SEEDS (default pr1855) also get `--profile` (steps 6-8: kernels
# and the step's phases, optimizer groups included).
#   scripts/gpu/bench_seeds.sh OUT_DIR pr1855 pr1755 ...      (STEPS, default 100)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: bench_seeds.sh OUT_DIR SEED...}
shift
STEPS=${STEPS:-100}
PROFILE_SEEDS=${PROFILE_SEEDS:-pr1855}
mkdir -p "$OUT"
for seed in "$@"; do
  case $seed in
    pr461) v=sp1024 ;;
    pr1693) v=casefold8192 ;;
    pr1755 | pr1855) v=sp8192-caseops ;;
    pr1938) v=cap8192 ;;
    *) echo "unknown seed '$seed'" >&2; exit 1 ;;
  esac
  args=(--recipe "recipes/$seed.json" --set "data.train=.gpu/data/$v/fineweb_train_*.bin"
    --set "data.val=.gpu/data/$v/fineweb_val_*.bin" --set "data.tokenizer=.gpu/tokenizers/$v.model"
    --set train.iterations="$STEPS" --set train.max_wallclock_seconds=0 --set train.log_every=5
    --set train.warmup_steps=5 --set artifact.enabled=false --out "$OUT/$seed")
  switch=0
  if [ "$seed" != pr461 ]; then  # family A: the segment loop
    args+=(--set model.recurrence.activate_at=0.5 --set train.warmup_looped_steps=5)
    switch=$((STEPS / 2 + 1))
  fi
  [[ " $PROFILE_SEEDS " == *" $seed "* ]] && args+=(--profile "/tmp/pgolf-profile-$seed.json")
  echo "[bench-seeds] $seed on $v: build-gpu/bin/trainer ${args[*]}"
  build-gpu/bin/trainer "${args[@]}" > "$OUT/$seed.log" 2>&1 || { tail -30 "$OUT/$seed.log"; exit 1; }
  python3 scripts/phase_throughput.py "$OUT/$seed/metrics.jsonl" --batch-tokens 786432 --switch "$switch" \
    --label "$seed" | tee -a "$OUT/phases.tsv"
done
