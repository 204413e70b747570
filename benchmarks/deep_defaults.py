"""The deep models as a new user meets them: `xmc train` with no option beyond the data, --valid,
--model-dir and --threads, against the linear PLT trained the same way, on Reuters-21578, GoEmotions
and EURLEX57K. Test P@1 / P@5, training time and training documents per second (the median of the
epochs' rates the training log prints).

Each (corpus, model) is one `xmc train` process; its row is added to
benchmarks/results/deep_defaults.{json,md} as soon as it ends, so a run can be stopped and
continued: rows already there are skipped (--rerun trains them again).

Reuters-21578 has no dev split: its ModApte training documents are split 90/10 (seeded) into
train and dev files once, and every model of the table reads the same ones.

    python benchmarks/deep_defaults.py --corpora reuters21578,goemotions --threads 2
    python benchmarks/deep_defaults.py --corpora eurlex57k --models attentionxml
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import common  # noqa: E402

CORPORA = ("reuters21578", "goemotions", "eurlex57k")
MODELS = ("linear", "attentionxml", "lightattention", "ldgn")
EPOCH_RATE = re.compile(r"epoch \d+: .*\(epoch [\d.]+ s at (\d+) docs/s")


def corpus_files(name: str, data: Path, cache: Path) -> Dict[str, Path]:
    """train / dev / test files of ``name``: EURLEX57K's in place, the others converted once into ``cache``."""
    if name == "eurlex57k":
        return {s: data / "eurlex57k" / f"{s}.jsonl.gz" for s in ("train", "dev", "test")}
    folder = cache / name
    files = {s: folder / f"{s}.jsonl" for s in ("train", "dev", "test")}
    if all(f.is_file() for f in files.values()):
        return files
    converted = folder / "converted"
    subprocess.run([sys.executable, "-m", "xmc", "convert-dataset", name, "--src", str(data / name),
                    "--out", str(converted), "--quiet"], check=True, env=common.runner_env(1, True, REPO))
    if name == "reuters21578":  # ModApte has no dev split: 10% of train, seeded
        lines = (converted / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        order = list(range(len(lines)))
        random.Random(0).shuffle(order)
        held = set(order[:len(lines) // 10])
        files["dev"].write_text("".join(lines[i] for i in sorted(held)), encoding="utf-8")
        files["train"].write_text("".join(lines[i] for i in range(len(lines)) if i not in held), encoding="utf-8")
    else:
        for s in ("train", "dev"):
            os.replace(converted / f"{s}.jsonl", files[s])
    os.replace(converted / "test.jsonl", files["test"])
    return files


def train_command(model: str, files: Dict[str, Path], model_dir: Path, threads: int) -> List[str]:
    return [sys.executable, "-m", "xmc", "train", "--model", model, "--train", str(files["train"]),
            "--valid", str(files["dev"]), "--model-dir", str(model_dir), "--threads", str(threads), "--overwrite"]


def test_figures(model_dir: Path, test: Path) -> Dict[str, float]:
    """Test P@1/3/5 in percent, labels unseen in training counted as misses (as `xmc evaluate` does)."""
    from xmc.data import load_corpus
    from xmc.metrics import evaluate
    from xmc.registry import load_model

    model = load_model(model_dir)
    corpus = load_corpus(test, **model.reader_kwargs())
    start = time.perf_counter()
    ids, _ = model.predict_topk(corpus, k=5)
    seconds = time.perf_counter() - start
    figures = evaluate(model.labels(corpus, unseen="keep"), ids, ks=(1, 3, 5))
    out = {k: round(100 * figures[k], 2) for k in ("P@1", "P@3", "P@5")}
    out["predict_docs_per_s"] = round(ids.shape[0] / seconds, 1)
    return out


def run_one(corpus: str, model: str, files: Dict[str, Path], args) -> dict:
    model_dir = args.cache / "models" / corpus / model
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = model_dir.parent / f"{model}.log"
    cmd = train_command(model, files, model_dir, args.threads)
    print(f"[deep_defaults] {corpus} {model}: {' '.join(cmd[1:])}", flush=True)
    with open(log_path, "w") as log, common.Stopwatch() as clock:
        code, stopped = common.run_bounded(cmd, log, common.runner_env(args.threads, True, REPO), args.timeout)
    log_text = log_path.read_text(errors="replace")
    if stopped or code != 0:
        raise SystemExit(f"[deep_defaults] {corpus} {model}: {stopped or f'exit {code}'}; see {log_path}")
    rates = [int(m.group(1)) for m in EPOCH_RATE.finditer(log_text)]
    n_train = sum(1 for _ in _lines(files["train"]))
    row = {"corpus": corpus, "model": model, "train_s": round(clock.seconds, 1), "n_train": n_train,
           "epochs": len(rates), "train_docs_per_s": statistics.median(rates) if rates else None,
           "prior_warning": "only the label prior so far" in log_text,
           **test_figures(model_dir, files["test"]), "command": "xmc " + " ".join(cmd[3:])}
    print(f"[deep_defaults]   P@1 {row['P@1']:.2f} P@5 {row['P@5']:.2f}, {row['train_s']:.0f} s, "
          f"{row['train_docs_per_s']} training docs/s", flush=True)
    return row


def _lines(path: Path):
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        yield from f


def markdown(rows: List[dict], meta: dict) -> str:
    lines = ["# Deep models with their defaults against the linear PLT", "",
             f"{meta['machine']}, {meta['threads']} threads; rows added by separate runs of "
             "`benchmarks/deep_defaults.py` (commit of each row in the JSON). Each model trained by "
             "`xmc train --model M --train T --valid D --model-dir DIR --threads N`, nothing else; test split. "
             "Percentages; gap = P@1 minus the linear PLT's on the same corpus.", "",
             "| corpus | model | P@1 | P@5 | gap P@1 | train s | epochs | training docs/s | predict docs/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    linear = {r["corpus"]: r["P@1"] for r in rows if r["model"] == "linear"}
    for r in sorted(rows, key=lambda r: (CORPORA.index(r["corpus"]), MODELS.index(r["model"]))):
        gap = f"{r['P@1'] - linear[r['corpus']]:+.2f}" if r["corpus"] in linear and r["model"] != "linear" else ""
        rate = f"{r['train_docs_per_s']:,.0f}" if r["train_docs_per_s"] else ""
        lines.append(f"| {r['corpus']} | {r['model']} | {r['P@1']:.2f} | {r['P@5']:.2f} | {gap} | "
                     f"{r['train_s']:.0f} | {r['epochs'] or ''} | {rate} | {r['predict_docs_per_s']:,.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path(os.environ.get("XMC_DATA", REPO.parent / "shared" / "data")))
    p.add_argument("--corpora", default=",".join(CORPORA), help=f"any of {','.join(CORPORA)}")
    p.add_argument("--models", default=",".join(MODELS), help=f"any of {','.join(MODELS)}")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rerun", action="store_true", help="train rows that are already in the results again")
    p.add_argument("--cache", type=Path, default=HERE / ".cache" / "deep_defaults")
    p.add_argument("--results", type=Path, default=HERE / "results")
    p.add_argument("--timeout", type=int, default=4 * 3600, help="seconds per training")
    args = p.parse_args(argv)
    corpora = [c for c in args.corpora.split(",") if c]
    models = [m for m in args.models.split(",") if m]
    for name, given, known in (("corpora", corpora, CORPORA), ("models", models, MODELS)):
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise SystemExit(f"--{name}: unknown {', '.join(unknown)}; expected any of {', '.join(known)}")
    out_json = args.results / "deep_defaults.json"
    rows = json.loads(out_json.read_text()) if out_json.is_file() else []
    import platform

    meta = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "threads": args.threads}
    commit = common.git_commit(REPO)  # the code the trainings start from, not what HEAD is when they end
    for corpus in corpora:
        files = corpus_files(corpus, args.data, args.cache)
        for model in models:
            if not args.rerun and any(r["corpus"] == corpus and r["model"] == model for r in rows):
                continue
            row = run_one(corpus, model, files, args)
            row["commit"] = commit
            row["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            # Read again: another run of this script (another corpus) may have added rows meanwhile.
            rows = json.loads(out_json.read_text()) if out_json.is_file() else []
            rows = [r for r in rows if not (r["corpus"] == corpus and r["model"] == model)] + [row]
            args.results.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps(rows, indent=1) + "\n")
            (args.results / "deep_defaults.md").write_text(markdown(rows, meta))


if __name__ == "__main__":
    main()
