#!/usr/bin/env bash
# On the GPU machine: keeps the training text and the prepared shards in $HOME, which outlives a call while
# the machine stays warm (the carried .gpu/ is replaced every call), so a corpus larger than one call's
# 64 MiB can travel in parts (a few Wikipedia parts per call). Copies the files of each DIR given (carried
# folders of *.jsonl.xz) into $HOME/pgolf/corpus, then points .gpu/corpus and .gpu/data there.
# REPREPARE="v1 v2": drop those variants' shards, so prepare_data.sh remakes them from the grown corpus.
# Here, two such folders (git-ignored through .git/info/exclude, each with .gpu and the tree under 64 MiB):
#   mkdir .corpusA .corpusB; S=../shared/data/corpus
#   cp $S/wiki_en_2015.0[01].jsonl.xz $S/fineweb_val.jsonl.xz .corpusA/
#   cp $S/wiki_en_2015.0[23].jsonl.xz $S/fineweb_train.jsonl.xz .corpusB/
# (with .gpu/corpus emptied: scripts/gpu/stage_data.sh fills it with part 00 and fineweb, ≈31 MB more).
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
