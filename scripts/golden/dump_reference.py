#!/usr/bin/env python3
"""Golden tensors from the reference scripts, for tests/test_golden.cpp (issue 15, llm.c's way of testing).

For each seed family this imports a reference script from the shared reference folder (never copied into
the project), builds a tiny configuration of it, perturbs its initial weights (so zero-initialised
projections and gates carry gradients), and runs the reference's own train_model() for one and for two
optimizer steps on random token batches. It dumps: the weights, the batch, the logits (train mode, eval
mode, looped), every micro-batch's loss, every parameter's gradient (accumulated, before clipping) and the
clip norm at both steps, the weights after each step, and the EMA after one and after two updates.

    /work/venv-ref/bin/python scripts/golden/dump_reference.py [--reference DIR] [--out DIR] [--only NAME]

Run it with a CPU PyTorch 2.11 (a virtualenv outside the repo; the build must not see it). The reference
needs CUDA, Triton kernels and torch.compile at a few points; the patches below replace exactly those, and
each says why. Nothing here comes from the shared data: weights and batches are random.

Fixture format (read by tests/test_golden.cpp): b"PGOLDEN1", a little-endian uint64 header length, a JSON
header {"meta": {...}, "tensors": [{"name", "dtype", "shape", "offset"}]}, then the raw little-endian
tensors, each at its offset from the end of the header.
"""
import argparse
import contextlib
import importlib.util
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference"
if not DEFAULT_REFERENCE.is_dir():
    DEFAULT_REFERENCE = Path("/work/shared/reference")

# The tiny shape shared by every family: 11 layers keep the loop (3-5), the GPT-J start (7) and the lanes
# (8) where the real models have them; d = 16 with 2 query heads over 1 kv head (head dim 8, 4 rotated
# channels) and an MLP of 2x keep each weight snapshot near 90 KB.
TINY = dict(VOCAB_SIZE=64, MODEL_DIM=16, EMBEDDING_DIM=16, NUM_HEADS=2, NUM_KV_HEADS=1, ROPE_DIMS=4, MLP_MULT=2,
            TRAIN_SEQ_LEN=32, ROPE_TRAIN_SEQ_LEN=32, EVAL_SEQ_LEN=32)
MICRO = 8          # the references' grad_accum_steps = 8 // world_size, with one process
ROWS = 2           # rows of TRAIN_SEQ_LEN per micro-batch (#1755's loader)
RUN = dict(WARMUP_STEPS=0, MAX_WALLCLOCK_SECONDS=0, VAL_LOSS_EVERY=0, TRAIN_LOG_EVERY=0, TTT_ENABLED=0,
           TRAIN_BATCH_TOKENS=MICRO * ROWS * 32, SEED=0)
PGOLF_TINY = ["model.vocab_size=64", "model.dim=16", "model.heads=2", "model.kv_heads=1",
              "model.attention.rope_dims=4", "model.mlp.mult=2.0", "data.seq_len=32", "data.micro_batches=8",
              f"data.batch_tokens={MICRO * ROWS * 32}", "train.warmup_steps=0", "train.warmup_looped_steps=0",
              "train.max_wallclock_seconds=0"]


def logged_env(reference):
    """#1855's run as logged (its code defaults differ): KEY=value lines."""
    env = {}
    for line in (reference / "pr1855_logged_hparams.env").read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
    return env


