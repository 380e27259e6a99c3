#!/usr/bin/env bash
# Issue 13, the fused kernels, side by side with the Python references, in device calls of under 10 minutes
# (DEADLINE, default 540 s, stops what still runs). PARTS (default "tests pr1755 pr1855 loss") picks, in this order:
#   (always) the CUDA build (scripts/gpu/build.sh: the carried build of scripts/gpu/prebuilt.sh when there is
#      one), then the corpus tokenized by pgolf-data (SP8192: Wikipedia part 00 + fineweb_train, val =
#      fineweb_val; BOS before every document) into the layout the Python references read, so that all train on
#      the same shards (kept in $HOME/kernels_data while the machine stays warm);
#   tests    the GPU tests (pgolf_gpu_tests: every fused kernel against its ATen composition, forward and every
#            gradient, host syncs made errors; the fused optimizers; varlen attention; MFU). When a kernel case
#            fails, the throughput runs use model.fused_kernels=false and the table says so;
#   pr1755   pgolf's tokens/s and MFU on #1755 at the full 786,432-token batch, STEPS steps (default 30; the loop
#            from step STEPS/2+1), pre-loop and looped, the GPU memory peak;
#   ref1755  the Python #1755 reference at the same batch, phases and data (torch.compile first);
#   pr1855   pgolf's #1855 likewise (on the SP8192 shards, as its reference below);
#   ref1855  the Python #1855 reference (its logged hyperparameters, CaseOps off) likewise. Its torch.compile
#            (dynamic=False: eight graphs, four cu_seqlens buckets, loop off and on) takes longer than one call,
#            so it runs under scripts/gpu/ref_auto_dynamic.py (PyTorch's default automatic dynamic shapes: the
#            bucket dimension compiled once as symbolic; REF_STATIC=1 runs it as written). The compile caches live
#            in $HOME/ref_compile_cache, so a later call on the same (warm) machine reuses them;
#   loss     #1755 for LOSS_STEPS steps (default 40) at 262,144 tokens per step (loop from the middle), with the
#            kernels and without (model.fused_kernels=false): per-step training losses compared, both tokens/s;
#   profile  #1855's looped full-batch step under trainer --profile ($OUT/profile_pr1855.txt), before ref1855.
# REF=1 adds ref1755 and PROFILE=1 adds profile (the older spelling). Prints one compact table
# ($OUT/kernels_check.md); logs in $OUT/kernels_check.log.
#
#   here:     scripts/gpu/kernels_check.sh stage        (SHARED, default ../shared)
#   device:   scripts/gpu/kernels_check.sh run "$OUT"   (carry .gpu)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
MODE=${1:?usage: kernels_check.sh stage | run OUT_DIR}
STEPS=${STEPS:-30}
LOSS_STEPS=${LOSS_STEPS:-40}
DEADLINE=${DEADLINE:-540}
PARTS=" ${PARTS:-tests pr1755 pr1855 loss} ${REF:+ref1755} ${PROFILE:+profile} "
want() { [[ "$PARTS" == *" $1 "* ]]; }

if [ "$MODE" = stage ]; then
  SHARED=${SHARED:-../shared}
  mkdir -p .gpu/reference .gpu/corpus .gpu/tokenizers .gpu/debs
  cp -u "$SHARED"/reference/{pr1755_train_gpt.py,pr1855_train_gpt.py,pr1855_logged_hparams.env,flash_attn_interface.py,brotli.py} .gpu/reference/
  cp -u "$SHARED"/data/corpus/{fineweb_train,fineweb_val,wiki_en_2015.00}.jsonl.xz .gpu/corpus/
  cp "$SHARED"/data/tokenizers/fineweb_8192_bpe.model .gpu/tokenizers/sp8192.model
  cp "$SHARED"/data/tokenizers/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model .gpu/tokenizers/sp8192-caseops.model
  (cd .gpu/debs && for p in liblzma-dev libbrotli-dev lrzip liblzo2-2; do ls ${p}_*.deb >/dev/null 2>&1 || apt-get download "$p"; done)
  echo "[kernels-check] .gpu holds $(du -sm .gpu | cut -f1) MiB (the call carries at most 64 MiB with the tree)"
  exit 0
fi
[ "$MODE" = run ] || { echo "usage: kernels_check.sh stage | run OUT_DIR" >&2; exit 2; }
RESULT=${2:?usage: kernels_check.sh run OUT_DIR}
mkdir -p "$RESULT"
TOK=.gpu/tokenizers/sp8192.model
for f in $TOK .gpu/corpus/fineweb_val.jsonl.xz; do
  [ -f "$f" ] || { echo "$f missing: run 'scripts/gpu/kernels_check.sh stage' here first and carry .gpu" >&2; exit 1; }
