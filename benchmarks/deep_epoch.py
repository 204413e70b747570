"""One training epoch of a deep model: seconds, documents/s, validation time and peak memory, on each device
asked for, with the fused kernels (``backend="auto"``) and with the reference ops (``XMC_OPS_REFERENCE=1``).

Every run is its own process, with the same seed, so the same batches in the same order. The word vectors
are random (skip-gram's minutes are not the epoch's) and, by default, every label sits on one flat level,
the label-wise attention over all labels of the EURLEX57K paper's LWAN. Peak memory is the resident-set
high-water mark above the memory held once the data is read (CPU), or torch's peak allocation (CUDA).
Writes OUT/deep_epoch.{json,md}.

    python benchmarks/deep_epoch.py --data ../shared/data/eurlex57k --devices cpu --threads 2 --out benchmarks/results
    python benchmarks/deep_epoch.py --quick --devices cpu --out /tmp/epoch       # a small generated corpus
    python benchmarks/deep_epoch.py --data ../shared/data/eurlex57k --devices cuda,cpu --out gpu_check/
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

EPOCH_LINE = re.compile(r" epoch 1: .*P@1 (?P<p1>[\d.]+).*\(epoch (?P<train_s>[\d.]+) s at (?P<docs_per_s>\d+) "
                        r"docs/s, validation (?P<valid_s>[\d.]+) s")
OPS = ("fused", "reference")


def corpus(args: argparse.Namespace):
    from xmc.data import TextData, load_corpus
    from xmc.datasets.synthetic import SyntheticParams, make_text_corpus

    if args.quick:
        c = make_text_corpus(SyntheticParams(n_labels=300, n_train=2000, n_test=300, n_features=2000, seed=1))
        return TextData(c.train_texts, c.train_labels), TextData(c.test_texts, c.test_labels)
    train = load_corpus(args.data / "train.jsonl.gz")
    valid = load_corpus(args.data / "dev.jsonl.gz")
    return train.subset(range(min(args.docs, len(train)))), valid.subset(range(min(args.valid_docs, len(valid))))


def worker(args: argparse.Namespace) -> None:
    import torch

    from xmc.registry import get
    from xmc.utils.resources import peak_rss_bytes

    train, valid = corpus(args)
    entry = get(args.model)
    params = entry.params_class()()
    values = {"training.epochs": 1, "training.seed": args.seed, "training.threads": args.threads,
              "training.device": args.device, "embedding.source": "random", "embedding.threads": 1}
    if hasattr(params, "flat_max_labels"):
        values["flat_max_labels"] = 1 << 20  # every label on one level
    params = params.with_values(values).with_settings(args.set)
    baseline = peak_rss_bytes()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    lines: List[str] = []
    entry.model_class()(params).fit(train, valid=valid, progress=False, log=lines.append)
    epochs = [m.groupdict() for m in map(EPOCH_LINE.search, lines) if m]
    if not epochs:
        raise SystemExit("no epoch line in the training log:\n" + "\n".join(lines))
    peak = (torch.cuda.max_memory_allocated() if args.device.startswith("cuda") else peak_rss_bytes() - baseline)
    # A model on a tree trains one network per level: its epoch is the sum over the levels.
    print(json.dumps({"epoch_s": sum(float(e["train_s"]) for e in epochs),
                      "valid_s": sum(float(e["valid_s"]) for e in epochs),
                      "docs_per_s": len(train) / max(sum(float(e["train_s"]) for e in epochs), 1e-9),
                      "levels": len(epochs), "valid_p1": float(epochs[-1]["p1"]), "peak_bytes": int(peak),
                      "n_train": len(train), "n_valid": len(valid)}))


def run(args: argparse.Namespace, device: str, ops: str) -> Dict:
    cmd = [sys.executable, __file__, "--worker", "--device", device, "--model", args.model, "--threads",
           str(args.threads), "--seed", str(args.seed), "--docs", str(args.docs), "--valid-docs",
           str(args.valid_docs), "--data", str(args.data)] + (["--quick"] if args.quick else [])
    for setting in args.set:
        cmd += ["--set", setting]
    env = {**os.environ, "XMC_OPS_REFERENCE": "1" if ops == "reference" else "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{device}/{ops} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return {"device": device, "ops": ops, **json.loads(proc.stdout.strip().splitlines()[-1])}


def table(results: List[Dict], args: argparse.Namespace) -> str:
    what = "a generated corpus (--quick)" if args.quick else f"{args.data.name}"
    first = results[0]
    lines = [f"# One training epoch of {args.model} on {what}", "",
             f"{first['n_train']:,} training and {first['n_valid']:,} validation documents, {args.threads} CPU "
             f"threads, seed {args.seed}, random word vectors; settings {' '.join(args.set) or '(defaults)'}.",
             "Fused: the kernels (`backend=\"auto\"`); reference: `XMC_OPS_REFERENCE=1`. Ratios are against the "
             "reference ops on the same device.", "",
             "| device | ops | epoch (s) | docs/s | validation (s) | peak memory (MiB) | valid P@1 after 1 epoch "
             "| epoch time / reference | peak / reference |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ref = next((x for x in results if x["device"] == r["device"] and x["ops"] == "reference"), r)
        lines.append(f"| {r['device']} | {r['ops']} | {r['epoch_s']:.1f} | {r['docs_per_s']:.0f} | {r['valid_s']:.1f} "
                     f"| {r['peak_bytes'] / 2**20:.0f} | {r['valid_p1']:.2f} | {r['epoch_s'] / ref['epoch_s']:.2f} "
                     f"| {r['peak_bytes'] / max(ref['peak_bytes'], 1):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("XMC_DATA", ROOT.parent / "shared" / "data"))
                    / "eurlex57k", help="a folder with train.jsonl.gz and dev.jsonl.gz")
    ap.add_argument("--quick", action="store_true", help="a small generated corpus instead of --data")
    ap.add_argument("--model", default="attentionxml")
    ap.add_argument("--devices", default="cpu", help="comma list: cpu, cuda")
    ap.add_argument("--ops", default="fused,reference", help="comma list: fused, reference")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", type=int, default=45000, help="training documents (the first ones)")
    ap.add_argument("--valid-docs", type=int, default=6000)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="as xmc train --set")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    results = []
    for device in args.devices.split(","):
        for ops in args.ops.split(","):
            if ops not in OPS:
                raise SystemExit(f"--ops: expected fused and/or reference, found {ops!r}")
            results.append(run(args, device, ops))
            print(json.dumps(results[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "deep_epoch_quick" if args.quick else "deep_epoch"
    (args.out / f"{name}.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "results": results}, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(table(results, args))
    print(table(results, args))


if __name__ == "__main__":
    main()
