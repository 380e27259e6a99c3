#!/usr/bin/env bash
# The communicator's cost on one GPU (issue 12): #1855 (recipes/pr1855.json) for STEPS steps at its full
# batch, once as a plain single process (LocalCommunicator: no collective at all) and once at world size 1
# under torchrun (c10d + NCCL: the bucketed gradient all-reduce, the sharded-Muon all-gathers and the
# per-step stop vote all really run, through NCCL on one rank). Prints the tokens/s of both and the ratio.
# Builds first (scripts/gpu/build.sh) and prepares the SP8192-CaseOps data (scripts/gpu/prepare_data.sh).
#   scripts/gpu/nccl_ws1.sh OUT_DIR            (STEPS, default 100; DATA, default .gpu/data)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: nccl_ws1.sh OUT_DIR}
STEPS=${STEPS:-100}
DATA=${DATA:-.gpu/data}
v=sp8192-caseops
TARGETS="trainer pgolf-data" scripts/gpu/build.sh
[ -n "$(ls "$DATA/$v"/fineweb_val_*.bin 2>/dev/null)" ] || VARIANTS=$v DATA_OUT=$DATA scripts/gpu/prepare_data.sh
mkdir -p "$OUT"
args=(--recipe recipes/pr1855.json --set "data.train=$DATA/$v/fineweb_train_*.bin" --set "data.val=$DATA/$v/fineweb_val_*.bin"
  --set "data.tokenizer=.gpu/tokenizers/$v.model" --set train.iterations="$STEPS" --set train.max_wallclock_seconds=0
  --set train.log_every=10 --set train.val_every=0 --set train.warmup_steps=5 --set train.warmup_looped_steps=5 --set 'pipeline=[]')
BIN=$PWD/build-gpu/bin/trainer
echo "[nccl-ws1] plain: $BIN ${args[*]}"
"$BIN" "${args[@]}" --out "$OUT/plain" > "$OUT/plain.log" 2>&1 || { tail -30 "$OUT/plain.log"; exit 1; }
echo "[nccl-ws1] torchrun: python3 -m torch.distributed.run --nproc-per-node 1 --no-python $BIN ..."
NCCL_DEBUG=${NCCL_DEBUG:-WARN} python3 -m torch.distributed.run --standalone --nproc-per-node 1 --no-python \
  "$BIN" "${args[@]}" --out "$OUT/torchrun" > "$OUT/torchrun.log" 2>&1 || { tail -30 "$OUT/torchrun.log"; exit 1; }
grep -q "rank 0 of 1" "$OUT/torchrun/train.log" || echo "[nccl-ws1] warning: the torchrun run did not report its rank" >&2
python3 - "$OUT/plain" "$OUT/torchrun" <<'PY'
import json, sys
tps = [json.load(open(d + "/summary.json"))["tokens_per_second"] for d in sys.argv[1:]]
print(f"[nccl-ws1] tokens/s plain {tps[0]:,.0f}  torchrun+NCCL ws=1 {tps[1]:,.0f}  ratio {tps[1] / tps[0]:.4f}")
PY
