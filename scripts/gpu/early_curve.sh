#!/usr/bin/env bash
# Issue 15, the early gap: the first 100 steps of #1755 (262,144 tokens per step, the 300-step schedule:
# warmdown from step 84, loop from step 105) in the Python reference and in pgolf, 3 seeds each, on the
# same shards, in ONE device call of under 9 minutes (DEADLINE, 520 s, stops what still runs). Records
# every step's train loss and val_bpb at step 100 (the reference's live-model score, and its score with
# the loop switched on, which was pgolf's rule before the fix); then scripts/early_gap_table.py prints the
# before/after table for docs/fidelity.md.
#
#   here:     scripts/gpu/early_curve.sh stage          (SHARED, default ../shared: reference, corpus, tokenizer)
#   device:   scripts/gpu/early_curve.sh run "$OUT"     (carry .gpu; writes $OUT/early_curve.jsonl,
#                                                       $OUT/early_gap.md, $OUT/early_curve.log)
#
# Both implementations read the same shards (the reference's tokenize_corpus.py: Wikipedia part 00 +
# fineweb_train, val = fineweb_val) with their own default loaders (the reference's PCG64(rank) order,
# pgolf's shuffled_sequences seeded by rank). The rolled-back warmup is skipped in both (WARMUP=0): it is
# exact in both (pgolf: tests WarmupRollback.*; the reference restores its state dicts and rebuilds the
# loader), and it would cost a second compile. pgolf runs iterations=100 with the 300-step schedule written
# as step_warmdown (total 300, warmdown 216 = 0.72 x 300) and the loop at fraction 1.05 (= step 105), no
# EMA (the step-100 score is of the live model, as the reference's).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
MODE=${1:?usage: early_curve.sh stage | run OUT_DIR}
SEEDS=${SEEDS:-"42 314 999"}
STEPS=${STEPS:-100}
WARMUP=${WARMUP:-0}
BATCH=${BATCH:-262144}
DEADLINE=${DEADLINE:-520}  # seconds after which unfinished runs are stopped (the call's limit is 600)

if [ "$MODE" = stage ]; then
  SHARED=${SHARED:-../shared}
  mkdir -p .gpu/reference .gpu/corpus .gpu/tokenizers .gpu/debs
  cp -u "$SHARED"/reference/{pr1755_train_gpt.py,flash_attn_interface.py,tokenize_corpus.py} .gpu/reference/
  cp -u "$SHARED"/data/corpus/{fineweb_train,fineweb_val,wiki_en_2015.00}.jsonl.xz .gpu/corpus/
  cp "$SHARED"/data/tokenizers/fineweb_8192_bpe.model .gpu/tokenizers/
  (cd .gpu/debs && for p in liblzma-dev libbrotli-dev; do ls ${p}_*.deb >/dev/null 2>&1 || apt-get download "$p"; done)
  mib=$(du -sm .gpu | cut -f1)
  echo "[early-curve] .gpu holds $mib MiB"
  [ "$mib" -le 60 ] || echo "[early-curve] warning: with the source tree the call carries over 64 MiB; remove other staged data" >&2
  exit 0
fi

[ "$MODE" = run ] || { echo "usage: early_curve.sh stage | run OUT_DIR" >&2; exit 2; }
RESULT=${2:?usage: early_curve.sh run OUT_DIR}
mkdir -p "$RESULT"
TOK=.gpu/tokenizers/fineweb_8192_bpe.model
for f in .gpu/reference/pr1755_train_gpt.py $TOK .gpu/corpus/wiki_en_2015.00.jsonl.xz; do
  [ -f "$f" ] || { echo "$f missing: run 'scripts/gpu/early_curve.sh stage' here first and carry .gpu" >&2; exit 1; }
done
WORK=${WORK:-$HOME/early_curve}
rm -rf "$WORK" && mkdir -p "$WORK/runs" "$WORK/data/datasets" "$WORK/data/tokenizers" "$WORK/corpus"
START=$(date +%s)
say() { echo "[early-curve $(( $(date +%s) - START ))s] $*"; }
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'

# 1. pgolf's build in the background while the data is tokenized and the reference runs.
(TARGETS=trainer bash scripts/gpu/build.sh > "$WORK/build.log" 2>&1; echo $? > "$WORK/build.rc") &

