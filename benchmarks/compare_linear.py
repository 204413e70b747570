"""xmc's linear PLT against PECOS XR-Linear, napkinXC PLT and omikuji (Parabel).

Every system runs in its own process with the same thread count on the same
XC files (xmc with this interpreter, the peers with ``--peers-python``), and
writes its top-k predictions; this script scores them all with one evaluator
and writes benchmarks/results/compare_linear.{md,json}. Medians over
``--repeats`` runs. See benchmarks/README.md.

    python benchmarks/compare_linear.py --threads 2 --repeats 3
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import sys
from pathlib import Path
from statistics import median
from typing import Dict, List, Optional, Tuple

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
import common  # noqa: E402
from xmc import metrics as xmc_metrics  # noqa: E402  (pure Python: no native build needed)

REAL_DATASETS = {
    "delicious": ("delicious/delicious_train_xc.txt", "delicious/delicious_test_xc.txt"),
    "bibtex": ("bibtex/bibtex_train_xc.txt", "bibtex/bibtex_test_xc.txt"),
}
SYNTHETIC = "synthetic"
# name: (folder under --data, the splits it has, TF-IDF settings other than xmc's defaults)
TEXT_DATASETS = {
    "eurlex57k": ("eurlex57k", ("train", "dev", "test"), {"ngram_range": [1, 2], "min_df": 2}),
    "reuters21578": ("reuters21578", ("train", "test"), {}),
    "goemotions": ("goemotions", ("train", "dev", "test"), {}),
}
DATASETS = tuple(REAL_DATASETS) + (SYNTHETIC,) + tuple(TEXT_DATASETS)
HOLDOUT = 0.2  # of train, scored by --split valid where a corpus has no dev split
PEERS = ("pecos", "napkinxc", "napkinxc-exact", "omikuji")
ALL_SYSTEMS = ("xmc",) + PEERS
# Jain et al. (2016) propensity constants, the usual ones for these datasets.
PROP_A, PROP_B = 0.55, 1.5


def is_xmc(system: str) -> bool:
    return system == "xmc" or system.startswith("xmc ")


def variant_name(settings: List[str]) -> str:
    return "xmc " + " ".join(settings)


def system_command(name: str, args: argparse.Namespace) -> Tuple[str, List[str]]:
    """(interpreter, [script, extra args]) for one system."""
    variants = getattr(args, "variants", {})  # scale.py runs these runners with arguments of its own
    if name == "xmc" or name in variants:
        settings = variants.get(name, [])
        return args.xmc_python, [str(HERE / "run_xmc.py")] + [x for v in settings for x in ("--set", v)]
    script = {"pecos": "run_pecos.py", "napkinxc": "run_napkinxc.py",
              "napkinxc-exact": "run_napkinxc.py", "omikuji": "run_omikuji.py"}[name]
    extra = {"napkinxc": ["--search", "beam"], "napkinxc-exact": ["--search", "exact"],
             "omikuji": ["--n-trees", str(args.omikuji_trees)]}.get(name, [])
    return args.peers_python, [str(HERE / "peers" / script)] + extra


# ----- evaluation: one evaluator for every system -----------------------------------

def score(Y_true: sp.csr_matrix, ids: np.ndarray, inv_prop: np.ndarray) -> Dict[str, float]:
    """P@1/3/5 and PSP@1/3/5 in percent, by xmc.metrics for every system alike."""
    m = xmc_metrics.evaluate(Y_true, np.asarray(ids, dtype=np.int64), ks=(1, 3, 5), inv_prop=inv_prop)
    return {k: 100.0 * float(v) for k, v in m.items() if k.startswith(("P@", "PSP@"))}


# ----- data -------------------------------------------------------------------------

def synthetic_files(cache: Path, seed: int) -> Tuple[Path, Path, str]:
    """Write the 10k-label corpus of xmc.datasets.synthetic once as XC files."""
    from xmc.datasets.synthetic import SyntheticParams, make_corpus

    train = cache / f"synthetic-xmc-s{seed}_train_xc.txt"
    test = cache / f"synthetic-xmc-s{seed}_test_xc.txt"
    source = f"xmc.datasets.synthetic.make_corpus(n_labels=10000, n_train=20000, n_test=5000, n_features=50000, seed={seed})"
    if train.is_file() and test.is_file():
        return train, test, source
    cache.mkdir(parents=True, exist_ok=True)
    print(f"[compare] generating the synthetic corpus -> {cache}", flush=True)
    corpus = make_corpus(SyntheticParams(n_labels=10_000, n_features=50_000, n_train=20_000, n_test=5_000, seed=seed))
    common.write_xc(str(train), corpus.X_train, corpus.Y_train)
    common.write_xc(str(test), corpus.X_test, corpus.Y_test)
    return train, test, source


def load_text_splits(name: str, args: argparse.Namespace) -> dict:
    """{split: TextData} of a text corpus, read in place under --data."""
    from xmc.data import load_corpus
    from xmc.datasets.real import load_goemotions_splits, load_reuters21578_splits

    folder, splits, _ = TEXT_DATASETS[name]
    root = Path(args.data) / folder
    if not root.is_dir():
        raise SystemExit(f"{root}: not found; point --data (or $XMC_DATA) at the folder holding {folder}/")
    if name == "reuters21578":
        return load_reuters21578_splits(root)
    if name == "goemotions":
        return load_goemotions_splits(root)
    return {s: load_corpus(root / f"{s}.jsonl.gz") for s in splits}


def holdout_rows(n: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) row ids: a seeded HOLDOUT share of n rows held out, both in their original order."""
    order = np.random.default_rng(seed).permutation(n)
    cut = n - int(round(HOLDOUT * n))
    return np.sort(order[:cut]), np.sort(order[cut:])


