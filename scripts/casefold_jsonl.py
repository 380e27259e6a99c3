#!/usr/bin/env python3
"""Casefolds the "text" of JSON-lines documents: NFKC, then str.lower() (spec posttrain §3.4).

For a pgolf-data built without ICU (it then refuses --transform casefold): casefold the corpus here and
prepare the result with --transform none and the casefold tokenizer. Python's definition is the
reference one; docs/data.md records that pgolf-data's ICU path agrees with it on the benchmark corpus.

  python3 scripts/casefold_jsonl.py IN.jsonl[.xz] OUT.jsonl      (OUT written through a temp file)
"""
import json
import lzma
import os
import sys
import unicodedata


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    opener = lzma.open if src.endswith(".xz") else open
    tmp = f"{dst}.tmp.{os.getpid()}"
    n = 0
    try:
        with opener(src, "rt", encoding="utf-8") as f, open(tmp, "w", encoding="utf-8") as out:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                doc = json.loads(line)
                if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
                    sys.exit(f"{src}:{i}: expected a JSON object with a string field \"text\"")
                doc = {"text": unicodedata.normalize("NFKC", doc["text"]).lower()}
                out.write(json.dumps(doc, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"[casefold] {src} -> {dst}: {n} documents", file=sys.stderr)


if __name__ == "__main__":
    main()
