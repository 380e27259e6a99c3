#!/usr/bin/env bash
# Builds the default data set (`make data`) from a corpus every Debian machine can install offline-free:
# the reStructuredText sources of the Python 3.11 documentation (package python3.11-doc, installed by
# scripts/setup.sh). Steps: corpus_{train,val}.jsonl (one document per file, sorted, every 20th to val)
# -> SentencePiece BPE tokenizer, vocab 1024, trained on the train split -> token shards.
# Idempotent: does nothing when data/default/READY exists (written last). Delete READY to rebuild.
#
#   PGOLF_BIN      directory holding pgolf-data (default build/bin)
#   PGOLF_DOC_SRC  the .rst.txt tree (default /usr/share/doc/python3.11/html/_sources)
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${PGOLF_BIN:-build/bin}
SRC=${PGOLF_DOC_SRC:-/usr/share/doc/python3.11/html/_sources}
OUT=data/default
VOCAB=1024
THREADS=$(nproc)

log() { printf '[data] %s\n' "$*"; }
die() { printf '[data] error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
took() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f} s')" "$1" "$(now)"; }

if [ -f "$OUT/READY" ]; then
  log "$OUT is ready (delete $OUT/READY to rebuild)"
  exit 0
fi
[ -d "$SRC" ] || die "$SRC not found: install python3.11-doc (scripts/setup.sh does)"
[ -x "$BIN/pgolf-data" ] || die "$BIN/pgolf-data not found: build first (make), or set PGOLF_BIN"
mkdir -p "$OUT"

t=$(now)
python3 - "$SRC" "$OUT" <<'PY'
import json, os, pathlib, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
# Sorted by relative path (code-point order, locale-independent), so the split is the same everywhere.
files = sorted(src.rglob("*.rst.txt"), key=lambda p: p.relative_to(src).as_posix())
if not files:
    sys.exit(f"[data] error: no *.rst.txt files under {src}")
splits = {"train": [], "val": []}
for i, p in enumerate(files):
    splits["val" if i % 20 == 0 else "train"].append(p.read_text(encoding="utf-8"))
for name, docs in splits.items():
    final = out / f"corpus_{name}.jsonl"
    tmp = out / f"corpus_{name}.jsonl.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
    os.replace(tmp, final)
    print(f"[data] {final}: {len(docs)} documents, {sum(len(d.encode()) for d in docs) / 1e6:.1f} MB")
PY
log "corpus written in $(took "$t")"

t=$(now)
"$BIN/pgolf-data" train-tokenizer --input "$OUT/corpus_train.jsonl" --vocab "$VOCAB" --out "$OUT/tokenizer" \
  --threads "$THREADS"
log "tokenizer trained in $(took "$t")"

t=$(now)
"$BIN/pgolf-data" prepare --tokenizer "$OUT/tokenizer.model" --train "$OUT/corpus_train.jsonl" \
  --val "$OUT/corpus_val.jsonl" --out "$OUT" --prefix default --threads "$THREADS"
log "shards written in $(took "$t")"

{
  echo "default data set: python3.11-doc sources ($SRC), vocab $VOCAB"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$OUT/READY.tmp.$$"
mv "$OUT/READY.tmp.$$" "$OUT/READY"
log "ready: $OUT"