def scored_split(name: str, args: argparse.Namespace) -> str:
    """What a text corpus is scored on for --split: test, else its dev split, else a held-out part of train."""
    if args.split == "test":
        return "test"
    return "dev" if "dev" in TEXT_DATASETS[name][1] else f"holdout{args.seed}"


def text_splits(name: str, args: argparse.Namespace):
    """(training TextData, scored TextData) for --split; HOLDOUT of train held out where there is no dev split."""
    from xmc.data import TextData

    data = load_text_splits(name, args)
    fit, scored = data["train"], data.get(scored_split(name, args))
    if scored is None:
        kept, held = holdout_rows(len(fit.texts), args.seed)
        fit, scored = (TextData([fit.texts[i] for i in rows], [fit.labels[i] for i in rows]) for rows in (kept, held))
    return fit, scored


def text_files(name: str, args: argparse.Namespace) -> Tuple[Path, Path, str]:
    """TF-IDF XC files of a text corpus (train and the scored split), written once into the cache."""
    from xmc.data import LabelVocab, TfidfFeaturizer, TfidfParams

    tfidf = TEXT_DATASETS[name][2]
    tag = scored_split(name, args)
    cache = Path(args.cache) / "text"
    train, scored = cache / f"{name}-{tag}_train_xc.txt", cache / f"{name}-{tag}_scored_xc.txt"
    source = (f"{args.data}/{TEXT_DATASETS[name][0]}, split {tag}, TF-IDF "
              f"{json.dumps(tfidf) if tfidf else 'xmc defaults'} fitted on the training documents")
    if train.is_file() and scored.is_file():
        return train, scored, source
    print(f"[compare] {name}: writing TF-IDF XC files once -> {cache}", flush=True)
    fit, other = text_splits(name, args)
    vocab = LabelVocab().fit(fit.labels)
    featurizer = TfidfFeaturizer(TfidfParams().with_values(tfidf)).fit(fit.texts)
    cache.mkdir(parents=True, exist_ok=True)
    common.write_xc(str(train), featurizer.transform(fit.texts), vocab.encode(fit.labels))
    common.write_xc(str(scored), featurizer.transform(other.texts), vocab.encode(other.labels, unknown="skip"))
    return train, scored, source


def holdout_files(train: Path, name: str, args: argparse.Namespace) -> Tuple[Path, Path]:
    """XC files of a HOLDOUT share of ``train`` held out, and the rest, written once into the cache."""
    cache = Path(args.cache) / "holdout"
    fit, held = cache / f"{name}-holdout{args.seed}_train_xc.txt", cache / f"{name}-holdout{args.seed}_scored_xc.txt"
    if not (fit.is_file() and held.is_file()):
        X, Y = common.read_xc(str(train))
        kept, out = holdout_rows(X.shape[0], args.seed)
        cache.mkdir(parents=True, exist_ok=True)
        common.write_xc(str(fit), X[kept], Y[kept])
        common.write_xc(str(held), X[out], Y[out])
    return fit, held


