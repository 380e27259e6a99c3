#!/usr/bin/env bash
# Stages the benchmark data for tokenizing on the GPU machine (64 MiB travel with the tree), beside
# scripts/gpu/stage.sh (which it does not change): fills .gpu/ (git-ignored) with
#   .gpu/corpus/      fineweb_{train,val}.jsonl.xz and the Wikipedia parts in $PARTS (default "00";
#                     each part is ~26 MB, so two parts at most)
#   .gpu/tokenizers/  the five benchmark tokenizers (sp8192, sp8192-caseops, sp1024, casefold8192, cap8192)
#                     from data/bench/tokenizers (made by scripts/make_benchmark_data.sh if missing)
#   .gpu/wheels/      the PyPI sentencepiece wheels for Python 3.10-3.12 (the GPU machine has no network),
#                     for the reference throughput figure of scripts/bench_encode.py
# Then on the GPU machine: scripts/gpu/build.sh && scripts/gpu/prepare_data.sh (see there).
# Needs ../shared/data (SHARED) and build/bin/pgolf-data (PGOLF_BIN).
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared/data}
PARTS=${PARTS:-00}
mkdir -p .gpu/corpus .gpu/tokenizers .gpu/wheels
cp -u "$SHARED"/corpus/fineweb_val.jsonl.xz "$SHARED"/corpus/fineweb_train.jsonl.xz .gpu/corpus/
for p in $PARTS; do cp -u "$SHARED/corpus/wiki_en_2015.$p.jsonl.xz" .gpu/corpus/; done
if [ ! -f data/bench/tokenizers/cap8192.model ] || [ ! -f data/bench/tokenizers/casefold8192.model ] ||
   [ ! -f data/bench/tokenizers/sp1024.model ]; then
  TOKENIZERS_ONLY=1 SHARED="$SHARED" bash scripts/make_benchmark_data.sh
fi
for v in sp8192 sp8192-caseops sp1024 casefold8192 cap8192; do cp -u "data/bench/tokenizers/$v.model" .gpu/tokenizers/; done
for py in 3.10 3.11 3.12; do
  ls .gpu/wheels/sentencepiece-*-cp${py/./}-*.whl >/dev/null 2>&1 ||
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" \
      --platform manylinux2014_x86_64 sentencepiece -d .gpu/wheels
done
du -sh .gpu
mib=$(du -sm .gpu | cut -f1)
[ "$mib" -le 60 ] || echo "[stage-data] warning: .gpu holds $mib MiB; with the source tree it must stay under 64 MiB (fewer PARTS)" >&2
