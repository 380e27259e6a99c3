#!/usr/bin/env bash
# Issue 13, the fused kernels, in ONE device call of under 9 minutes (DEADLINE, 530 s, stops what still runs):
#   1. the CUDA build (scripts/gpu/build.sh) while the corpus is tokenized (the reference's tokenize_corpus.py,
#      SP8192: Wikipedia part 00 + fineweb_train, val = fineweb_val; BOS before every document);
#   2. the kernel tests: every fused kernel against its ATen composition, forward and every gradient
#      (pgolf_tests KernelsCuda.*, plus the CPU-form tests Kernels*.* and Mfu.*);
#   3. #1755 for 50 steps at 262,144 tokens per step (loop on from step 26), with the kernels and without
#      (model.fused_kernels=false): per-step training losses compared, and both runs' tokens/s;
#   4. pgolf's tokens/s and MFU on #1755 and #1855 at the full 786,432-token batch, STEPS steps (default 30;
#      the loop from step STEPS/2+1), pre-loop and looped (scripts/phase_throughput.py), the GPU memory peak;
#   5. with REF=1 (or alone with SKIP_PGOLF=1), the Python #1755 reference at the same batch and phases
#      (its torch.compile takes minutes: give it a call of its own with SKIP_PGOLF=1 if the first ran long).
# Prints one compact table ($OUT/kernels_check.md); logs in $OUT/kernels_check.log.
#
#   here:     scripts/gpu/kernels_check.sh stage        (SHARED, default ../shared)
#   device:   scripts/gpu/kernels_check.sh run "$OUT"   (carry .gpu)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
MODE=${1:?usage: kernels_check.sh stage | run OUT_DIR}
STEPS=${STEPS:-30}
LOSS_STEPS=${LOSS_STEPS:-50}
DEADLINE=${DEADLINE:-530}

if [ "$MODE" = stage ]; then
  SHARED=${SHARED:-../shared}
  mkdir -p .gpu/reference .gpu/corpus .gpu/tokenizers .gpu/debs
  cp -u "$SHARED"/reference/{pr1755_train_gpt.py,flash_attn_interface.py,tokenize_corpus.py} .gpu/reference/
  cp -u "$SHARED"/data/corpus/{fineweb_train,fineweb_val,wiki_en_2015.00}.jsonl.xz .gpu/corpus/
  cp "$SHARED"/data/tokenizers/fineweb_8192_bpe.model .gpu/tokenizers/
  (cd .gpu/debs && for p in liblzma-dev libbrotli-dev; do ls ${p}_*.deb >/dev/null 2>&1 || apt-get download "$p"; done)
  echo "[kernels-check] .gpu holds $(du -sm .gpu | cut -f1) MiB (the call carries at most 64 MiB with the tree)"
  exit 0
fi
[ "$MODE" = run ] || { echo "usage: kernels_check.sh stage | run OUT_DIR" >&2; exit 2; }
RESULT=${2:?usage: kernels_check.sh run OUT_DIR}
mkdir -p "$RESULT"
TOK=.gpu/tokenizers/fineweb_8192_bpe.model
for f in .gpu/reference/tokenize_corpus.py $TOK .gpu/corpus/fineweb_val.jsonl.xz; do
  [ -f "$f" ] || { echo "$f missing: run 'scripts/gpu/kernels_check.sh stage' here first and carry .gpu" >&2; exit 1; }
