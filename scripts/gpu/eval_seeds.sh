#!/usr/bin/env bash
# Issue 11 on the GPU: each seed trains briefly from its recipe (STEPS steps at BATCH_TOKENS, warmup 5 + 5,
# no wallclock cap), then runs its own post-training pipeline: averaging, quantisation, the artifact, and
# every evaluate stage the recipe lists (pre_quant, quantized, sliding, ttt) on the model rebuilt from the
# artifact's bytes, over the validation set (VAL_TOKENS, default 0 = all of it). Prints per stage val_bpb,
# seconds, and two 8-GPU projections: on this val set, seconds x (all val tokens / scored tokens) / 8 (every
# evaluator splits its windows, documents or sequences evenly across ranks; collective latency ignored), and
# on the challenge's val set, scaled by its target count (spec 8.6: 47.85M CaseOps, 36.34M casefold, 40.86M
# cap, 62.02M SP1024 tokens) over ours. DATA_VARIANT runs every seed on that data set; PROFILE_DIR adds trainer --profile (the tables go to the seed's log).
# Longer runs across device calls (OUT_DIR in $HOME, kept while the machine stays warm): DEADLINE=S sends the
# trainer SIGTERM S seconds after this script started unless its training has finished (it finishes the
# step, writes its checkpoint, exits 143; a started pipeline runs on, so leave its time after S), and the next call resumes a seed whose
# run directory holds a checkpoint and no summary.json. COMPARE_RTN=1 adds a compare_quantizer stage after
# quantize (the recipe's GPTQ bits and k without Hessians or LQER: SD-clip RTN, scored, not packed);
# COMPARE_JSON adds more (see with_compares). They shift the later stages' indices for EXTRA_SETS by their count.
# DRY_RUN=1 only validates each seed's run (trainer --dry-run: recipe, data, tokenizer, byte counter, lrzip).
# COPY_TO=DIR copies each finished seed's log, summary.json, recipe.json and metrics.jsonl there.
#   scripts/gpu/eval_seeds.sh OUT_DIR pr1755 pr1855 ...
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${1:?usage: eval_seeds.sh OUT_DIR SEED...}
shift
STEPS=${STEPS:-500}
BATCH_TOKENS=${BATCH_TOKENS:-131072}
VAL_TOKENS=${VAL_TOKENS:-0}
START=$SECONDS
mkdir -p "$OUT_DIR"
[ -x build-gpu/bin/trainer ] || TARGETS="trainer pgolf-data" scripts/gpu/build.sh
variant() {
  [ -n "${DATA_VARIANT:-}" ] && { echo "$DATA_VARIANT"; return; }  # one data set for every seed (e.g. sp8192-caseops)
  case $1 in
    pr461) echo sp1024 ;;
    pr1693) echo casefold8192 ;;
    pr1755 | pr1855) echo sp8192-caseops ;;
    pr1938) echo cap8192 ;;
    *) echo "unknown seed '$1'" >&2; exit 1 ;;
  esac
}
need=""
for seed in "$@"; do
  v=$(variant "$seed")
  [ -f ".gpu/data/$v/READY" ] || ls .gpu/data/$v/fineweb_val_*.bin >/dev/null 2>&1 || need="$need $v"
