#!/usr/bin/env bash
# Fills .gpu/ (git-ignored, carried to the GPU machine): corpus text, the SP1024 tokenizer trained on the
# training split (Wikipedia part 00 + fineweb_train), and header .debs. Needs ../shared/data and build/bin.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared/data}
BIN=${PGOLF_BIN:-build/bin}
mkdir -p .gpu/corpus .gpu/debs .gpu/sp1024
cp -u "$SHARED"/corpus/fineweb_val.jsonl.xz "$SHARED"/corpus/fineweb_train.jsonl.xz "$SHARED"/corpus/wiki_en_2015.00.jsonl.xz .gpu/corpus/
if [ ! -f .gpu/sp1024/tokenizer.model ]; then
  "$BIN"/pgolf-data train-tokenizer --input .gpu/corpus/fineweb_train.jsonl.xz .gpu/corpus/wiki_en_2015.00.jsonl.xz \
    --vocab 1024 --out .gpu/sp1024/tokenizer --threads "$(nproc)" --max-sentences 1000000
fi
(cd .gpu/debs && for p in liblzma-dev libbrotli-dev lrzip liblzo2-2; do ls ${p}_*.deb >/dev/null 2>&1 || apt-get download "$p"; done)
du -sh .gpu