def families(reference):
    a2 = logged_env(reference)
    a2.update(CASEOPS_ENABLED="0", FUSED_CE_ENABLED="0", GATED_ATTN_QUANT_GATE="0")
    return {
        # #1755 as its script's defaults (the record run's values).
        "pr1755": dict(script="pr1755_train_gpt.py", env={}, packed=False, recipe="pr1755", overrides=[], steps=2),
        # What #461 shares with #1755's code: additive U-Net skips, no loop, no parallel residuals, XSA on
        # the last 4 layers, QK-gain 1.5, Muon without row normalisation. #461's own parts (shared cores,
        # BigramHash, value embeddings, per-channel smear, NTK RoPE, ReLU^2) have spec-formula tests.
        "pr461_shared": dict(
            script="pr1755_train_gpt.py",
            env=dict(SKIP_GATES_ENABLED="0", NUM_LOOPS="0", PARALLEL_RESIDUAL_START="-1", XSA_LAST_N="4",
                     QK_GAIN_INIT="1.5", MUON_ROW_NORMALIZE="0"),
            packed=False, recipe="pr1755", steps=1,
            overrides=['model.skip={"name":"unet_additive"}', 'model.recurrence={"name":"none"}',
                       "model.block.gptj_parallel_from=-1", "model.attention.xsa_layers=[7,8,9,10]",
                       "model.attention.qk_gain_init=1.5"],
            patch=[{"op": "replace", "path": "/optim/groups/1/row_normalize", "value": False}]),
        # #1855 as logged: packed documents, varlen attention, SparseAttnGate, BOS-fixed SmearGate, two lanes.
        "pr1855": dict(script="pr1855_train_gpt.py", env=a2, packed=True, recipe="pr1855", overrides=[], steps=2),
        # #1938's shape through #1855's code: no gates, no smear, beta2 0.95, warmdown 0.75 to 0 (spec 6.3).
        # The code fixes LeakyReLU's slope at 0.5 where #1938 ran 0.3: pgolf is set to 0.5 here.
        "pr1938_shape": dict(
            script="pr1855_train_gpt.py",
            env=dict(a2, SMEAR_GATE_ENABLED="0", SPARSE_ATTN_GATE_ENABLED="0", BETA2="0.95",
                     WARMDOWN_FRAC="0.75", MIN_LR="0.0"),
            packed=True, recipe="pr1938", overrides=["model.mlp.slope=0.5"], steps=1),
    }


# ---- patches: each replaces a CUDA-, Triton- or compile-only piece with its CPU equivalent ----------------

def patch_torch():
    # torch.compile (the model, #1755/#1855's Newton-Schulz): eager runs the same graph; inductor on this CPU
    # would only add compile time and fusion-level rounding.
    torch.compile = lambda fn=None, **kw: fn if fn is not None else (lambda f: f)
    # GPT(h).to(device).bfloat16() then restore_fp32_params: on the GPU the reference keeps tok_emb (and
    # #1855's bank gradients) in bf16; the goldens are fp32 throughout, so the cast is skipped.
    torch.nn.Module.bfloat16 = lambda self: self
    # Timing, memory statistics and #1855's side stream for the Adam steps: no-ops on the CPU (the streams
    # only overlap independent parameter groups).
    torch.cuda.synchronize = lambda *a, **k: None
    torch.cuda.max_memory_allocated = lambda *a, **k: 0
    torch.cuda.max_memory_reserved = lambda *a, **k: 0

    class Stream:
        def wait_stream(self, other):
            pass

    torch.cuda.Stream = lambda *a, **k: Stream()
    torch.cuda.current_stream = lambda *a, **k: Stream()
    torch.cuda.stream = lambda s: contextlib.nullcontext()


def cpu_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal=False, **kw):
    """FA3's varlen attention (the GPU shim's torch varlen_attn has no CPU kernel): causal SDPA inside each
    segment of cu_seqlens, kv heads repeated for GQA. q: (N, H, D), k/v: (N, Hkv, D)."""
    out = torch.zeros_like(q)
    cu = cu_seqlens_q.tolist()
    for s, e in zip(cu[:-1], cu[1:]):
        if e <= s:
            continue  # the padding entries repeat the end
        qs, ks, vs = (t[s:e].transpose(0, 1) for t in (q, k, v))
        out[s:e] = F.scaled_dot_product_attention(qs, ks, vs, is_causal=causal,
                                                  enable_gqa=qs.size(0) != ks.size(0)).transpose(0, 1)
    return out


def eager_leaky_mlp(x, w1, w2):
    """#1855's fused Triton GEMM + LeakyReLU(0.5)^2 (train mode): its own eager eval path, same math."""
    return F.linear(F.leaky_relu(F.linear(x, w1), negative_slope=0.5).square(), w2)


def load_reference(path, env, name):
    """A fresh import, so the Hyperparameters class reads this family's environment."""
    saved = dict(os.environ)
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return mod


# ---- the batches: random tokens, BOS (1) placed to make documents in the packed rows ----------------------

def make_batches(steps, packed, vocab, seq, rng):
    n = ROWS * seq
    out = []
    for _ in range(steps * MICRO):
        toks = rng.integers(2, vocab, size=n + 1)
        if packed:  # documents of 5..40 tokens, each starting with BOS, one longer than seq (split by cu)
            pos = 0
            while pos < n:
                toks[pos] = 1
                pos += int(rng.integers(5, 41))
        out.append(torch.from_numpy(toks.astype(np.int64)))
    return out


class Recorder:
    def __init__(self):
        self.tensors = {}
        self.meta = {}

    def put(self, name, t):
        self.tensors[name] = t.detach().clone().contiguous()


