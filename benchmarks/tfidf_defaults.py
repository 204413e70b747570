"""TF-IDF settings of xmc's raw-text featurizer, compared on validation data.

For each text corpus (EURLEX57K, Reuters-21578, GoEmotions) and each setting, trains xmc's default
linear model (``Pipeline``, the model of ``xmc train --model linear``) on raw text with that TF-IDF and
scores the corpus's dev split, or 20% of its training documents held out where it has none (the split
of ``compare_linear.py --split valid``). Never the test split: this is how the featurizer's defaults are
chosen. Writes benchmarks/results/tfidf_defaults.{md,json}.

    python benchmarks/tfidf_defaults.py --threads 2
    python benchmarks/tfidf_defaults.py --datasets eurlex57k --settings defaults,bigrams_min_df2
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import common  # noqa: E402
import compare_linear  # noqa: E402

SETTINGS: Dict[str, List[str]] = {
    "defaults": [],
    "bigrams": ["tfidf.ngram_range=[1,2]"],
    "bigrams_min_df2": ["tfidf.ngram_range=[1,2]", "tfidf.min_df=2"],
    "min_df2": ["tfidf.min_df=2"],
    "raw_tf": ["tfidf.sublinear_tf=false"],
    "max_df0.5": ["tfidf.max_df=0.5"],
}
METRICS = ("P@1", "P@3", "P@5", "nDCG@5")


def run_setting(fit, scored, settings: List[str], args: argparse.Namespace) -> dict:
    from xmc import metrics
    from xmc.linear import LinearParams, Pipeline

    params = LinearParams(threads=args.threads, seed=args.seed).with_settings(settings)
    start = time.perf_counter()
    model = Pipeline(params).fit(fit)
    seconds = time.perf_counter() - start
    ids, _ = model.predict_topk(scored, k=5, threads=args.threads)
    found = metrics.evaluate(model.labels(scored, unseen="keep"), ids.astype(np.int64), ks=(1, 3, 5))
    return {"fit_seconds": seconds, "features": int(model.model.n_features),
            **{k: 100.0 * float(found[k]) for k in METRICS}}


def markdown(report: dict) -> str:
    lines = ["# TF-IDF settings on validation data", "",
             f"xmc's default linear model on raw text, {report['meta']['threads']} threads; dev split, else 20% of "
             f"train held out (seed {report['meta']['seed']}). Fit time includes featurising. Written "
             f"{report['meta']['date']}.", ""]
    for name, rows in report["datasets"].items():
        lines += [f"## {name} ({rows['scored']})", "",
                  "| setting | --set | features | P@1 | P@3 | P@5 | nDCG@5 | fit s |", "|---|---|---|---|---|---|---|---|"]
        for setting, r in rows["settings"].items():
            lines.append(f"| {setting} | {' '.join(SETTINGS[setting]) or '(none)'} | {r['features']:,} | "
                         + " | ".join(f"{r[k]:.2f}" for k in METRICS) + f" | {r['fit_seconds']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("XMC_DATA") or str((HERE.parent / ".." / "shared" / "data").resolve()))
    p.add_argument("--datasets", default=",".join(compare_linear.TEXT_DATASETS))
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"any of {','.join(SETTINGS)}")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--merge", action="store_true", help="keep the datasets of an existing tfidf_defaults.json")
    args = p.parse_args(argv)
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.settings = [s for s in args.settings.split(",") if s]
    args.split = "valid"  # never the test split: compare_linear's validation split
    for d in args.datasets:
        if d not in compare_linear.TEXT_DATASETS:
            p.error(f"unknown dataset {d!r}; expected {', '.join(compare_linear.TEXT_DATASETS)}")
    for s in args.settings:
        if s not in SETTINGS:
            p.error(f"unknown setting {s!r}; expected {', '.join(SETTINGS)}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    common.set_thread_env(args.threads)
    path = Path(args.results) / "tfidf_defaults.json"
    datasets = json.loads(path.read_text())["datasets"] if args.merge and path.is_file() else {}
    report = {}
    for name in args.datasets:
        fit, scored = compare_linear.text_splits(name, args)
        what = "dev split" if compare_linear.scored_split(name, args) == "dev" else "20% of train held out"
        rows = {"scored": f"{len(fit.texts)} training docs, {len(scored.texts)} scored: {what}", "settings": {}}
        for setting in args.settings:
            rows["settings"][setting] = r = run_setting(fit, scored, SETTINGS[setting], args)
            print(f"[tfidf] {name:13s} {setting:16s} P@1 {r['P@1']:6.2f} P@5 {r['P@5']:6.2f} "
                  f"fit {r['fit_seconds']:6.1f}s", flush=True)
        datasets[name] = rows
        report = {"meta": {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "threads": args.threads, "seed": args.seed, "xmc_commit": common.git_commit(HERE.parent),
                           "settings": SETTINGS}, "datasets": datasets}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        path.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