done
WORK=${WORK:-$HOME/kernels_check}
rm -rf "$WORK" && mkdir -p "$WORK/runs"
START=$(date +%s)
LOG=$RESULT/kernels_check.log
say() { echo "[kernels-check $(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
left() { local l=$(( DEADLINE - ($(date +%s) - START) )); echo $(( l > 5 ? l : 5 )); }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$LOG"

if ! TARGETS="trainer pgolf-data pgolf_gpu_tests" bash scripts/gpu/build.sh > "$WORK/build.log" 2>&1; then
  tail -40 "$WORK/build.log" | tee -a "$LOG"
  say "the CUDA build failed"
  exit 1
fi
say "built"
DATA=$HOME/kernels_data  # kept across calls on a warm machine: the references' DATA_DIR
DS=$DATA/datasets/fineweb10B_sp8192
if [ ! -f "$DATA/done" ]; then
  rm -rf "$DATA" && mkdir -p "$DATA/datasets" "$DATA/tokenizers"
  build-gpu/bin/pgolf-data prepare --tokenizer $TOK --train .gpu/corpus/wiki_en_2015.00.jsonl.xz .gpu/corpus/fineweb_train.jsonl.xz \
    --val .gpu/corpus/fineweb_val.jsonl.xz --out "$DS" --threads "$(nproc)" > "$WORK/tokenize.log" 2>&1
  cp $TOK "$DATA/tokenizers/fineweb_8192_bpe.model"  # the name the references derive from VOCAB_SIZE
  touch "$DATA/done"
  say "tokenized: $(tail -2 "$WORK/tokenize.log" | tr '\n' ' ')"
else
  say "tokenized shards of an earlier call reused ($DS)"
fi

# One pgolf run: NAME RECIPE [--set ...]; the GPU memory is sampled while it runs (its peak in NAME.mem).
common=(--set "data.train=$DS/fineweb_train_*.bin" --set "data.val=$DS/fineweb_val_*.bin" --set "data.tokenizer=$TOK"
  --set 'eval.byte_counter={"name":"lut"}' --set train.max_wallclock_seconds=0 --set train.val_every=0
  --set 'train.hooks=[]' --set 'pipeline=[]' --set train.log_every=1)
FUSED=true
run_pgolf() {
  local name=$1 recipe=$2
  shift 2
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$WORK/runs/$name.memlog" &
  local smi=$!
  timeout "$(left)" build-gpu/bin/trainer --recipe "recipes/$recipe.json" "${common[@]}" --set model.fused_kernels=$FUSED "$@" --out "$WORK/runs/$name" \
    > "$WORK/runs/$name.log" 2>&1 || say "$name failed or stopped: $(tail -3 "$WORK/runs/$name.log" | tr '\n' ' ')"
  kill "$smi" 2>/dev/null || true
  sort -n "$WORK/runs/$name.memlog" | tail -1 > "$WORK/runs/$name.mem"
  say "$name done ($(grep -c "\"type\":\"train\"" "$WORK/runs/$name/metrics.jsonl" 2>/dev/null || true) logged steps)"
}

# A Python reference run: SEED (1755 | 1855), killed once its last training step is logged. Its compile caches
# persist in $HOME while the machine stays warm.
reference() {
  local seed=$1 script=.gpu/reference/pr$1_train_gpt.py extra=() launch=()
  [ -f "$script" ] || { say "$script missing: stage it"; return 0; }
  if [ "$seed" = 1855 ]; then
    extra=($(cat .gpu/reference/pr1855_logged_hparams.env) CASEOPS_ENABLED=0)
    [ -n "${REF_STATIC:-}" ] || launch=("$REPO/scripts/gpu/ref_auto_dynamic.py")  # its cu_seqlens buckets: one symbolic graph
  fi
  mkdir -p "$WORK/runs/ref-pr$seed" "$HOME/ref_compile_cache"
  say "reference #$seed: $STEPS steps at 786,432 tokens (torch.compile first; cache $(du -sm "$HOME/ref_compile_cache" | cut -f1) MiB)"
  (cd "$WORK/runs/ref-pr$seed" && env "${extra[@]}" PYTHONPATH="$REPO/.gpu/reference" PYTHONUNBUFFERED=1 DATA_DIR="$DATA/" SEED=42 \
    TORCHINDUCTOR_CACHE_DIR="$HOME/ref_compile_cache/inductor" TRITON_CACHE_DIR="$HOME/ref_compile_cache/triton" \
    ITERATIONS="$STEPS" MAX_WALLCLOCK_SECONDS=0 TRAIN_BATCH_TOKENS=786432 ENABLE_LOOPING_AT=0.5 WARMUP_STEPS=3 \
    VAL_LOSS_EVERY=0 TTT_ENABLED=0 TRAIN_LOG_EVERY=1 timeout "$(left)" python3 "${launch[@]}" "$REPO/$script" \
    > "$WORK/runs/ref-pr$seed.log" 2>&1) &
  local ref=$!
  until grep -q "^$STEPS/$STEPS train_loss" "$WORK/runs/ref-pr$seed.log" 2>/dev/null || ! kill -0 $ref 2>/dev/null; do sleep 2; done
  pkill -P $ref 2>/dev/null || true
  kill $ref 2>/dev/null || true
  wait $ref 2>/dev/null || true
  cp "$WORK/runs/ref-pr$seed.log" "$RESULT/" 2>/dev/null || true
  say "reference #$seed done: $(grep -c 'train_loss' "$WORK/runs/ref-pr$seed.log" || true) logged steps; cache $(du -sm "$HOME/ref_compile_cache" | cut -f1) MiB"
}