# 2. The shards, once, for both (the layout the reference expects; pgolf reads the same files).
DS=$WORK/data/datasets/fineweb10B_sp8192
for f in fineweb_train fineweb_val wiki_en_2015.00; do ln -s "$REPO/.gpu/corpus/$f.jsonl.xz" "$WORK/corpus/"; done  # just these
python3 .gpu/reference/tokenize_corpus.py $TOK "$DS" "$WORK/corpus" > "$WORK/tokenize.log" 2>&1
cp $TOK "$WORK/data/tokenizers/"
say "tokenized: $(tail -1 "$WORK/tokenize.log")"

left() { local l=$(( DEADLINE - ($(date +%s) - START) )); echo $(( l > 10 ? l : 10 )); }

# 3. The reference: the first seed alone until its graph is compiled, then the others, which find it in
#    torch.compile's cache (three compiles at once would compete with the build for the CPU).
ref_run() {
  mkdir -p "$WORK/runs/ref-$1"
  (cd "$WORK/runs/ref-$1" && PYTHONUNBUFFERED=1 timeout "$(left)" python3 "$REPO/scripts/golden/run_reference_early.py" \
    --reference "$REPO/.gpu/reference" --data "$WORK/data/" --seed "$1" --out "$WORK/runs/ref-$1.json" \
    --stop "$STEPS" --batch-tokens "$BATCH" --warmup "$WARMUP" > "$WORK/runs/ref-$1.log" 2>&1) &
  pids+=($!)
}
pids=()
if [ -z "${SKIP_REF:-}" ]; then  # SKIP_REF=1: pgolf only (the reference's lines from an earlier call are merged here)
  set -- $SEEDS
  ref_run "$1"
  first=$1
  shift
  until grep -q "^1/[0-9]* train_loss" "$WORK/runs/ref-$first.log" 2>/dev/null || [ "$(left)" -lt 300 ] ||
    ! kill -0 "${pids[0]}" 2>/dev/null; do sleep 2; done
  say "reference seed $first compiled"
  for s in "$@"; do ref_run "$s"; done
fi

# 4. pgolf, 3 seeds at once, as soon as the build is done.
while [ ! -f "$WORK/build.rc" ]; do sleep 2; done
if [ "$(cat "$WORK/build.rc")" = 0 ]; then
  say "pgolf built"
  for s in $SEEDS; do
    timeout "$(left)" build-gpu/bin/trainer --recipe recipes/pr1755.json \
      --set seed="$s" --set "data.train=$DS/fineweb_train_*.bin" --set "data.val=$DS/fineweb_val_*.bin" \
      --set data.tokenizer=$TOK --set 'eval.byte_counter={"name":"lut"}' \
      --set data.batch_tokens="$BATCH" --set train.iterations="$STEPS" --set train.max_wallclock_seconds=0 \
      --set train.warmup_steps="$WARMUP" --set train.warmup_looped_steps="$WARMUP" --set train.log_every=1 \
      --set 'schedule={"name":"step_warmdown","warmdown_steps":216,"total_steps":300}' \
      --set model.recurrence.activate_at=1.05 --set 'train.hooks=[]' --set 'pipeline=[{"name":"evaluate","label":"live"}]' \
      --out "$WORK/runs/pgolf-$s" > "$WORK/runs/pgolf-$s.log" 2>&1 &
    pids+=($!)
  done
else
  say "the pgolf build failed (its log's tail is in early_curve.log); the reference runs go on"
fi
for p in "${pids[@]}"; do wait "$p" || true; done
say "runs done"

# 5. One line per run, the table, the logs' tails.
python3 - "$WORK/runs" "$SEEDS" "$BATCH" > "$RESULT/early_curve.jsonl" <<'PY'
import json, os, sys
runs, seeds, batch = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
for s in seeds:
    p = f"{runs}/ref-{s}.json"
    if os.path.exists(p):
        print(open(p).read().strip())
    d = f"{runs}/pgolf-{s}"
    if not os.path.exists(d + "/metrics.jsonl"):
        continue
    rec = {"impl": "pgolf", "seed": int(s), "batch_tokens": batch, "loss": {}}
    for line in open(d + "/metrics.jsonl"):
        j = json.loads(line)
        if j["type"] == "train":
            rec["loss"][j["step"]] = j["loss"]
        elif j["type"] == "eval":
            rec["val_loss"], rec["val_bpb"] = j["val_loss"], j["val_bpb"]
    print(json.dumps(rec))
PY
python3 scripts/early_gap_table.py "$RESULT/early_curve.jsonl" | tee "$RESULT/early_gap.md"
for f in "$WORK/tokenize.log" "$WORK"/runs/*.log "$WORK/build.log"; do echo "== $f"; tail -15 "$f"; done > "$RESULT/early_curve.log"
say "done"