done
WORK=${WORK:-$HOME/kernels_check}
rm -rf "$WORK" && mkdir -p "$WORK/runs" "$WORK/data/datasets" "$WORK/data/tokenizers" "$WORK/corpus"
START=$(date +%s)
LOG=$RESULT/kernels_check.log
say() { echo "[kernels-check $(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
left() { local l=$(( DEADLINE - ($(date +%s) - START) )); echo $(( l > 5 ? l : 5 )); }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$LOG"

if [ -z "${SKIP_PGOLF:-}" ]; then
  (TARGETS="trainer pgolf_tests" bash scripts/gpu/build.sh > "$WORK/build.log" 2>&1; echo $? > "$WORK/build.rc") &
fi
DS=$WORK/data/datasets/fineweb10B_sp8192
for f in fineweb_train fineweb_val wiki_en_2015.00; do ln -s "$REPO/.gpu/corpus/$f.jsonl.xz" "$WORK/corpus/"; done
python3 .gpu/reference/tokenize_corpus.py $TOK "$DS" "$WORK/corpus" > "$WORK/tokenize.log" 2>&1
cp $TOK "$WORK/data/tokenizers/"
say "tokenized: $(tail -1 "$WORK/tokenize.log")"

# One pgolf run: NAME RECIPE [--set ...]; the GPU memory is sampled while it runs (its peak in NAME.mem).
common=(--set "data.train=$DS/fineweb_train_*.bin" --set "data.val=$DS/fineweb_val_*.bin" --set "data.tokenizer=$TOK"
  --set 'eval.byte_counter={"name":"lut"}' --set train.max_wallclock_seconds=0 --set train.val_every=0
  --set 'train.hooks=[]' --set 'pipeline=[]' --set train.log_every=1 --set model.fused_kernels=true)
run_pgolf() {
  local name=$1 recipe=$2
  shift 2
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$WORK/runs/$name.memlog" &
  local smi=$!
  timeout "$(left)" build-gpu/bin/trainer --recipe "recipes/$recipe.json" "${common[@]}" "$@" --out "$WORK/runs/$name" \
    > "$WORK/runs/$name.log" 2>&1 || say "$name failed or stopped: $(tail -3 "$WORK/runs/$name.log" | tr '\n' ' ')"
  kill "$smi" 2>/dev/null || true
  sort -n "$WORK/runs/$name.memlog" | tail -1 > "$WORK/runs/$name.mem"
  say "$name done ($(grep -c "\"type\":\"train\"" "$WORK/runs/$name/metrics.jsonl" 2>/dev/null || true) logged steps)"
}

if [ -z "${SKIP_PGOLF:-}" ]; then
  while [ ! -f "$WORK/build.rc" ]; do sleep 2; done
  if [ "$(cat "$WORK/build.rc")" != 0 ]; then
    tail -40 "$WORK/build.log" | tee -a "$LOG"
    say "the CUDA build failed"
    exit 1
  fi
  say "built"
  # 2. kernel tests
  build-gpu/bin/pgolf_tests --gtest_filter='KernelsCuda.*:Kernels*.*:Mfu.*' > "$RESULT/kernel_tests.log" 2>&1 || true
  grep -E '^\[kernels\]|^\[ +(OK|FAILED|SKIPPED|PASSED) +\]|Failure|error' "$RESULT/kernel_tests.log" | tee -a "$LOG"
  say "kernel tests: $(grep -E '^\[  (PASSED|FAILED)' "$RESULT/kernel_tests.log" | tr '\n' ' ')"
  # 3. losses with and without the kernels
  loss=(--set data.batch_tokens=262144 --set train.iterations="$LOSS_STEPS" --set train.warmup_steps=0
    --set train.warmup_looped_steps=0 --set model.recurrence.activate_at=0.5)
  run_pgolf loss-fused pr1755 "${loss[@]}"
  run_pgolf loss-unfused pr1755 "${loss[@]}" --set model.fused_kernels=false
  # 4. full-batch throughput, pre-loop and looped
  for seed in pr1755 pr1855; do
    run_pgolf "tput-$seed" "$seed" --set train.iterations="$STEPS" --set train.warmup_steps=3 \
      --set train.warmup_looped_steps=3 --set model.recurrence.activate_at=0.5
  done
fi

# 5. the Python reference (#1755), killed once its last training step is logged (no GPTQ, no final eval)
if [ -n "${REF:-}${SKIP_PGOLF:-}" ] && [ -f .gpu/reference/pr1755_train_gpt.py ]; then
  mkdir -p "$WORK/runs/ref-pr1755"
  say "reference #1755: $STEPS steps at 786,432 tokens (torch.compile first)"
  (cd "$WORK/runs/ref-pr1755" && PYTHONPATH="$REPO/.gpu/reference" PYTHONUNBUFFERED=1 DATA_DIR="$WORK/data/" SEED=42 \
    ITERATIONS="$STEPS" MAX_WALLCLOCK_SECONDS=0 TRAIN_BATCH_TOKENS=786432 ENABLE_LOOPING_AT=0.5 WARMUP_STEPS=3 \
    VAL_LOSS_EVERY=0 TTT_ENABLED=0 TRAIN_LOG_EVERY=1 timeout "$(left)" python3 "$REPO/.gpu/reference/pr1755_train_gpt.py" \
    > "$WORK/runs/ref-pr1755.log" 2>&1) &
  ref=$!
  until grep -q "^$STEPS/$STEPS train_loss" "$WORK/runs/ref-pr1755.log" 2>/dev/null || ! kill -0 $ref 2>/dev/null; do sleep 2; done
  pkill -P $ref 2>/dev/null || true
  kill $ref 2>/dev/null || true
  wait $ref 2>/dev/null || true
  say "reference done: $(grep -c 'train_loss' "$WORK/runs/ref-pr1755.log" || true) logged steps"
