#!/usr/bin/env bash
# Builds the benchmark data sets from ../shared/data (docs/data.md describes them):
#   train = Wikipedia 2015 parts 00-03 + fineweb_train, val = fineweb_val, in five tokenizations:
#   sp8192          the challenge's SP8192 model (shared)                          lut
#   sp8192-caseops  the challenge's CaseOps SP8192 model (shared), + val sidecar   sidecar
#   sp1024          SP1024 trained here on the training text                       lut
#   casefold8192    SP8192 trained here on the casefolded training text            lut
#   cap8192         cap tokenizer made here from the shared SP8192 (p 0.2), + val sidecar
#                                                                                  lut, zero_byte_pieces ["<cap>"]
# Output: $OUT/tokenizers/<variant>.model (the five models, what scripts/gpu/stage_data.sh ships) and
# $OUT/<variant>/fineweb_{train,val}_NNNNNN.bin (+ fineweb_val_bytes_NNNNNN.bin), each finished by a
# READY file that names the command; a step whose output exists is skipped (delete it to redo).
#
#   scripts/make_benchmark_data.sh                     all variants
#   VARIANTS="sp8192 cap8192" scripts/make_benchmark_data.sh
#   TOKENIZERS_ONLY=1 scripts/make_benchmark_data.sh   the tokenizers, no shards (for a GPU machine)
# Environment: SHARED (default ../shared/data), PGOLF_BIN (build/bin), OUT (data/bench),
#   THREADS (nproc), SENTENCES (sentences sampled to train a tokenizer, default 1000000).
# Time on 2 busy cores: ~45 min for everything (tokenizers ~10 min, ~4 min of encoding per variant).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/data}
BIN=${PGOLF_BIN:-build/bin}
OUT=${OUT:-data/bench}
THREADS=${THREADS:-$(nproc)}
SENTENCES=${SENTENCES:-1000000}
VARIANTS=${VARIANTS:-"sp8192 sp8192-caseops sp1024 casefold8192 cap8192"}
C=$SHARED/corpus
TRAIN=("$C"/wiki_en_2015.00.jsonl.xz "$C"/wiki_en_2015.01.jsonl.xz "$C"/wiki_en_2015.02.jsonl.xz
  "$C"/wiki_en_2015.03.jsonl.xz "$C"/fineweb_train.jsonl.xz)
VAL=$C/fineweb_val.jsonl.xz
SP8192=$SHARED/tokenizers/fineweb_8192_bpe.model
CASEOPS=$SHARED/tokenizers/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model
TOK=$OUT/tokenizers

log() { printf '[bench-data] %s\n' "$*"; }
die() { printf '[bench-data] error: %s\n' "$*" >&2; exit 1; }
[ -x "$BIN/pgolf-data" ] || die "$BIN/pgolf-data not found: build first (make build), or set PGOLF_BIN"
for f in "${TRAIN[@]}" "$VAL" "$SP8192" "$CASEOPS"; do [ -f "$f" ] || die "$f not found (set SHARED)"; done
mkdir -p "$TOK"

# ---- tokenizers ----
copy() { [ -f "$2" ] || { cp "$1" "$2.tmp.$$" && mv "$2.tmp.$$" "$2"; }; }
copy "$SP8192" "$TOK/sp8192.model"
copy "$CASEOPS" "$TOK/sp8192-caseops.model"
want() { [[ " $VARIANTS " == *" $1 "* ]]; }
if want sp1024 && [ ! -f "$TOK/sp1024.model" ]; then
  log "training sp1024 on the training text ($SENTENCES sentences sampled)"
  "$BIN/pgolf-data" train-tokenizer --input "${TRAIN[@]}" --vocab 1024 --out "$TOK/sp1024" --threads "$THREADS" \
    --max-sentences "$SENTENCES"
fi
if want casefold8192 && [ ! -f "$TOK/casefold8192.model" ]; then
  log "training casefold8192 on the casefolded training text ($SENTENCES sentences sampled)"
  "$BIN/pgolf-data" train-tokenizer --transform casefold --input "${TRAIN[@]}" --vocab 8192 \
    --out "$TOK/casefold8192" --threads "$THREADS" --max-sentences "$SENTENCES"
fi
if want cap8192 && [ ! -f "$TOK/cap8192.model" ]; then
  log "making cap8192 from sp8192 (p 0.2, seed 1337, piece counts from the training text)"
  "$BIN/pgolf-data" make-cap-tokenizer --base "$TOK/sp8192.model" --input "${TRAIN[@]}" --p 0.2 --seed 1337 \
    --out "$TOK/cap8192" --threads "$THREADS"
fi
[ -n "${TOKENIZERS_ONLY:-}" ] && { log "tokenizers in $TOK"; exit 0; }

# ---- shards ----
for v in $VARIANTS; do
  dir=$OUT/$v
  if [ -f "$dir/READY" ]; then log "$dir is ready"; continue; fi
  args=(--tokenizer "$TOK/$v.model")
  case $v in
    sp8192 | sp1024) ;;
    sp8192-caseops) args+=(--transform caseops --sidecar) ;;
    casefold8192) args+=(--transform casefold) ;;
    cap8192) args+=(--transform cap --base-tokenizer "$TOK/sp8192.model" --sidecar) ;;
    *) die "unknown variant '$v'" ;;
  esac
  log "$v: prepare ${args[*]}"
  "$BIN/pgolf-data" prepare "${args[@]}" --train "${TRAIN[@]}" --val "$VAL" --out "$dir" --threads "$THREADS" \
    | tee "$dir.summary.tmp"
  { echo "pgolf-data prepare ${args[*]} --train ${TRAIN[*]} --val $VAL"; cat "$dir.summary.tmp"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ)"; } > "$dir/READY.tmp.$$"
  mv "$dir/READY.tmp.$$" "$dir/READY"
  rm -f "$dir.summary.tmp"
done
du -sh "$OUT"/* | sed 's/^/[bench-data] /'