def dataset_files(name: str, args: argparse.Namespace) -> Tuple[Path, Path, str]:
    """(training file, scored file, source) of a dataset for --split."""
    if name in TEXT_DATASETS:
        return text_files(name, args)
    if name == SYNTHETIC:
        train, test, source = synthetic_files(Path(args.cache), args.seed)
    else:
        rel_train, rel_test = REAL_DATASETS[name]
        train, test, source = Path(args.data) / rel_train, Path(args.data) / rel_test, f"{args.data}/{name}"
        for p in (train, test):
            if not p.is_file():
                raise SystemExit(f"{p}: not found; point --data (or $XMC_DATA) at the folder holding {name}/")
    if args.split == "valid":
        fit, held = holdout_files(train, name, args)
        return fit, held, f"{source}, {HOLDOUT:.0%} of train held out (seed {args.seed})"
    return train, test, source


# ----- running ----------------------------------------------------------------------

def run_one(system: str, train: Path, test: Path, out: Path, args: argparse.Namespace) -> Tuple[Optional[dict], str]:
    """(the runner's result, '') or (None, why it has none)."""
    interpreter, script = system_command(system, args)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cmd = [interpreter, *script, "--train", str(train), "--test", str(test), "--threads", str(args.threads),
           "--k", str(args.k), "--beam", str(args.beam), "--out", str(out)]
    env = common.runner_env(args.threads, is_xmc(system), REPO)
    max_rss = int(args.max_rss_gib * 2**30) if getattr(args, "max_rss_gib", None) else None
    with open(out / "log.txt", "w") as log:
        code, stopped = common.run_bounded(cmd, log, env, args.timeout, max_rss)
    if stopped:
        print(f"[compare]   {system}: stopped, {stopped}", flush=True)
        return None, f"stopped {stopped}"
    if code != 0:
        tail = (out / "log.txt").read_text(errors="replace").splitlines()[-5:]
        print(f"[compare]   {system}: failed (exit {code}): " + " | ".join(tail), flush=True)
        return None, f"failed (exit {code})"
    result = json.loads((out / "result.json").read_text())
    with np.load(out / "predictions.npz", allow_pickle=False) as p:
        result["_ids"] = p["ids"]
    return result, ""


def summarize(runs: List[dict], Y_test, inv_prop) -> dict:
    per_run = []
    for r in runs:
        m = score(Y_test, r.pop("_ids"), inv_prop)
        per_run.append({**{k: v for k, v in r.items() if k != "settings"}, **m})
    keys = [k for k in per_run[0] if isinstance(per_run[0][k], (int, float))]
    med = {k: float(median(run[k] for run in per_run)) for k in keys}
    return {"median": med, "runs": per_run, "settings": runs[0].get("settings", {})}


def ratios(systems: Dict[str, dict]) -> Dict[str, dict]:
    """Each xmc row's train time and throughput against the fastest peer, its P@k against the best."""
    peers = {s: v["median"] for s, v in systems.items() if not is_xmc(s)}
    if not peers:
        return {}
    fastest_train = min(peers, key=lambda s: peers[s]["train_seconds"])
    fastest_pred = max(peers, key=lambda s: peers[s]["docs_per_second"])
    leanest = min(peers, key=lambda s: peers[s]["peak_rss_bytes"])
    best_p1 = max(peers, key=lambda s: peers[s]["P@1"])
    best_p5 = max(peers, key=lambda s: peers[s]["P@5"])
    out = {}
    for name, v in systems.items():
        if not is_xmc(name):
            continue
        x = v["median"]
        out[name] = {
            "train_time_ratio": x["train_seconds"] / peers[fastest_train]["train_seconds"],
            "fastest_train_peer": fastest_train,
            "throughput_ratio": x["docs_per_second"] / peers[fastest_pred]["docs_per_second"],
            "fastest_predict_peer": fastest_pred,
            "peak_rss_ratio": x["peak_rss_bytes"] / peers[leanest]["peak_rss_bytes"],
            "leanest_peer": leanest,
            "p1_minus_best_peer": x["P@1"] - peers[best_p1]["P@1"],
            "best_p1_peer": best_p1,
            "p5_minus_best_peer": x["P@5"] - peers[best_p5]["P@5"],
            "best_p5_peer": best_p5,
        }
    return out


# ----- reporting --------------------------------------------------------------------

