#!/usr/bin/env python3
"""Cross-checks pgolf-data's shards against the reference SentencePiece (PyPI `sentencepiece`).

For one tokenization and one split (val by default) that `pgolf-data prepare` wrote, re-encodes every
document in Python and compares, document by document:
  * ids: [BOS] + sp.encode(transform(text)) against the val token shards;
  * for CaseOps/none with a sidecar: the reference §3.3 rule (piece surfaces only, spec posttrain §3.3)
    and the documents' UTF-8 lengths against the sidecar shards;
  * bytes/token over the val stream (targets 1..N-1): sidecar, or the §8.2 LUT.
The transforms here are second implementations written from the spec (CaseOps §3.2, casefold §3.4 as
Python's unicodedata NFKC + str.lower(), cap §3.5 as pgolf defines it), independent of the C++ ones.

  pip install sentencepiece
  python3 scripts/crosscheck_tokenizers.py --corpus ../shared/data/corpus/fineweb_val.jsonl.xz \
      --shards data/bench/sp8192-caseops --model ../shared/data/tokenizers/<caseops>.model --transform caseops

Prints one JSON object. Exit status 1 when ids differ or a sidecar does not add up.
"""
import argparse
import array
import glob
import json
import lzma
import os
import sys
import unicodedata

import sentencepiece as spm

TITLE, ALLCAPS, CAPNEXT, ESC = "\ue001", "\ue002", "\ue003", "\ue004"
OPS = (TITLE, ALLCAPS, CAPNEXT, ESC)


# ---- transforms, from the spec ------------------------------------------------------------------

def caseops_encode(text):
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in OPS:
            out.append(ESC + c)
            i += 1
            continue
        if not ("a" <= c <= "z" or "A" <= c <= "Z"):
            out.append(c)
            i += 1
            continue
        j = i
        while j < n and ("a" <= text[j] <= "z" or "A" <= text[j] <= "Z"):
            j += 1
        w = text[i:j]
        i = j
        uppers = sum(1 for ch in w if "A" <= ch <= "Z")
        if uppers == 0:
            out.append(w)
        elif len(w) >= 2 and uppers == len(w):
            out.append(ALLCAPS + w.lower())
        elif len(w) >= 2 and uppers == 1 and "A" <= w[0] <= "Z":
            out.append(TITLE + w.lower())
        else:
            out.append((TITLE if "A" <= w[0] <= "Z" else "") + w[0].lower())
            for ch in w[1:]:
                out.append((CAPNEXT if "A" <= ch <= "Z" else "") + ch.lower())
    return "".join(out)


def casefold(text):
    return unicodedata.normalize("NFKC", text).lower()


# ---- shards and protobuf ------------------------------------------------------------------------

def read_shards(paths):
    out = array.array("H")
    for p in paths:
        with open(p, "rb") as f:
            header = array.array("i")
            header.frombytes(f.read(1024))
            assert header[0] == 20240520 and header[1] == 1, p
            a = array.array("H")
            a.frombytes(f.read())
            assert len(a) == header[2], p
            out.extend(a)
    return out


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def proto_fields(b):
    i, out = 0, []
    while i < len(b):
        k, i = varint(b, i)
        wt, f = k & 7, k >> 3
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            v, i = b[i:i + 8], i + 8
        out.append((f, v))
    return out


def pieces_with_surface(sp, text):
    """(id, surface) per piece: SentencePieceText field 2 = pieces {2: id, 3: surface}."""
    res = []
    for f, v in proto_fields(sp.encode(text, out_type="serialized_proto")):
        if f == 2:
            d = dict(proto_fields(v))
            res.append((d.get(2, 0), d.get(3, b"").decode("utf-8")))
    return res


def reference_sidecar(sp, text, caseops):
    """Spec §3.3: bytes per piece from piece.surface, walking the decoder state across pieces."""
    out, esc = [], False
    for _, surface in pieces_with_surface(sp, text):
        n = 0
        for ch in surface:
            if caseops and esc:
                n += len(ch.encode())
                esc = False
            elif caseops and ch in OPS:
                esc = ch == ESC
            else:
                n += len(ch.encode())
        out.append(n)
    return out


def lut(sp, zero=("<cap>",)):
    base, space, boundary = [], [], []
    for i in range(sp.get_piece_size()):
        p = sp.id_to_piece(i)
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            base.append(0), space.append(False), boundary.append(True)
        elif sp.is_byte(i):
            base.append(1), space.append(False), boundary.append(False)
        elif p in zero:
            base.append(0), space.append(False), boundary.append(False)
        else:
            s = p.startswith("\u2581")
            base.append(len((p[1:] if s else p).encode())), space.append(s), boundary.append(False)
    return base, space, boundary


