#!/usr/bin/env bash
# The whole suite on the GPU machine in one call: the CUDA build of every target (ninja -k 0, so one failing
# file does not hide the others), then ctest over all cases (the CPU cases and the CUDA kernel cases), one torch
# thread per test. Carry data/default (the default data the CPU cases read) and .gpu (header .debs).
#   device:   scripts/gpu/suite_check.sh "$OUT"    (writes $OUT/build.log, $OUT/ctest.log, $OUT/failed.txt)
set -uo pipefail
cd "$(dirname "$0")/../.."
RESULT=${1:?usage: suite_check.sh OUT_DIR}
mkdir -p "$RESULT"
START=$(date +%s)
export PATH="$PWD/.gpu/prefix/usr/bin:$PATH" LD_LIBRARY_PATH="$PWD/.gpu/prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
NINJA_FLAGS="-k 0" TARGETS="${TARGETS:-all}" timeout "${BUILD_SECONDS:-330}" bash scripts/gpu/build.sh > "$RESULT/build.log" 2>&1
echo "build rc $? after $(( $(date +%s) - START )) s"
grep -E "error|FAILED" "$RESULT/build.log" | head -60
[ -x build-gpu/bin/pgolf_tests ] || { echo "no pgolf_tests"; exit 1; }
cd build-gpu && OMP_NUM_THREADS=1 timeout "${CTEST_SECONDS:-300}" ctest -j "${JOBS:-14}" --timeout 240 ${CTEST_ARGS:-} > "$RESULT/ctest.log" 2>&1
echo "ctest rc $? after $(( $(date +%s) - START )) s"
grep -E "tests passed|Failed|\*\*\*|Not Run|Timeout" "$RESULT/ctest.log" | tee "$RESULT/failed.txt" | head -80
./bin/pgolf_tests --gtest_filter='*Cuda*' > "$RESULT/cuda_tests.log" 2>&1; echo "cuda cases rc $?"
grep -E "^\[  (FAILED|PASSED|  OK) |SKIPPED" "$RESULT/cuda_tests.log" | head -80