def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def markdown(report: dict) -> str:
    meta = report["meta"]
    split = "validation split" if meta.get("split") == "valid" else "test split"
    lines = [f"# Linear XMC: xmc vs PECOS, napkinXC, omikuji ({split})", "",
             f"{meta['machine']}; scored by {meta['evaluator']}; medians over the runs counted in each row; "
             "'load' is the 1/5/15-min load average when that system's runs began. Written "
             f"{meta['date']}.", ""]
    for name, ds in report["datasets"].items():
        lines += [f"## {name}", "",
                  f"{ds['n_train']} train / {ds['n_test']} scored docs, {ds['n_features']} features, "
                  f"{ds['n_labels']} labels ({ds['source']}).", "",
                  "| system | P@1 | P@3 | P@5 | PSP@5 | train s | predict docs/s | peak RSS MiB | model MiB "
                  "| threads, beam, runs | load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for s, v in ds["systems"].items():
            m = v["median"]
            lines.append(f"| {s} | {m['P@1']:.2f} | {m['P@3']:.2f} | {m['P@5']:.2f} | {m['PSP@5']:.2f} | "
                         f"{m['train_seconds']:.2f} | {m['docs_per_second']:.0f} | {_mib(m['peak_rss_bytes'])} | "
                         f"{_mib(m['model_bytes'])} | {v['measured']['threads']}, {v['measured']['beam']}, "
                         f"{len(v['runs'])} | {v['measured']['load_before']} |")
        for s in ds.get("failed", []):
            lines.append(f"| {s} | failed | | | | | | | | | |")
        lines.append("")
    lines += ["## xmc against the peers", "",
              "Ratios to the fastest (training, prediction) and leanest (peak memory) peer; P@k in points against "
              "the best peer. The default row is `xmc`; the others add the options they name.", "",
              "| dataset | xmc row | train time / fastest peer | throughput / fastest peer | peak RSS / leanest peer "
              "| P@1 - best peer | P@5 - best peer |",
              "|---|---|---|---|---|---|---|"]
    for name, ds in report["datasets"].items():
        rows = ds.get("ratios") or {}
        for system, r in rows.items():
            lines.append(f"| {name} | {system} | {r['train_time_ratio']:.2f} ({r['fastest_train_peer']}) | "
                         f"{r['throughput_ratio']:.2f} ({r['fastest_predict_peer']}) | "
                         f"{r['peak_rss_ratio']:.2f} ({r['leanest_peer']}) | "
                         f"{r['p1_minus_best_peer']:+.2f} ({r['best_p1_peer']}) | "
                         f"{r['p5_minus_best_peer']:+.2f} ({r['best_p5_peer']}) |")
        if not rows:
            lines.append(f"| {name} | n/a | n/a | n/a | n/a | n/a | n/a |")
    lines += ["", "Peer settings: see benchmarks/README.md and each system's `settings` in compare_linear.json.", ""]
    return "\n".join(lines)


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _git_commit() -> str:
    return common.git_commit(REPO)


def parse_args(argv=None) -> argparse.Namespace:
    default_peers = common.default_peers_python()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("XMC_DATA") or str((REPO / ".." / "shared" / "data").resolve()),
                   help="folder with delicious/, bibtex/, eurlex57k/, reuters21578/ and goemotions/ (default $XMC_DATA, "
                        "else ../shared/data)")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"any of {','.join(DATASETS)}")
    p.add_argument("--split", choices=("test", "valid"), default="test",
                   help="score the test split, or a validation split for choosing settings (the corpus's dev "
                        f"split, else {HOLDOUT:.0%} of train held out); valid writes compare_linear_valid.*")
    p.add_argument("--variant", action="append", default=[], metavar="'FIELD=JSON ...'",
                   help="also run xmc with these --set options, as a row of its own; repeatable")
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS), help=f"any of {','.join(ALL_SYSTEMS)}")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--omikuji-trees", type=int, default=3, help="3 = Parabel's default, as omikuji's README")
    p.add_argument("--peers-python", default=default_peers,
                   help="interpreter with libpecos, napkinxc, omikuji (default $XMC_PEERS_PYTHON, else "
                        "benchmarks/.peers-venv/bin/python made by benchmarks/peers/setup_venv.sh)")
    p.add_argument("--xmc-python", default=sys.executable)
    p.add_argument("--cache", default=str(HERE / ".cache"), help="synthetic corpus and run folders")
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--merge", action="store_true",
                   help="keep datasets of an existing compare_linear.json that this run does not redo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=int, default=600, help="seconds per system run")
    p.add_argument("--max-rss-gib", type=float, default=None, help="stop a run whose resident memory passes this")
    args = p.parse_args(argv)
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.systems = [s for s in args.systems.split(",") if s]
    for d in args.datasets:
        if d not in DATASETS:
            p.error(f"unknown dataset {d!r}; expected {', '.join(DATASETS)}")
    for s in args.systems:
        if s not in ALL_SYSTEMS:
            p.error(f"unknown system {s!r}; expected {', '.join(ALL_SYSTEMS)}")
    args.variants = {variant_name(v.split()): v.split() for v in args.variant if v.split()}
    if any(s != "xmc" for s in args.systems) and not Path(args.peers_python).exists():
        p.error(f"--peers-python {args.peers_python} not found: create it with "
                f"benchmarks/peers/setup_venv.sh or set $XMC_PEERS_PYTHON")
    return args


