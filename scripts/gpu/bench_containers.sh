#!/usr/bin/env bash
# GPU machine (16 cores): the artifact containers on a synthetic #1855-shaped int6 state (11 layers, dim 512,
# kv 256, mlp 2048, vocab 8192: 35.7M codes + fp16 scales): pack and unpack seconds, bytes, exact round trip.
# Needs the lrzip .debs in .gpu/debs (scripts/gpu/stage.sh). Figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGETS=pgolf-artifact bash scripts/gpu/build.sh
export PATH=$PWD/.gpu/bin:$PATH
lrzip -V
for c in pergroup standard zstd22; do build-gpu/bin/pgolf-artifact bench "$c"; done