if want tests; then
  build-gpu/bin/pgolf_gpu_tests > "$RESULT/gpu_tests.log" 2>&1 || true
  grep -E '^\[kernels\]|^\[ +(OK|FAILED|SKIPPED|PASSED) +\]|Failure|error' "$RESULT/gpu_tests.log" | tee -a "$LOG" || true
  say "GPU tests: $(grep -E '^\[  (PASSED|FAILED)' "$RESULT/gpu_tests.log" | tr '\n' ' ')"
  if grep -qE '^\[  FAILED  \] KernelsCuda' "$RESULT/gpu_tests.log" || ! grep -q '^\[       OK \] KernelsCuda' "$RESULT/gpu_tests.log"; then
    FUSED=false
    say "a fused-kernel case failed or none ran: the throughput runs use model.fused_kernels=false"
  fi
fi
echo "$FUSED" > "$WORK/runs/fused"
tput=(--set train.iterations="$STEPS" --set train.warmup_steps=3 --set train.warmup_looped_steps=3 --set model.recurrence.activate_at=0.5)
want pr1755 && run_pgolf tput-pr1755 pr1755 "${tput[@]}"
want ref1755 && reference 1755
want pr1855 && run_pgolf tput-pr1855 pr1855 "${tput[@]}"
# where #1855's looped full-batch step goes (trainer --profile: steps 6-8, loop from step 4)
if want profile; then
  run_pgolf profile-pr1855 pr1855 --set train.iterations=9 --set train.warmup_steps=1 --set train.warmup_looped_steps=1 \
    --set model.recurrence.activate_at=0.3 --profile "$WORK/runs/pr1855.trace.json"
  grep -A40 "profile:" "$WORK/runs/profile-pr1855.log" | sed 's/^\[[^]]*\] //' > "$RESULT/profile_pr1855.txt" || true
  head -60 "$RESULT/profile_pr1855.txt" | tee -a "$LOG"
fi

want ref1855 && reference 1855
loss=(--set data.batch_tokens=262144 --set train.iterations="$LOSS_STEPS" --set train.warmup_steps=0
  --set train.warmup_looped_steps=0 --set model.recurrence.activate_at=0.5)
if want loss; then
  run_pgolf loss-fused pr1755 "${loss[@]}" --set model.fused_kernels=true
  run_pgolf loss-unfused pr1755 "${loss[@]}" --set model.fused_kernels=false
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
fused = open(f"{runs}/fused").read().strip() if os.path.exists(f"{runs}/fused") else "?"
print(f"\n### tokens/s at the full 786,432-token batch (pre-loop | looped), MFU per GPU; pgolf model.fused_kernels={fused}\n")
print("| run | pre-loop tok/s | looped tok/s | pre-loop MFU | looped MFU | memory peak |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
sw = steps // 2 + 1
ours = {}
for seed in ("pr1755", "pr1855"):
    lines = train_lines(f"tput-{seed}")
    pre, loop = ours[seed] = phases([(j["step"], j["train_ms"]) for j in lines], steps, 786432)
    print(f"| pgolf {seed} | {M(pre)} | {M(loop)} | {P(mfu(lines, 4, sw - 1))} | {P(mfu(lines, sw + 4, steps))} | {mem('tput-' + seed)} |")
R = lambda a, b: f"**{a / b:.2f}×**" if a and b else "—"
for seed in ("pr1755", "pr1855"):
    ref = f"{runs}/ref-{seed}.log"
    if not os.path.exists(ref):
        continue
    pts = []  # the reference logs a running tok/s since step 1: its time at step s is s·batch / tok/s
    for m in re.finditer(r"^(\d+)/\d+ train_loss: \S+ train_time: \S+ tok/s: (\d+)", open(ref).read(), re.M):
        s, tps = int(m.group(1)), float(m.group(2))
        pts.append((s, 1000.0 * s * 786432 / tps))
    pre, loop = phases(pts, steps, 786432)
    print(f"| reference {seed} (torch.compile, SDPA / varlen shim; {len(pts)} steps logged) | {M(pre)} | {M(loop)} | | | |")
    if seed in ours and ours[seed][0]:
        print(f"| pgolf / reference, {seed} | {R(ours[seed][0], pre)} | {R(ours[seed][1], loop)} | | | |")
PY
for f in "$WORK/build.log" "$WORK"/runs/*.log; do [ -f "$f" ] && { echo "== $f"; tail -12 "$f"; }; done >> "$LOG" 2>/dev/null || true
say "done"