fi

# The table.
python3 - "$WORK/runs" "$STEPS" "$LOSS_STEPS" <<'PY' | tee "$RESULT/kernels_check.md"
import json, os, re, sys
runs, steps, loss_steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def train_lines(name):
    p = f"{runs}/{name}/metrics.jsonl"
    if not os.path.exists(p):
        return []
    return [j for j in map(json.loads, open(p)) if j.get("type") == "train"]

def rate(points, lo, hi, batch):  # tokens/s between the first and last logged step in [lo, hi]
    pts = [(s, ms) for s, ms in points if lo <= s <= hi]
    if len(pts) < 2:
        return None
    (s0, t0), (s1, t1) = pts[0], pts[-1]
    return (s1 - s0) * batch / ((t1 - t0) / 1000.0)

def phases(points, n, batch, skip=3):
    sw = n // 2 + 1
    return rate(points, skip, sw - 1, batch), rate(points, sw + skip, n, batch)

def mfu(lines, lo, hi):
    v = [j["mfu"] for j in lines if "mfu" in j and lo <= j["step"] <= hi]
    return sum(v) / len(v) if v else None

def mem(name):
    p = f"{runs}/{name}.mem"
    t = open(p).read().strip() if os.path.exists(p) else ""
    return f"{int(t) / 1024:.1f} GiB" if t else "?"

M = lambda r: f"{r / 1e6:.3f}M" if r else "—"
P = lambda u: f"{100 * u:.1f}%" if u else "—"
print("### pgolf, #1755 at 262,144 tokens/step: losses with and without the fused kernels\n")
a, b = train_lines("loss-fused"), train_lines("loss-unfused")
if a and b:
    la, lb = {j["step"]: j["loss"] for j in a}, {j["step"]: j["loss"] for j in b}
    common = sorted(set(la) & set(lb))
    d = [abs(la[s] - lb[s]) for s in common]
    print(f"steps compared {len(common)}; |Δloss| max {max(d):.4f} mean {sum(d) / len(d):.4f}; "
          f"step {common[-1]}: fused {la[common[-1]]:.4f} unfused {lb[common[-1]]:.4f}")
    print("| run | pre-loop tok/s | looped tok/s | memory peak |\n| --- | ---: | ---: | ---: |")
    for name, lines in (("loss-fused", a), ("loss-unfused", b)):
        pre, loop = phases([(j["step"], j["train_ms"]) for j in lines], loss_steps, 262144)
        print(f"| {name} | {M(pre)} | {M(loop)} | {mem(name)} |")
else:
    print("(missing runs)")
print("\n### tokens/s at the full 786,432-token batch (pre-loop | looped), MFU per GPU\n")
print("| run | pre-loop tok/s | looped tok/s | pre-loop MFU | looped MFU | memory peak |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
sw = steps // 2 + 1
for seed in ("pr1755", "pr1855"):
    lines = train_lines(f"tput-{seed}")
    pre, loop = phases([(j["step"], j["train_ms"]) for j in lines], steps, 786432)
    print(f"| pgolf {seed} | {M(pre)} | {M(loop)} | {P(mfu(lines, 4, sw - 1))} | {P(mfu(lines, sw + 4, steps))} | {mem('tput-' + seed)} |")
ref = f"{runs}/ref-pr1755.log"
if os.path.exists(ref):
    pts = []  # the reference logs a running tok/s since step 1: its time at step s is s·batch / tok/s
    for m in re.finditer(r"^(\d+)/\d+ train_loss: \S+ train_time: \S+ tok/s: (\d+)", open(ref).read(), re.M):
        s, tps = int(m.group(1)), float(m.group(2))
        pts.append((s, 1000.0 * s * 786432 / tps))
    pre, loop = phases(pts, steps, 786432)
    print(f"| reference pr1755 (torch.compile, SDPA) | {M(pre)} | {M(loop)} | | | |")
PY
for f in "$WORK/build.log" "$WORK"/runs/*.log; do [ -f "$f" ] && { echo "== $f"; tail -12 "$f"; }; done >> "$LOG" 2>/dev/null || true
say "done"