def docs_of(path):
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)["text"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True, nargs="+", help="the documents given to prepare for the split")
    ap.add_argument("--split", default="val", choices=["val", "train"])
    ap.add_argument("--shards", required=True, help="the prepare output directory")
    ap.add_argument("--prefix", default="fineweb")
    ap.add_argument("--model", required=True, help="the tokenizer given to prepare")
    ap.add_argument("--base", help="cap only: the base model")
    ap.add_argument("--transform", default="none", choices=["none", "caseops", "casefold", "cap"])
    args = ap.parse_args()

    sp = spm.SentencePieceProcessor(model_file=args.model)
    base = spm.SentencePieceProcessor(model_file=args.base) if args.base else None
    tok_files = sorted(p for p in glob.glob(os.path.join(args.shards, f"{args.prefix}_{args.split}_*.bin"))
                       if "_bytes_" not in p)
    side_files = sorted(glob.glob(os.path.join(args.shards, args.prefix + "_val_bytes_*.bin"))) if args.split == "val" else []
    tokens = read_shards(tok_files)
    sidecar = read_shards(side_files) if side_files else None

    cap_map = None
    if args.transform == "cap":
        cap_ids = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
        cap_map = []
        for b in range(base.get_piece_size()):
            p = base.id_to_piece(b)
            if p in cap_ids:
                cap_map.append([cap_ids[p]])
            else:
                k = 1 if p.startswith("\u2581") else 0
                cap_map.append([cap_ids["<cap>"], cap_ids[p[:k] + p[k].lower() + p[k + 1:]]])

    docs = ids_differ = side_differ_ref = side_differ_len = gap_only = 0
    utf8_total = ref_total = 0
    pos = 0
    first_bad = None
    for text in (t for c in args.corpus for t in docs_of(c)):
        docs += 1
        if args.transform == "caseops":
            t = caseops_encode(text)
        elif args.transform == "casefold":
            t = casefold(text)
        else:
            t = text
        if cap_map is not None:
            ids = [c for b in base.encode(t) for c in cap_map[b]]
        else:
            ids = sp.encode(t)
        want = [1] + ids
        got = tokens[pos:pos + len(want)].tolist()
        if got != want:
            ids_differ += 1
            if first_bad is None:
                first_bad = docs
        n8 = len(text.encode())
        utf8_total += n8
        if sidecar is not None and cap_map is None:
            ours = sidecar[pos:pos + len(want)].tolist()
            ref = [0] + reference_sidecar(sp, t, args.transform == "caseops")
            ref_total += sum(ref)
            if sum(ours) != n8:
                side_differ_len += 1
            if ours != ref:
                side_differ_ref += 1
                # Ours differs from the surface-only rule only by the whitespace SentencePiece dropped.
                if sum(ours) - sum(ref) == n8 - len(text.strip(" \t\n\r\u3000").encode()) or sum(ours) == n8:
                    gap_only += 1
        pos += len(want)

    result = {"split": args.split, "transform": args.transform, "model": os.path.basename(args.model), "docs": docs,
              "tokens": len(tokens), "docs_with_different_ids": ids_differ, "first_doc_differing": first_bad,
              "stream_fully_consumed": pos == len(tokens), "utf8_bytes": utf8_total}
    targets = len(tokens) - 1
    if sidecar is not None:
        side_bytes = sum(sidecar[1:])
        result.update({"sidecar_bytes": sum(sidecar), "sidecar_docs_not_summing_to_utf8": side_differ_len,
                       "bytes_per_token_sidecar": round(side_bytes / targets, 4)})
        if cap_map is None:
            result.update({"reference_surface_rule_bytes": ref_total,
                           "docs_differing_from_surface_rule": side_differ_ref,
                           "of_which_only_dropped_whitespace": gap_only})
    b, s, bd = lut(sp)
    lut_bytes = sum(b[tokens[i]] + (1 if s[tokens[i]] and not bd[tokens[i - 1]] else 0) for i in range(1, len(tokens)))
    result.update({"lut_bytes": lut_bytes, "bytes_per_token_lut": round(lut_bytes / targets, 4), "targets": targets})
    print(json.dumps(result))
    bad = ids_differ or pos != len(tokens) or (sidecar is not None and side_differ_len)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
