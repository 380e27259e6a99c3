#!/usr/bin/env bash
# On the GPU machine: keeps the training text and the prepared shards in $HOME, which outlives a call while
# the machine stays warm (the carried .gpu/ is replaced every call), so a corpus larger than one call's
# 64 MiB can travel in parts (a few Wikipedia parts per call). Copies the files of each DIR given (carried
# folders of *.jsonl.xz) into $HOME/pgolf/corpus, then points .gpu/corpus and .gpu/data there.
# REPREPARE="v1 v2": drop those variants' shards, so prepare_data.sh remakes them from the grown corpus.
#   scripts/gpu/home_corpus.sh .corpusA && scripts/gpu/eval_seeds.sh ...   (first call)
#   REPREPARE=sp8192-caseops scripts/gpu/home_corpus.sh .corpusB && ...     (next call, still warm)
set -euo pipefail
cd "$(dirname "$0")/../.."
home=$HOME/pgolf
mkdir -p "$home/corpus" "$home/data" .gpu
for d in "$@"; do cp -n "$d"/*.jsonl.xz "$home/corpus/"; done
[ -d .gpu/corpus ] && [ ! -L .gpu/corpus ] && cp -n .gpu/corpus/*.jsonl.xz "$home/corpus/" && rm -rf .gpu/corpus
ln -sfn "$home/corpus" .gpu/corpus
ln -sfn "$home/data" .gpu/data
for v in ${REPREPARE:-}; do rm -rf "${home:?}/data/$v"; done
ls -la "$home/corpus"
du -sh "$home/data"/* 2>/dev/null || true
