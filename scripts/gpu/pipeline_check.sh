#!/usr/bin/env bash
# Issues 10, 11 and 12 in ONE device call of under 10 minutes, on the carried build (scripts/gpu/prebuilt.sh):
#   1. the artifact containers (CONTAINERS, default pergroup zstd22) on a synthetic #1855-sized int6 state:
#      pack and unpack seconds on 16 cores, bytes, exact round trip (pgolf-artifact bench);
#   2. #1855 trained EVAL_STEPS steps at its full 786,432-token batch on the CaseOps data, then its whole
#      post-training pipeline (calibration -> GPTQ + LQER -> container -> reload from the bytes -> pre-quant,
#      quantized and phased-TTT scoring on VAL_TOKENS validation tokens); PIPELINE_SETS adds --set overrides;
#   3. the communicator at world size 1: #1855 for NCCL_STEPS steps as a plain process and as one torchrun
#      rank over NCCL (scripts/gpu/nccl_ws1.sh).
# Each part has its own time limit and writes into OUT_DIR as it goes, so what ran comes back even if a later
# part runs out of time.
#   device:   scripts/gpu/pipeline_check.sh "$OUT"      (carry .gpu)
set -uo pipefail
cd "$(dirname "$0")/../.."
RESULT=${1:?usage: pipeline_check.sh OUT_DIR}
mkdir -p "$RESULT"
START=$(date +%s)
say() { echo "[pipeline-check $(( $(date +%s) - START ))s] $*"; }
export PATH=$PWD/.gpu/bin:$PATH
TARGETS="trainer pgolf-data pgolf-artifact" bash scripts/gpu/build.sh > "$RESULT/build.log" 2>&1 || { tail -30 "$RESULT/build.log"; exit 1; }
say "installed"
VARIANTS=sp8192-caseops timeout 120 bash scripts/gpu/prepare_data.sh > "$RESULT/prepare.log" 2>&1 || { tail -20 "$RESULT/prepare.log"; exit 1; }
say "data: $(tail -1 "$RESULT/prepare.log")"
for c in ${CONTAINERS:-pergroup zstd22}; do
  timeout "${CONTAINER_SECONDS:-60}" build-gpu/bin/pgolf-artifact bench "$c" >> "$RESULT/containers.log" 2>&1
  rc=$?
  say "container $c rc $rc"
  [ "$c" = pergroup ] && [ $rc != 0 ] && PIPELINE_SETS="${PIPELINE_SETS:-} --set pipeline.5.container=standard"  # still get the rest
done
grep -E "^bench|fatal|error" "$RESULT/containers.log"
# #1855 briefly at full batch, then its pipeline (PIPELINE_SETS: e.g. --set pipeline.5.container=standard)
args=(--recipe recipes/pr1855.json --set "data.train=.gpu/data/sp8192-caseops/fineweb_train_*.bin"
  --set "data.val=.gpu/data/sp8192-caseops/fineweb_val_*.bin" --set "data.tokenizer=.gpu/tokenizers/sp8192-caseops.model"
  --set train.iterations="${EVAL_STEPS:-40}" --set train.max_wallclock_seconds=0 --set train.log_every=10 --set train.val_every=0
  --set data.val_max_tokens="${VAL_TOKENS:-524288}" --set train.warmup_steps=5 --set train.warmup_looped_steps=5 ${PIPELINE_SETS:-})
timeout "${EVAL_SECONDS:-280}" build-gpu/bin/trainer "${args[@]}" --out "$HOME/eval" > "$RESULT/pr1855_pipeline.log" 2>&1
say "pr1855 pipeline rc $?"
grep -vE "^\[.*\] step [0-9]+/" "$RESULT/pr1855_pipeline.log" | tail -30
cp "$HOME/eval/summary.json" "$RESULT/pr1855_summary.json" 2>/dev/null
[ -f "$HOME/eval/artifact.bin" ] && build-gpu/bin/pgolf-artifact inspect "$HOME/eval/artifact.bin" > "$RESULT/inspect.txt" 2>&1 && tail -12 "$RESULT/inspect.txt"
STEPS=${NCCL_STEPS:-15} timeout "${NCCL_SECONDS:-130}" bash scripts/gpu/nccl_ws1.sh "$HOME/nccl" > "$RESULT/nccl.log" 2>&1
say "nccl ws1 rc $?"; grep -E "^\[nccl-ws1\] tokens|rror" "$RESULT/nccl.log" | head -5
for d in plain torchrun; do [ -f "$HOME/nccl/$d/train.log" ] && cp "$HOME/nccl/$d/train.log" "$RESULT/nccl_$d.log"; done
say "done"
