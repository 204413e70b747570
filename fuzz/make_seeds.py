"""Write a small seed corpus for fuzz/xc_reader_fuzz into a folder (not the repo).

Each seed is two option bytes (see LLVMFuzzerTestOneInput) followed by a small
XC file: generated ones covering header/no header, CRLF, documents without
labels or features, exponents and negative values, plus the first lines of the
real datasets when they are present.

    python fuzz/make_seeds.py /tmp/xc-seeds [--data /work/shared/data]
"""
from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

VALUES = ["1", "0.5", "0.0845", "-2", "3.2e-4", "1E3", "0", "+7", "1.", ".25", "16777217", "-0.0"]


def render_doc(rng: random.Random, D: int, L: int) -> str:
    labels = sorted(rng.sample(range(L), rng.randint(0, min(3, L))))
    feats = sorted(rng.sample(range(D), rng.randint(0, min(5, D))))
    body = " ".join(f"{f}:{rng.choice(VALUES)}" for f in feats)
    if labels:
        return ",".join(map(str, labels)) + (" " + body if body else "")
    return " " + body if body or rng.random() < 0.5 else ""


def generated(rng: random.Random, k: int) -> bytes:
    n, D, L = rng.randint(1, 6), rng.randint(1, 20), rng.randint(1, 8)
    docs = [render_doc(rng, D, L) for _ in range(n)]
    lines = ([f"{n} {D} {L}"] if k % 2 == 0 else []) + docs
    nl = "\r\n" if k % 5 == 0 else "\n"
    text = nl.join(lines) + (nl if k % 3 else "")
    return text.encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--data", default=os.environ.get("XMC_DATA", "/work/shared/data"))
    ap.add_argument("--count", type=int, default=40)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    seeds = [generated(rng, k) for k in range(args.count)]
    for path in sorted(Path(args.data).glob("*/*_xc.txt")):
        with open(path, "rb") as f:
            head = [f.readline() for _ in range(4)]
        n_docs = len(head) - 1
        D_L = head[0].split()[1:]
        seeds.append(b" ".join([str(n_docs).encode()] + D_L) + b"\n" + b"".join(head[1:]))
    for i, s in enumerate(seeds):
        opts = bytes([rng.randrange(256), rng.randrange(256)])
        (out / f"seed{i:03d}").write_bytes(opts + s)
    print(f"{len(seeds)} seeds in {out}")


if __name__ == "__main__":
    main()
