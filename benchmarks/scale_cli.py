"""The scale acceptance runs through the command line: `xmc build-tree`, `xmc train` and `xmc predict`.

Two measurements, each step a fresh `xmc` process whose own peak RSS is read from
``os.wait4`` (so nothing of this driver is counted):

* ``--labels L`` (default 3,000,000): the corpus of ``benchmarks/scale.py`` for L labels
  (generated once, shared with it), then build-tree, train (linear PLT on that tree) and
  predict on its 10,000 test documents, with wall time and peak memory of each step.
* ``--predict-docs N`` (default 2,000,000): a 100,000-label model trained on the scale
  corpus of that size, then `xmc predict` over N generated documents of the same
  generator, beside the same model predicting 10,000 documents: the streaming predictor's
  peak memory beyond what loading the model takes should not grow with N.

Writes ``benchmarks/results/scale_cli.{json,md}``.

    python benchmarks/scale_cli.py --threads 2
    python benchmarks/scale_cli.py --labels 100000 --predict-docs 0     # the 3M steps at a small size
    python benchmarks/scale_cli.py --labels 0 --merge                   # redo the streaming run only
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import scale  # noqa: E402  (its corpus sizes and cache)

STREAM_MODEL_LABELS = 100_000


def run_step(name: str, cmd: List[str], log_path: Path) -> Dict[str, float]:
    """Run one CLI step; its wall time and its own peak RSS (from wait4, not the process tree's maximum)."""
    print(f"[scale-cli] {name}: {' '.join(cmd)}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log_path, "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-5:]
        raise SystemExit(f"[scale-cli] {name} failed (exit {proc.returncode}); {log_path}:\n" + "\n".join(tail))
    peak = usage.ru_maxrss * 1024  # KiB on Linux
    last = log_path.read_text(errors="replace").strip().splitlines()[-1]
    print(f"[scale-cli]   {seconds:.1f} s, peak {peak / 2**30:.2f} GiB | {last[-160:]}", flush=True)
    return {"seconds": seconds, "peak_rss_bytes": peak, "last_line": last}


def measured() -> str:
    """When and at which commit a part was measured (parts of one report may come from different runs)."""
    return f"{scale.utc_stamp()}, xmc {scale.compare_linear._git_commit()}"


def xmc(*args: str, python: str) -> List[str]:
    return [python, "-m", "xmc", *args]


def cli_pipeline(n_labels: int, args: argparse.Namespace) -> dict:
    train, test, size = scale.corpus_files(n_labels, args)
    work = Path(args.cache) / "runs" / f"scale-cli-L{n_labels}"
    work.mkdir(parents=True, exist_ok=True)
    t = str(args.threads)
    steps = {
        "build-tree": run_step("build-tree", xmc("build-tree", "--train", str(train), "--out", str(work / "tree"),
                                                 "--threads", t, python=args.xmc_python), work / "build-tree.log"),
        "train": run_step("train", xmc("train", "--train", str(train), "--tree", str(work / "tree"), "--model-dir",
                                       str(work / "model"), "--threads", t, python=args.xmc_python),
                          work / "train.log"),
        "predict": run_step("predict", xmc("predict", "--model-dir", str(work / "model"), "--input", str(test),
                                           "--out", str(work / "pred.txt"), "--threads", t, python=args.xmc_python),
                            work / "predict.log"),
    }
    steps["predict"]["docs_per_second"] = size["n_test"] / steps["predict"]["seconds"]
    return {"n_labels": n_labels, **size, "model_bytes": scale.common.dir_bytes(str(work / "model")), "steps": steps,
            "measured": measured()}


def streaming_predict(n_docs: int, args: argparse.Namespace) -> dict:
    """The 100k-label scale model predicting 10,000 and then n_docs documents of the same generator."""
    model = cli_pipeline(STREAM_MODEL_LABELS, args)
    size = scale.corpus_size(STREAM_MODEL_LABELS)
    folder = Path(args.cache) / f"stream-L{STREAM_MODEL_LABELS}-d{n_docs}-s{args.seed}"
    big = folder / "test.txt"
    if not big.is_file():
        # Same labels, features and seed as the model's corpus; only the test split is large.
        run_step("generate", xmc("generate", "--out", str(folder), "--labels", str(STREAM_MODEL_LABELS),
                                 "--train-docs", str(size["n_train"]), "--test-docs", str(n_docs), "--features",
                                 str(size["n_features"]), "--seed", str(args.seed), python=args.xmc_python),
                 Path(args.cache) / f"stream-generate-{n_docs}.log")
    work = Path(args.cache) / "runs" / f"scale-cli-L{STREAM_MODEL_LABELS}"
    big_run = run_step("predict-big", xmc("predict", "--model-dir", str(work / "model"), "--input", str(big), "--out",
                                          str(work / "pred-big.txt"), "--threads", str(args.threads),
                                          python=args.xmc_python), work / "predict-big.log")
    small = model["steps"]["predict"]
    return {"n_labels": STREAM_MODEL_LABELS, "n_docs": n_docs, "input_bytes": big.stat().st_size,
            "model_bytes": model["model_bytes"], "small": {"n_docs": size["n_test"], **small},
            "big": {**big_run, "docs_per_second": n_docs / big_run["seconds"]},
            "growth_bytes": big_run["peak_rss_bytes"] - small["peak_rss_bytes"],
            "beyond_model_bytes": big_run["peak_rss_bytes"] - model["model_bytes"], "measured": measured()}


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = ["# Scale through the command line", "",
             f"{meta['machine']}, --threads {meta['threads']}; xmc {meta['xmc_commit']}; written {meta['date']}. "
             "Each step is a fresh `xmc` process; peak is that process's own maximum RSS; times include reading "
             "the input files.", ""]
    p = report.get("pipeline")
    if p:
        lines += [f"## {p['n_labels']:,} labels", "",
                  f"Corpus of benchmarks/scale.py: {p['n_train']:,} training documents, {p['n_test']:,} test "
                  f"documents, {p['n_features']:,} features. Model directory {_gib(p['model_bytes'])} GiB. Measured "
                  f"{p.get('measured', '')}.", "",
                  "| step | wall s | peak GiB | CLI's last line |", "|---|---|---|---|"]
        for name, s in p["steps"].items():
            lines.append(f"| xmc {name} | {s['seconds']:.1f} | {_gib(s['peak_rss_bytes'])} | {s['last_line'][-120:]} |")
        lines.append("")
    s = report.get("stream")
    if s:
        lines += [f"## Streaming prediction over {s['n_docs']:,} documents", "",
                  f"Model: {s['n_labels']:,} labels, directory {_gib(s['model_bytes'])} GiB. Input "
                  f"{_gib(s['input_bytes'])} GiB of XC text. Measured {s.get('measured', '')}.", "",
                  "| documents | wall s | docs/s | peak GiB |", "|---|---|---|---|",
                  f"| {s['small']['n_docs']:,} | {s['small']['seconds']:.1f} | {s['small']['docs_per_second']:.0f} | "
                  f"{_gib(s['small']['peak_rss_bytes'])} |",
                  f"| {s['n_docs']:,} | {s['big']['seconds']:.1f} | {s['big']['docs_per_second']:.0f} | "
                  f"{_gib(s['big']['peak_rss_bytes'])} |", "",
                  f"Peak beyond the model directory's size: {_gib(s['beyond_model_bytes'])} GiB; growth from "
                  f"{s['small']['n_docs']:,} to {s['n_docs']:,} documents: {s['growth_bytes'] / 2**20:.0f} MiB.", ""]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--labels", type=int, default=3_000_000, help="label count of the CLI pipeline (0 = skip)")
    p.add_argument("--predict-docs", type=int, default=2_000_000,
                   help="documents of the streaming-prediction run (0 = skip)")
    scale.add_corpus_args(p)
    p.add_argument("--merge", action="store_true",
                   help="keep the part of an existing results/scale_cli.json that this run skips")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    report: dict = {"meta": {"date": scale.utc_stamp(),
                             "machine": scale.machine_description(), "threads": args.threads,
                             "xmc_commit": scale.compare_linear._git_commit()}}
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    if args.merge and (results / "scale_cli.json").is_file():  # keep the part this run skips
        old = json.loads((results / "scale_cli.json").read_text())
        for part in ("pipeline", "stream"):
            if part in old:
                old[part].setdefault("measured", f"{old['meta']['date']}, xmc {old['meta']['xmc_commit']}")
                report[part] = old[part]
    if args.labels:
        report["pipeline"] = cli_pipeline(args.labels, args)
    if args.predict_docs:
        report["stream"] = streaming_predict(args.predict_docs, args)
    (results / "scale_cli.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (results / "scale_cli.md").write_text(md)
    print(md)
    return report


if __name__ == "__main__":
    main()
