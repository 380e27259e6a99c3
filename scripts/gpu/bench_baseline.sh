#!/usr/bin/env bash
# The issue-2 GPU benchmark: the challenge baseline config (SP1024, seq 1024, 524,288 tokens/step) trained
# for a wallclock budget on the staged corpus (train: Wikipedia part 00 + fineweb_train; val: fineweb_val).
# Usage (on the GPU machine, after scripts/gpu/build.sh): scripts/gpu/bench_baseline.sh OUT_DIR [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: bench_baseline.sh OUT_DIR [SECONDS]}
SECONDS_CAP=${2:-150}
DATA=${PGOLF_BENCH_DATA:-/tmp/pgolf-sp1024}
if [ ! -f "$DATA/READY" ]; then
  build-gpu/bin/pgolf-data prepare --tokenizer .gpu/sp1024/tokenizer.model \
    --train .gpu/corpus/wiki_en_2015.00.jsonl.xz .gpu/corpus/fineweb_train.jsonl.xz \
    --val .gpu/corpus/fineweb_val.jsonl.xz --out "$DATA" --prefix fineweb --threads "$(nproc)"
  touch "$DATA/READY"
fi
build-gpu/bin/trainer --recipe recipes/baseline.json \
  --set "data.train=$DATA/fineweb_train_*.bin" --set "data.val=$DATA/fineweb_val_*.bin" \
  --set data.tokenizer=.gpu/sp1024/tokenizer.model \
  --set train.max_wallclock_seconds="$SECONDS_CAP" --set train.val_every=0 --set train.log_every=50 \
  --out "$OUT"
