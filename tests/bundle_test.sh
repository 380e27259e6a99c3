#!/usr/bin/env bash
# CTest "ExportedBundleBuildsAndTrains" (label bundle): the default recipe's code bundle, exported by
# `trainer --export-code`, configures and builds on its own (a full compile: minutes), trains 2 steps, and
# counts its own code bytes exactly as the source tree counted them.
#   tests/bundle_test.sh BIN_DIR WORK_DIR
set -euo pipefail
BIN=$1
WORK=$2
cd "$(dirname "$0")/.."
rm -rf "$WORK"
mkdir -p "$WORK"
"$BIN/trainer" --export-code "$WORK/src" --recipe recipes/default.json | tee "$WORK/export.txt"
# -O0: the compile is the cost; the 2 steps run in LibTorch's own optimised kernels.
cmake -S "$WORK/src" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS=-O0 -DPGOLF_CUDA=OFF >/dev/null
cmake --build "$WORK/build" -j "${JOBS:-$(nproc)}"
"$WORK/build/bin/trainer" --recipe recipes/default.json --set train.iterations=2 --set train.val_every=0 \
  --set data.val_max_tokens=4096 --set train.warmup_steps=0 --out "$WORK/run"
want=$(sed -n 's/^code bytes: \([0-9]*\).*/\1/p' "$WORK/export.txt")
got=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['artifact_code_bytes'])" "$WORK/run/summary.json")
if [ "$want" != "$got" ]; then
  echo "the bundle counts $got code bytes, the source tree $want" >&2
  exit 1
fi
echo "bundle OK: $(find "$WORK/src" -type f | wc -l) files, $got code bytes counted"