def write_report(datasets: Dict[str, dict], args: argparse.Namespace, load_before: str, json_path: Path) -> dict:
    report = {
        "meta": {
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
            "split": args.split, "omikuji_trees": args.omikuji_trees, "peers_python": args.peers_python,
            "last_run": {"threads": args.threads, "repeats": args.repeats, "k": args.k, "beam": args.beam,
                         "load_before": load_before, "load_after": _load(), "xmc_commit": _git_commit()},
            "evaluator": "xmc.metrics.evaluate",
            "propensity": {"A": PROP_A, "B": PROP_B},
        },
        "datasets": datasets,
    }
    json_path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    json_path.with_suffix(".md").write_text(markdown(report))
    return report


def main(argv=None) -> dict:
    args = parse_args(argv)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = "compare_linear" if args.split == "test" else "compare_linear_valid"
    json_path = results_dir / f"{stem}.json"
    load_before = _load()
    datasets: Dict[str, dict] = {}
    report: dict = {}
    if args.merge and json_path.is_file():
        datasets = json.loads(json_path.read_text()).get("datasets", {})
    for name in args.datasets:
        started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        load_start = _load()
        train, test, source = dataset_files(name, args)
        X_train, Y_train = common.read_xc(str(train))
        _, Y_test = common.read_xc(str(test))
        inv_prop = xmc_metrics.inv_propensity(Y_train, A=PROP_A, B=PROP_B)
        runs: Dict[str, List[dict]] = {s: [] for s in args.systems + list(args.variants)}
        for rep in range(args.repeats):
            # Systems interleave within a repeat, so a burst of load hits them alike.
            for system in runs:
                print(f"[compare] {name} {system} run {rep + 1}/{args.repeats}", flush=True)
                out = Path(args.cache) / "runs" / name / system / str(rep)
                r, _ = run_one(system, train, test, out, args)
                if r is not None:
                    runs[system].append(r)
        measured = {"date": started, "threads": args.threads, "repeats": args.repeats, "k": args.k,
                    "beam": args.beam, "load_before": load_start, "load_after": _load(),
                    "xmc_commit": _git_commit()}
        systems = {s: {**summarize(rs, Y_test, inv_prop), "measured": measured} for s, rs in runs.items() if rs}
        failed = [s for s, rs in runs.items() if not rs]
        old = datasets.get(name, {}) if args.merge else {}
        if old.get("source") == source and old.get("n_test") == int(Y_test.shape[0]):
            # --merge: keep the systems this run did not redo, when the data are the same
            systems = {**{k: v for k, v in old.get("systems", {}).items() if k not in runs}, **systems}
            failed = sorted(set(failed) | (set(old.get("failed", [])) - set(runs)))
        order = list(ALL_SYSTEMS) + sorted(k for k in systems if k not in ALL_SYSTEMS)
        systems = {k: systems[k] for k in order if k in systems}
        entry = {
            "source": source, "train_file": str(train), "test_file": str(test),
            "n_train": int(Y_train.shape[0]), "n_test": int(Y_test.shape[0]),
            "n_features": int(X_train.shape[1]), "n_labels": int(Y_train.shape[1]),
            "systems": systems, "failed": failed,
            "ratios": ratios(systems),
        }
        datasets[name] = entry
        for s in runs:
            if s not in systems:
                continue
            m = systems[s]["median"]
            print(f"[compare]   {s:15s} P@1 {m['P@1']:6.2f} P@5 {m['P@5']:6.2f} PSP@5 {m['PSP@5']:6.2f} "
                  f"train {m['train_seconds']:7.2f}s  {m['docs_per_second']:9.0f} docs/s", flush=True)
        report = write_report(datasets, args, load_before, json_path)  # after each dataset: a long run keeps it
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
