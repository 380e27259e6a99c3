#!/usr/bin/env bash
# Issues 10, 11 and 12 in ONE device call of under 10 minutes, on the carried build (scripts/gpu/prebuilt.sh):
#   1. the artifact containers on a synthetic #1855-sized int6 state (scripts/gpu/bench_containers.sh: pack
#      and unpack seconds on 16 cores, bytes, exact round trip);
#   2. the communicator at world size 1: #1855 for NCCL_STEPS steps as a plain process and as one torchrun
#      rank over NCCL (scripts/gpu/nccl_ws1.sh);
#   3. #1855 trained EVAL_STEPS steps at its full 786,432-token batch on the CaseOps data, then its whole
#      post-training pipeline (calibration → GPTQ + LQER → per-group lrzip → reload from the bytes →
#      pre-quant, quantized and phased-TTT scoring on VAL_TOKENS validation tokens), per stage val_bpb,
#      seconds and the 8-GPU projections (scripts/gpu/eval_seeds.sh); artifact bytes against 16,000,000.
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
timeout "${CONTAINER_SECONDS:-150}" bash scripts/gpu/bench_containers.sh > "$RESULT/containers.log" 2>&1
say "containers rc $?"; grep -E "^bench|lrzip version|error" "$RESULT/containers.log"
STEPS=${NCCL_STEPS:-20} timeout "${NCCL_SECONDS:-150}" bash scripts/gpu/nccl_ws1.sh "$HOME/nccl" > "$RESULT/nccl.log" 2>&1
say "nccl ws1 rc $?"; grep -E "^\[nccl-ws1\] tokens|error|Error" "$RESULT/nccl.log" | head -5
cp "$HOME"/nccl/*/train.log "$RESULT/" 2>/dev/null; for d in plain torchrun; do [ -f "$HOME/nccl/$d/train.log" ] && cp "$HOME/nccl/$d/train.log" "$RESULT/nccl_$d.log"; done
rm -f "$RESULT/train.log"
STEPS=${EVAL_STEPS:-60} BATCH_TOKENS=786432 VAL_TOKENS=${VAL_TOKENS:-524288} \
  timeout "${EVAL_SECONDS:-330}" bash scripts/gpu/eval_seeds.sh "$HOME/eval" pr1855 > "$RESULT/eval.log" 2>&1
say "eval seeds rc $?"
cp "$HOME/eval/pr1855/summary.json" "$RESULT/pr1855_summary.json" 2>/dev/null
cp "$HOME/eval/pr1855/train.log" "$RESULT/pr1855_train.log" 2>/dev/null
tail -25 "$RESULT/eval.log"
a=$HOME/eval/pr1855/artifact.bin
[ -f "$a" ] && build-gpu/bin/pgolf-artifact inspect "$a" > "$RESULT/inspect.txt" 2>&1 && tail -15 "$RESULT/inspect.txt"
say "done"