def install(mod, rec, batches, packed, seq, perturb_seed):
    """Replaces the loaders, eval and CUDA-only kernels, and taps the model and the optimizer step."""
    state = {"step": 0}

    class FixedLoader:  # the same micro-batches in order; rebuilt from the start like the references' loaders
        def __init__(self, h, device, *a, **k):
            self.i = 0
            self.cu_bucket_size = 64

        def next_batch(self, global_tokens, grad_accum_steps):
            toks = batches[self.i]
            self.i += 1
            x, y = toks[:-1], toks[1:]
            if not packed:
                return x.view(ROWS, seq), y.view(ROWS, seq)
            bos = (x == 1).nonzero().flatten().tolist()
            cu, max_len = mod._build_cu_seqlens(bos, x.numel(), x.device, seq, 64)
            return x[None], y[None], cu, max_len

    mod.ShuffledSequenceLoader = FixedLoader
    if hasattr(mod, "DocumentPackingLoader"):
        mod.DocumentPackingLoader = FixedLoader
        mod.BOS_ID = 1
        mod.flash_attn_varlen_func = cpu_varlen
        mod.FusedLeakyReLUSquareMLP = eager_leaky_mlp
    mod.eval_val = lambda *a, **k: (0.0, 0.0)  # the final validation: not part of the goldens
    mod.log = lambda msg, console=True: print(msg, file=sys.stderr)

    gpt_init = mod.GPT.__init__

    def init(self, h):
        gpt_init(self, h)
        g = torch.Generator().manual_seed(perturb_seed)
        with torch.no_grad():  # every tensor non-trivial: zero-init projections and gates carry gradients
            for p in self.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        for k, v in self.state_dict().items():
            rec.put("w0/" + k, v)
        first = FixedLoader(h, None).next_batch(0, MICRO)
        args = dict(cu_seqlens=first[2], max_seqlen=seq) if packed else {}
        with torch.no_grad():
            rec.put("logits/train", self.forward_logits(first[0], **args))
            self.eval()
            rec.put("logits/eval", self.forward_logits(first[0], **args))
            if hasattr(self, "encoder_indices") and len(self.encoder_indices) != self.num_encoder_layers:
                self.looping_active = True
                rec.put("logits/looped", self.forward_logits(first[0], **args))
                self.looping_active = False
            self.train()
        self._golden_losses = []

    mod.GPT.__init__ = init

    gpt_forward = mod.GPT.forward

    def forward(self, *a, **k):
        loss = gpt_forward(self, *a, **k)
        self._golden_losses.append(loss.detach().clone())
        return loss

    mod.GPT.forward = forward

    clip = torch.nn.utils.clip_grad_norm_

    def clip_and_record(params, max_norm, *a, **k):
        params = list(params)
        model = state["model"]
        s = state["step"]
        for name, p in model.named_parameters():
            if p.grad is not None:
                rec.put(f"grad{s}/{name}", p.grad)
        norm = clip(params, max_norm, *a, **k)
        rec.put(f"clip_norm{s}", norm.reshape(1))
        return norm

    torch.nn.utils.clip_grad_norm_ = clip_and_record

    opt_init = mod.Optimizers.__init__

    def optimizers_init(self, h, base_model):
        opt_init(self, h, base_model)
        state["model"] = base_model

    mod.Optimizers.__init__ = optimizers_init
    opt_step = mod.Optimizers.step

    def optimizers_step(self, *a, **k):
        s = state["step"]
        model = state["model"]
        rec.put(f"loss{s}", torch.stack(model._golden_losses))
        model._golden_losses = []
        rec.meta[f"lr_scale{s}"] = self.optimizer_muon.param_groups[0]["lr"] / self.optimizer_muon.param_groups[0]["base_lr"]
        rec.meta[f"muon_momentum{s}"] = self.optimizer_muon.param_groups[0]["momentum"]
        rec.meta[f"looping{s}"] = bool(model.looping_active)
        out = opt_step(self, *a, **k)
        for name, v in model.state_dict().items():
            rec.put(f"w{s + 1}/{name}", v)
        state["step"] = s + 1
        return out

    mod.Optimizers.step = optimizers_step