done
[ -z "$need" ] || VARIANTS="$(echo $need | tr ' ' '\n' | sort -u | tr '\n' ' ')" scripts/gpu/prepare_data.sh
# The recipe with compare_quantizer stages after quantize: COMPARE_RTN's, then COMPARE_JSON's (a list of stage
# objects whose "quantizer" holds only the keys that differ from the recipe's quantiser, e.g.
# '[{"label":"mlp_k12","quantizer":{"mlp":{"k":12}},"container":"pergroup"}]').
with_compares() {
  COMPARE_JSON=${COMPARE_JSON:-[]} python3 - "$1" "$2" <<'EOF'
import json, os, sys
def merged(base, over):
    out = json.loads(json.dumps(base))
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
r = json.load(open(sys.argv[1]))
i = next(i for i, s in enumerate(r["pipeline"]) if s["name"] == "quantize")
q = r["pipeline"][i]["quantizer"]
stages = []
if os.environ.get("COMPARE_RTN") == "1":
    rtn = {k: v for k, v in q.items() if k != "lqer"}
    stages.append({"name": "compare_quantizer", "label": "rtn", "quantizer": rtn, "hessians": False, "pack": False})
for c in json.loads(os.environ["COMPARE_JSON"]):
    stages.append(dict(c, name="compare_quantizer", quantizer=merged(q, c.get("quantizer", {}))))
r["pipeline"][i + 1:i + 1] = stages
json.dump(r, open(sys.argv[2], "w"), indent=1)
EOF
}
for seed in "$@"; do
  v=$(variant "$seed")
  run=$OUT_DIR/$seed
  recipe=recipes/$seed.json
  if [ "${COMPARE_RTN:-0}" = 1 ] || [ -n "${COMPARE_JSON:-}" ]; then
    recipe=$OUT_DIR/$seed.recipe.json
    with_compares "recipes/$seed.json" "$recipe"
  fi
  args=(--recipe "$recipe" --set "data.train=.gpu/data/$v/fineweb_train_*.bin"
    --set "data.val=.gpu/data/$v/fineweb_val_*.bin" --set "data.tokenizer=.gpu/tokenizers/$v.model"
    --set train.iterations="$STEPS" --set train.max_wallclock_seconds=0 --set train.log_every=100
    --set train.val_every=0 --set data.batch_tokens="$BATCH_TOKENS" --set data.val_max_tokens="$VAL_TOKENS"
    --set train.warmup_steps=5 --out "$run")
  # PROFILE_DIR: trainer --profile (training steps 6-8, phased TTT chunks 60-62); traces stay there, tables in the log
  [ -n "${EXTRA_SETS:-}" ] && read -ra extra <<< "$EXTRA_SETS" && args+=("${extra[@]}")  # e.g. "--set pipeline.5.container=pergroup"
  [ -n "${PROFILE_DIR:-}" ] && mkdir -p "$PROFILE_DIR" && args+=(--profile "$PROFILE_DIR/$seed.json")
  [ "$seed" = pr461 ] || args+=(--set train.warmup_looped_steps=5)
  [ "$seed" = pr1938 ] && args+=(--set model.vocab_size="${VOCAB_1938:-8192}")  # our cap8192 tokenizer, not #1938's 7972
  [ -f "$run/summary.json" ] && { echo "[eval-seeds] $seed: $run is finished"; continue; }
  log=$OUT_DIR/$seed.log
  if [ -f "$run/checkpoint.bin" ]; then
    args=(--resume "$run")  # the run's own recipe.json and settings
    log=$OUT_DIR/$seed.resumed.log
  fi
  echo "[eval-seeds] $seed on $v: build-gpu/bin/trainer ${args[*]}"
  if [ "${DRY_RUN:-0}" = 1 ]; then  # what the run checks before training, without a run (before a device call)
    build-gpu/bin/trainer "${args[@]}" --dry-run 2>&1 | tail -3
    [ "${PIPESTATUS[0]}" = 0 ] || exit 1
    continue
  fi
  rc=0
  build-gpu/bin/trainer "${args[@]}" > "$log" 2>&1 &
  pid=$!
  if [ -n "${DEADLINE:-}" ]; then  # SIGTERM at the deadline, unless training has finished (the pipeline runs on)
    left=$((DEADLINE - (SECONDS - START)))
    ( sleep "$((left > 0 ? left : 0))"; grep -q "step \([0-9]*\)/\1 " "$run/train.log" 2>/dev/null || kill -TERM "$pid" 2>/dev/null ) &
    watcher=$!
  fi
  wait "$pid" || rc=$?
  [ -n "${DEADLINE:-}" ] && kill "$watcher" 2>/dev/null || true
  if [ "$rc" = 143 ] && [ -f "$run/checkpoint.bin" ]; then
    grep -E "step [0-9]+/|interrupted" "$log" | tail -3
    echo "[eval-seeds] $seed: stopped at the DEADLINE with a checkpoint; run this again (machine still warm) to resume"
    continue
  fi
  [ "$rc" = 0 ] || { tail -40 "$log"; exit 1; }
  if [ -n "${COPY_TO:-}" ]; then
    mkdir -p "$COPY_TO"
    cp "$OUT_DIR/$seed"*.log "$COPY_TO/"
    for f in summary.json recipe.json metrics.jsonl; do [ -f "$run/$f" ] && cp "$run/$f" "$COPY_TO/$seed.$f"; done
  fi
  grep -E "val_loss .* val_bpb|artifact|calibrat|compared" "$log" || true
  python3 - "$OUT_DIR/$seed/summary.json" "$seed" "$v" .gpu/data/$v/fineweb_val_*.bin <<'EOF'
import json, os, sys
summary, seed, variant = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
shards = [f for f in sys.argv[4:] if "_bytes_" not in f]  # the glob also matches the byte sidecar
challenge = {"sp8192-caseops": 47851520, "casefold8192": 36335616, "cap8192": 40863744, "sp1024": 62021632}[variant]
total = sum((os.path.getsize(f) - 1024) // 2 for f in shards) - 1  # 256-int32 header, uint16 tokens
scored = summary.get("val_tokens", total) or total
scale = max(1.0, total / scored) / 8
print(f"{seed}: {scored} of {total} val tokens scored")
print(f"{'stage':<12}{'val_bpb':>10}{'seconds':>10}{'8 GPUs, this val':>18}{'8 GPUs, challenge val':>23}")
# Pipeline order (the summary's keys are sorted); a compared quantiser's delta is against pre_quant.
stages = [(s["label"], s["name"] == "compare_quantizer")
          for s in json.load(open(os.path.join(os.path.dirname(sys.argv[1]), "recipe.json")))["pipeline"]
          if s.get("label") in summary["eval_seconds"]]
prev = None
for stage, compared in stages:
    sec, bpb = summary["eval_seconds"][stage], summary.get(f"{stage}_val_bpb")
    base = summary.get("pre_quant_val_bpb") if compared else prev
    delta = f"  ({bpb - base:+.4f})" if base is not None and bpb is not None else ""
    print(f"{stage:<12}{bpb:>10.4f}{sec:>10.1f}{sec * scale:>18.1f}{sec * scale * challenge / total:>23.1f}{delta}")
    prev = prev if compared else bpb
print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (dict, list))}))
EOF
done
