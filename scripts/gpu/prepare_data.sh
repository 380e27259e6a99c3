#!/usr/bin/env bash
# On the GPU machine: tokenizes what scripts/gpu/stage_data.sh staged into .gpu/data/<variant>/ (the same
# layout and commands as scripts/make_benchmark_data.sh; train = the staged Wikipedia parts +
# fineweb_train, val = fineweb_val). Variants: $VARIANTS (default all five); DATA_OUT (default .gpu/data).
# When pgolf-data was built without ICU, casefold8192 goes through scripts/casefold_jsonl.py (Python's
# NFKC + lower, the reference definition) and prepare --transform none.
#
#   scripts/gpu/build.sh && scripts/gpu/prepare_data.sh
#   recipe keys: data.train=.gpu/data/<v>/fineweb_train_*.bin data.val=.gpu/data/<v>/fineweb_val_*.bin
#                data.tokenizer=.gpu/tokenizers/<v>.model (docs/data.md lists the byte counter per variant)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${PGOLF_BIN:-build-gpu/bin}
THREADS=${THREADS:-$(nproc)}
VARIANTS=${VARIANTS:-"sp8192 sp8192-caseops sp1024 casefold8192 cap8192"}
TOK=.gpu/tokenizers
OUT=${DATA_OUT:-.gpu/data}
TRAIN=(.gpu/corpus/wiki_en_2015.*.jsonl.xz .gpu/corpus/fineweb_train.jsonl.xz)
VAL=.gpu/corpus/fineweb_val.jsonl.xz
[ -x "$BIN/pgolf-data" ] || { echo "$BIN/pgolf-data not found: run scripts/gpu/build.sh" >&2; exit 1; }
for v in $VARIANTS; do
  args=(--tokenizer "$TOK/$v.model")
  train=("${TRAIN[@]}")
  val=$VAL
  case $v in
    sp8192 | sp1024) ;;
    sp8192-caseops) args+=(--transform caseops --sidecar) ;;
    cap8192) args+=(--transform cap --base-tokenizer "$TOK/sp8192.model" --sidecar) ;;
    casefold8192)
      if "$BIN/pgolf-data" prepare --help | grep -q "lacks ICU"; then
        mkdir -p "$OUT/casefold-text"
        train=()
        pids=()
        for f in "${TRAIN[@]}" "$VAL"; do  # one Python process per file, all at once
          out=$OUT/casefold-text/$(basename "${f%.xz}")
          [ -f "$out" ] || { python3 scripts/casefold_jsonl.py "$f" "$out" & pids+=($!); }
          [ "$f" = "$VAL" ] && val=$out || train+=("$out")
        done
        for p in "${pids[@]}"; do wait "$p"; done  # set -e: a failed file stops here
      else
        args+=(--transform casefold)
      fi ;;
    *) echo "unknown variant '$v'" >&2; exit 1 ;;
  esac
  echo "[prepare-data] $v"
  "$BIN/pgolf-data" prepare "${args[@]}" --train "${train[@]}" --val "$val" --out "$OUT/$v" --threads "$THREADS"
done
du -sh "$OUT"/*