def run_family(reference, name, fam, steps, perturb_seed=1234):
    env = dict(fam["env"])
    env.update({k: str(v) for k, v in TINY.items()})
    env.update({k: str(v) for k, v in RUN.items()})
    env["ITERATIONS"] = str(steps)
    mod = load_reference(reference / fam["script"], env, f"ref_{name}_{steps}")
    rec = Recorder()
    rng = np.random.default_rng(20261201)
    batches = make_batches(steps, fam["packed"], TINY["VOCAB_SIZE"], TINY["TRAIN_SEQ_LEN"], rng)
    install(mod, rec, batches, fam["packed"], TINY["TRAIN_SEQ_LEN"], perturb_seed)
    h = mod.Hyperparameters()
    torch.manual_seed(h.seed)
    out = mod.train_model(h, torch.device("cpu"), None)
    base_model = out[0]  # train_model ends by loading the EMA into the model
    for k, v in base_model.state_dict().items():
        rec.put(f"ema{steps}/{k}", v)
    x = torch.stack([b[:-1] for b in batches]).view(steps * MICRO, -1)
    y = torch.stack([b[1:] for b in batches]).view(steps * MICRO, -1)
    rec.put("batch/x", x)
    rec.put("batch/y", y)
    if fam["packed"]:
        cus = []
        for b in batches:
            bos = (b[:-1] == 1).nonzero().flatten().tolist()
            cus.append(mod._build_cu_seqlens(bos, b.numel() - 1, b.device, TINY["TRAIN_SEQ_LEN"], 64)[0])
        width = max(c.numel() for c in cus)
        rec.put("batch/cu_seqlens", torch.stack([F.pad(c, (0, width - c.numel()), value=c[-1].item()) for c in cus]))
    hp = {k: getattr(h, k) for k in ("matrix_lr", "scalar_lr", "tied_embed_lr", "muon_momentum", "beta1", "beta2",
                                      "adam_wd", "muon_wd", "embed_wd", "ema_decay", "warmdown_frac", "min_lr",
                                      "grad_clip_norm", "qk_gain_init", "logit_softcap", "num_loops")}
    rec.meta["hyperparameters"] = hp
    return rec


def write_fixture(path, meta, tensors):
    dtypes = {torch.float32: ("f32", np.float32), torch.int64: ("i64", np.int64), torch.int32: ("i32", np.int32)}
    entries, blobs, offset = [], [], 0
    for name in sorted(tensors):
        t = tensors[name]
        code, npt = dtypes[t.dtype]
        raw = t.numpy().astype(np.dtype(npt).newbyteorder("<"), copy=False).tobytes()
        entries.append({"name": name, "dtype": code, "shape": list(t.shape), "offset": offset})
        blobs.append(raw)
        offset += len(raw)
    header = json.dumps({"meta": meta, "tensors": entries}, sort_keys=True).encode()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(b"PGOLDEN1" + struct.pack("<Q", len(header)) + header)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="folder of the reference scripts")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "golden")
    ap.add_argument("--only", action="append", help="dump only these families")
    args = ap.parse_args()
    if not (args.reference / "pr1755_train_gpt.py").is_file():
        sys.exit(f"{args.reference}: no pr1755_train_gpt.py; pass --reference with the shared reference folder")
    if not torch.__version__.startswith("2.11"):
        print(f"warning: torch {torch.__version__}; the goldens were made with 2.11", file=sys.stderr)
    sys.path.insert(0, str(args.reference))  # the flash_attn_interface shim
    torch.set_num_threads(1)
    patch_torch()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, fam in families(args.reference).items():
        if args.only and name not in args.only:
            continue
        runs = [run_family(args.reference, name, fam, steps=n) for n in range(1, fam["steps"] + 1)]
        last = runs[-1]
        for k in [k for k in runs[0].tensors if k.startswith(("w0/", "w1/", "grad0/"))]:
            if not torch.equal(runs[0].tensors[k], last.tensors[k]):
                sys.exit(f"{name}: {k} differs between the 1- and 2-step runs (nondeterminism?)")
        tensors = dict(last.tensors)
        tensors.update({k: v for k, v in runs[0].tensors.items() if k.startswith("ema1/")})
        steps = fam["steps"]
        meta = dict(last.meta, family=name, script=fam["script"], env=fam["env"], packed=fam["packed"],
                    recipe=fam["recipe"], overrides=PGOLF_TINY + [f"train.iterations={steps}"] + fam["overrides"],
                    patch=fam.get("patch", []), micro_batches=MICRO, rows=ROWS, seq_len=TINY["TRAIN_SEQ_LEN"],
                    steps=steps, torch=torch.__version__)
        path = args.out / f"{name}.golden"
        write_fixture(path, meta, tensors)
        print(f"{path}: {len(tensors)} tensors, {path.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
