#!/usr/bin/env python3
"""Encoding throughput: pgolf-data prepare against the Python reference path, measured the same way.

Both turn the same .jsonl[.xz] file into token shards, end to end (decompress, parse JSON, encode with
[BOS] + ids, write uint16 shards), once as the val split and once as the train split; the figure is text
MB (10^6 bytes of UTF-8 "text") per wall-clock second, and per thread. The Python path is the challenge
scripts' way: sentencepiece's encode on batches of ~1 MB of documents with num_threads = N (the JSON
reading stays on one thread, as there). "py encode only" times the sp.encode calls alone.

  python3 scripts/bench_encode.py --bin build/bin/pgolf-data --model M.model --input F.jsonl.xz \
      --threads 1 2 [--repeat 3] [--transform caseops]

Prints a Markdown table (best of --repeat runs per cell). Needs `pip install sentencepiece`.
"""
import argparse
import array
import json
import lzma
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import sentencepiece as spm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crosscheck_tokenizers import caseops_encode  # noqa: E402  (the spec's transform, in Python)


def write_shard(path, tokens):
    header = array.array("i", [20240520, 1, len(tokens)] + [0] * 253)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.tobytes())


def python_prepare(model, path, threads, out_dir, transform, batch_bytes=1 << 20):
    sp = spm.SentencePieceProcessor(model_file=model)
    text_bytes, encode_s = 0, 0.0
    for split in ("val", "train"):
        tokens = array.array("H")
        opener = lzma.open if path.endswith(".xz") else open

        def flush(batch):
            nonlocal encode_s
            t = time.perf_counter()
            ids = sp.encode(batch, out_type=int, num_threads=threads)
            encode_s += time.perf_counter() - t
            for doc in ids:
                tokens.append(1)
                tokens.extend(doc)

        with opener(path, "rt", encoding="utf-8") as f:
            batch, size = [], 0
            for line in f:
                if not line.strip():
                    continue
                text = json.loads(line)["text"]
                text_bytes += len(text.encode())
                batch.append(caseops_encode(text) if transform == "caseops" else text)
                size += len(line)
                if size >= batch_bytes:
                    flush(batch)
                    batch, size = [], 0
            if batch:
                flush(batch)
        write_shard(os.path.join(out_dir, f"py_{split}_000000.bin"), tokens)
    return text_bytes, encode_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--transform", default="none", choices=["none", "caseops"])
    args = ap.parse_args()
    rows = []
    tmp = tempfile.mkdtemp(prefix="pgolf_bench_")
    try:
        for n in args.threads:
            best = {"pgolf": 0.0, "py": 0.0, "py_enc": 0.0}
            for _ in range(args.repeat):
                out = os.path.join(tmp, "pg")
                cmd = [args.bin, "prepare", "--tokenizer", args.model, "--train", args.input, "--val", args.input,
                       "--out", out, "--threads", str(n), "--transform", args.transform]
                t = time.perf_counter()
                r = subprocess.run(cmd, capture_output=True, text=True)
                wall = time.perf_counter() - t
                if r.returncode != 0:
                    sys.exit(r.stderr)
                shutil.rmtree(out)
                t = time.perf_counter()
                text_bytes, enc_s = python_prepare(args.model, args.input, n, tmp, args.transform)
                py_wall = time.perf_counter() - t
                best["pgolf"] = max(best["pgolf"], text_bytes / wall / 1e6)
                best["py"] = max(best["py"], text_bytes / py_wall / 1e6)
                best["py_enc"] = max(best["py_enc"], text_bytes / enc_s / 1e6)
            rows.append((n, best))
    finally:
        shutil.rmtree(tmp)
    print(f"input {args.input} ({os.path.getsize(args.input) / 1e6:.1f} MB on disk), model {os.path.basename(args.model)}, "
          f"transform {args.transform}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"sentencepiece {spm.__version__}")
    print()
    print("| threads | pgolf-data MB/s | per thread | Python reference MB/s | per thread | py encode only MB/s | per thread |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, b in rows:
        print(f"| {n} | {b['pgolf']:.2f} | {b['pgolf'] / n:.2f} | {b['py']:.2f} | {b['py'] / n:.2f} | "
              f"{b['py_enc']:.2f} | {b['py_enc'] / n:.2f} |")


if __name__ == "__main__":
    main()
