"""EURLEX57K (4,271 EUROVOC labels, 45,000 / 6,000 / 6,000 EU laws): xmc's linear PLT and its deep model
against PECOS, napkinXC, omikuji and fastText, in one run.

Every system trains on the official train split in its own process with the same thread count
(xmc with this interpreter, the peers with ``--peers-python``), predicts the top 10 labels of the dev
and test documents, and is scored here by one evaluator on test:

- P@1/3/5, nDCG@3/5, PSP@1/3/5 (Jain et al.'s propensities, A = 0.55, B = 1.5), RP@5 (precision at 5
  over min(5, true labels): the EURLEX57K paper's metric); test labels never seen in training count as
  misses, as in the paper;
- micro-F1 of the label sets {top-10 labels scoring at least t}, t chosen on dev for each system;
- training time (everything the system needs from its inputs), prediction documents per second (the
  test set, model loaded), peak resident memory of the process.

Inputs: PECOS, napkinXC, omikuji and xmc's linear PLT read the same uni+bigram sublinear TF-IDF
(xmc.data.TfidfFeaturizer, ngram_range (1, 2), min_df 2, fitted on train, written once as XC files,
untimed); fastText reads the texts (lower-cased words); xmc's deep model reads the raw texts and fits
its own TF-IDF, linear PLT, vocabulary and word vectors inside its timed training
(benchmarks/run_xmc_deep.py). Each peer runs the way its documentation says is fastest (see each
runner's docstring). Writes benchmarks/results/eurlex57k.{md,json,png}.

    bash benchmarks/peers/setup_venv.sh                      # once: PECOS, napkinXC, omikuji, fastText
    python benchmarks/eurlex57k.py --threads 2               # everything (about 80 minutes on 2 cores)
    python benchmarks/eurlex57k.py --systems pecos,xmc-linear --repeats 3
    python benchmarks/eurlex57k.py --systems xmc-linear,xmc-ldgn --graphs both,static,dynamic,none \
        --seeds 0,1 --name eurlex57k_ablation --keep-finished --reuse   # LDGN's ablation, 2 seeds each

The ablation's eight LDGN runs take longer than one session: ``--keep-finished`` reads the runs that
finished earlier with the same command from the cache, and ``--reuse`` trains the candidate model and
its out-of-fold proposals once per seed (their recorded time is still counted in every row).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import sys
from pathlib import Path
from statistics import median
from typing import Dict, List, Tuple

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
import common  # noqa: E402

PEERS = ("pecos", "napkinxc", "omikuji", "fasttext")
XMC = ("xmc-linear", "xmc-ldgn")
ALL_SYSTEMS = PEERS + XMC
PROP_A, PROP_B = 0.55, 1.5
K = 10  # labels predicted per document: P@k reads the first 5, the label sets up to 10
SPLITS = ("train", "dev", "test")
TFIDF = {"ngram_range": (1, 2), "min_df": 2, "sublinear_tf": True}
# what run_xmc_deep.py writes: the model as trained, LDGN alone, its candidate model alone
DEEP_FOLDERS = ("blend", "alone", "candidates")


# ----- data ---------------------------------------------------------------------------

def prepare(data: Path, cache: Path) -> Dict[str, object]:
    """Read the three splits, fit the label vocabulary and TF-IDF on train, write XC and fastText files
    under ``cache`` (once), and return the truth matrices the scores use."""
    from xmc.data import LabelVocab, TfidfFeaturizer, TfidfParams, load_corpus

    corpora = {s: load_corpus(data / f"{s}.jsonl.gz") for s in SPLITS}
    vocab = LabelVocab().fit(corpora["train"].labels)
    files = {s: (cache / f"{s}_xc.txt", cache / f"{s}_fasttext.txt") for s in SPLITS}
    if not all(p.is_file() for pair in files.values() for p in pair):
        cache.mkdir(parents=True, exist_ok=True)
        print("[eurlex57k] writing the TF-IDF (XC) and fastText files once ->", cache, flush=True)
        featurizer = TfidfFeaturizer(TfidfParams(**TFIDF)).fit(corpora["train"].texts)
        for s in SPLITS:
            c = corpora[s]
            Y = vocab.encode(c.labels, unknown="skip")
            common.write_xc(str(files[s][0]), featurizer.transform(c.texts), Y)
            write_fasttext(files[s][1], c.texts, [Y.indices[Y.indptr[i]:Y.indptr[i + 1]] for i in range(Y.shape[0])])
    truth = {s: truth_matrix(corpora[s].labels, vocab) for s in ("dev", "test")}
    Y_train = vocab.encode(corpora["train"].labels)
    return {"files": files, "truth": truth, "vocab": vocab, "Y_train": Y_train,
            "counts": {s: len(corpora[s]) for s in SPLITS}}


WORD = re.compile(r"\w+")


def write_fasttext(path: Path, texts: List[str], label_ids: List[List[int]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for text, ids in zip(texts, label_ids):
            labels = " ".join(f"__label__{i}" for i in ids)
            f.write(f"{labels} {' '.join(WORD.findall(text.lower()))}\n")


def truth_matrix(label_lists, vocab) -> sp.csr_matrix:
    """The true labels in the training vocabulary's ids, and every label the training data never had in a
    column of its own past those: no system predicts it, so it counts as a miss (RP@k, nDCG, recall)."""
    n = len(vocab)
    unseen: Dict[str, int] = {}
    rows, cols = [], []
    for r, labels in enumerate(label_lists):
        for label in set(labels):
            cols.append(vocab.id_of(label) if label in vocab else n + unseen.setdefault(label, len(unseen)))
            rows.append(r)
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                         shape=(len(label_lists), n + len(unseen)))


# ----- scoring ------------------------------------------------------------------------

def ranking_metrics(Y: sp.csr_matrix, ids: np.ndarray, inv_prop: np.ndarray) -> Dict[str, float]:
    from xmc import metrics

    ids = np.asarray(ids[:, :5], dtype=np.int64)
    m = metrics.evaluate(Y, ids, ks=(1, 3, 5), inv_prop=inv_prop)
    out = {k: 100.0 * v for k, v in m.items() if k in ("P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "PSP@1",
                                                       "PSP@3", "PSP@5")}
    out["RP@5"] = 100.0 * metrics.r_precision_at_k(Y, ids, k=5)
    return out


def hits(Y: sp.csr_matrix, ids: np.ndarray) -> np.ndarray:
    """(n, k) bool: ids[i, j] is a true label of row i."""
    out = np.zeros(ids.shape, dtype=bool)
    for i in range(ids.shape[0]):
        true = Y.indices[Y.indptr[i]:Y.indptr[i + 1]]
        out[i] = np.isin(ids[i], true) & (ids[i] >= 0)
    return out


def best_threshold(Y: sp.csr_matrix, ids: np.ndarray, scores: np.ndarray) -> float:
    """The score cut t maximising the micro-F1 of {predicted labels scoring >= t} on (Y, ids, scores)."""
    valid = ids >= 0
    s, h = scores[valid], hits(Y, ids)[valid]
    order = np.argsort(-s, kind="stable")
    s, h = s[order], h[order]
    tp = np.cumsum(h)
    predicted = np.arange(1, s.size + 1)
    f1 = 2 * tp / (predicted + Y.nnz)
    # Cut only between distinct scores: every label at the threshold's score is in the set.
    last_of_score = np.r_[s[1:] != s[:-1], True]
    best = int(np.argmax(np.where(last_of_score, f1, -1.0)))
    return float(s[best])


def micro_f1(Y: sp.csr_matrix, ids: np.ndarray, scores: np.ndarray, t: float) -> float:
    chosen = (ids >= 0) & (scores >= t)
    tp = int((hits(Y, ids) & chosen).sum())
    return 100.0 * 2 * tp / max(int(chosen.sum()) + Y.nnz, 1)


# ----- running ------------------------------------------------------------------------

def command(system: str, prep: Dict[str, object], args: argparse.Namespace, out: Path,
            variant: Tuple[str, int]) -> List[str]:
    files = prep["files"]
    if system == "xmc-ldgn":
        graph, seed = variant
        reuse = ["--reuse", str(args.cache / "reuse")] if args.reuse else []
        return [args.xmc_python, str(HERE / "run_xmc_deep.py"), "--data", str(args.data), "--out", str(out),
                "--threads", str(args.threads), "--k", str(K), "--seed", str(seed), "--set", f'graph="{graph}"'] + \
            [x for s in args.deep_set for x in ("--set", s)] + \
            [x for s in args.linear_set for x in ("--linear-set", s)] + reuse
    col = 1 if system == "fasttext" else 0
    script = {"xmc-linear": HERE / "run_xmc.py", "pecos": HERE / "peers" / "run_pecos.py",
              "napkinxc": HERE / "peers" / "run_napkinxc.py", "omikuji": HERE / "peers" / "run_omikuji.py",
              "fasttext": HERE / "peers" / "run_fasttext.py"}[system]
    interpreter = args.xmc_python if system.startswith("xmc") else args.peers_python
    extra = {"omikuji": ["--n-trees", "3"], "napkinxc": ["--search", "beam"]}.get(system, [])
    return [interpreter, str(script), "--train", str(files["train"][col]), "--test", str(files["test"][col]),
            "--dev", str(files["dev"][col]), "--threads", str(args.threads), "--k", str(K), "--beam",
            str(args.beam), "--out", str(out)] + extra


def run_system(system: str, prep, args, out: Path, variant: Tuple[str, int], suffix: str) -> Dict[str, dict]:
    """{row name: runner result with its dev and test predictions}; empty when the run failed. ``variant``:
    LDGN's (graph, seed) for xmc-ldgn, named in its rows by ``suffix``."""
    cmd = command(system, prep, args, out, variant)
    finished = out / "finished.json"
    if args.keep_finished and finished.is_file() and json.loads(finished.read_text()).get("command") == cmd:
        print(f"[eurlex57k]   {system}: finished earlier with this command, read from {out}", flush=True)
    else:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        env = common.runner_env(args.threads, system.startswith("xmc"), REPO)
        with open(out / "log.txt", "w") as log:
            code, stopped = common.run_bounded(cmd, log, env, args.timeout)
        if stopped or code != 0:
            tail = (out / "log.txt").read_text(errors="replace").splitlines()[-5:]
            print(f"[eurlex57k]   {system}: {stopped or f'failed (exit {code})'}: " + " | ".join(tail), flush=True)
            return {}
        finished.write_text(json.dumps({"command": cmd, "commit": common.git_commit(REPO)}))
    folders = {k: out / k for k in DEEP_FOLDERS} if system == "xmc-ldgn" else {
        {"xmc-linear": "xmc linear PLT"}.get(system, system): out}
    rows = {}
    for name, folder in folders.items():
        result = json.loads((folder / "result.json").read_text())
        if system == "xmc-ldgn":  # the deep runner names its rows (blend or stacked)
            name = result["settings"]["system"] + suffix
        result["_pred"] = {s: load_predictions(folder / f, prep["vocab"], folder)
                           for s, f in (("test", "predictions.npz"), ("dev", "dev_predictions.npz"))}
        rows[name] = result
    return rows


def load_predictions(path: Path, vocab, folder: Path) -> Tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as p:
        ids, scores = p["ids"].astype(np.int64), p["scores"].astype(np.float64)
    names = folder / "label_names.npy"
    if names.is_file():  # ids of the runner's own label vocabulary: map them by name
        own = np.load(names, allow_pickle=False)
        mapping = np.array([vocab.id_of(str(n)) if str(n) in vocab else -1 for n in own] + [-1], dtype=np.int64)
        ids = mapping[np.where(ids >= 0, ids, len(own))]
    scores = np.where(ids >= 0, scores, -np.inf)
    return ids, scores


def score_row(result: dict, prep, inv_prop) -> Dict[str, float]:
    Y_test, Y_dev = prep["truth"]["test"], prep["truth"]["dev"]
    ids, scores = result["_pred"]["test"]
    m = ranking_metrics(Y_test, ids, inv_prop)
    t = best_threshold(Y_dev, *result["_pred"]["dev"])
    m["micro-F1"] = micro_f1(Y_test, ids, scores, t)
    m["threshold"] = t
    return m


# ----- reporting ----------------------------------------------------------------------

COLUMNS = ("P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5", "RP@5", "micro-F1")


def markdown(rows: List[dict], meta: dict) -> str:
    lines = ["# EURLEX57K: xmc against PECOS, napkinXC, omikuji and fastText", "",
             f"{meta['machine']}, {meta['threads']} threads, {meta['date']}, xmc {meta['xmc_commit']}; medians "
             f"of {meta['repeats']} run(s) per system, all in this one run. Test set ({meta['n_test']:,} documents); "
             "micro-F1 at the threshold chosen on dev. Percentages.", "",
             "| system | kind | " + " | ".join(COLUMNS) + " | train s | predict docs/s | peak MiB |",
             "|---|---|" + "---|" * (len(COLUMNS) + 3)]
    for r in rows:
        lines.append(f"| {r['system']} | {r['kind']} | " + " | ".join(f"{r[c]:.2f}" for c in COLUMNS)
                     + f" | {r['train_s']:.0f} | {r['docs_per_s']:.0f} | {r['peak_mib']:.0f} |")
    peers = [r for r in rows if r["kind"] == "peer"] + [r for r in rows if r["system"] == "xmc linear PLT"]
    ours = [r for r in rows if r["kind"] == "xmc"]
    if peers and ours:
        best = max(ours, key=lambda r: r["P@5"])
        lines += ["", f"Best xmc system ({best['system']}) minus the best of the peers and xmc's linear PLT:", ""]
        for metric in ("P@1", "P@5", "nDCG@5"):
            top = max(peers, key=lambda r: r[metric])
            lines.append(f"- {metric}: {best[metric] - top[metric]:+.2f} (against {top['system']}, "
                         f"{top[metric]:.2f})")
    lines += ["", "Settings of each system: `settings` in each runner's result.json (benchmarks/.cache/eurlex57k/)"
              " and the runners' docstrings; how the deep model was chosen: benchmarks/README.md.", ""]
    return "\n".join(lines)


def plot(rows: List[dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[eurlex57k] matplotlib is not installed: no plot (pip install matplotlib)", flush=True)
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        colour = "tab:red" if r["kind"] == "xmc" else "tab:blue"
        ax.scatter(r["train_s"], r["P@5"], color=colour)
        ax.annotate(r["system"], (r["train_s"], r["P@5"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("training time, s (log scale)")
    ax.set_ylabel("test P@5, %")
    ax.set_title("EURLEX57K: test P@5 against training time (red: xmc, blue: peers)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path(os.environ.get("XMC_DATA", REPO.parent / "shared" / "data"))
                   / "eurlex57k", help="the eurlex57k folder (default $XMC_DATA/eurlex57k, else ../shared/data)")
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS), help=f"any of {','.join(ALL_SYSTEMS)}")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1, help="runs per system except xmc-ldgn (always one)")
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="the peers' and xmc linear's seed")
    p.add_argument("--graphs", default="both", help="LDGN variants for xmc-ldgn: any of both,static,dynamic,none")
    p.add_argument("--seeds", default="0", help="seeds of xmc-ldgn, e.g. 0,1 (one run per graph and seed)")
    p.add_argument("--name", default="eurlex57k", help="results file name (e.g. eurlex57k_ablation)")
    p.add_argument("--deep-set", action="append", default=[], metavar="FIELD=JSON",
                   help="an LDGN params field for xmc-ldgn (repeatable)")
    p.add_argument("--linear-set", action="append", default=[], metavar="FIELD=JSON",
                   help="a linear params field of xmc-ldgn's candidate model, e.g. neighbours.k=10 (repeatable)")
    p.add_argument("--keep-finished", action="store_true",
                   help="read a system's run from the cache when it finished earlier with the same command "
                        "(a long ablation over several sessions)")
    p.add_argument("--reuse", action="store_true",
                   help="xmc-ldgn: keep the candidate model and out-of-fold proposals in CACHE/reuse for the runs of "
                        "the same seed (run_xmc_deep.py --reuse); their recorded time still counts")
    p.add_argument("--peers-python", default=common.default_peers_python())
    p.add_argument("--xmc-python", default=sys.executable)
    p.add_argument("--cache", type=Path, default=HERE / ".cache" / "eurlex57k")
    p.add_argument("--results", type=Path, default=HERE / "results")
    p.add_argument("--timeout", type=int, default=4 * 3600, help="seconds per system run")
    args = p.parse_args(argv)
    args.systems = [s for s in args.systems.split(",") if s]
    args.graphs = [g for g in args.graphs.split(",") if g]
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    for g in args.graphs:
        if g not in ("both", "static", "dynamic", "none"):
            p.error(f"unknown LDGN graph {g!r}; expected both, static, dynamic or none")
    for s in args.systems:
        if s not in ALL_SYSTEMS:
            p.error(f"unknown system {s!r}; expected {', '.join(ALL_SYSTEMS)}")
    if not (args.data / "train.jsonl.gz").is_file():
        p.error(f"{args.data}/train.jsonl.gz not found: point --data or $XMC_DATA at the data folder")
    if any(s in PEERS for s in args.systems) and not Path(args.peers_python).exists():
        p.error(f"--peers-python {args.peers_python} not found: create it with benchmarks/peers/setup_venv.sh")
    return args


def main(argv=None) -> List[dict]:
    from xmc import metrics

    args = parse_args(argv)
    commit = common.git_commit(REPO)  # the code the runs start from, not what HEAD is when they end
    prep = prepare(args.data, args.cache)
    inv_prop = metrics.inv_propensity(prep["Y_train"], A=PROP_A, B=PROP_B)
    n_test = prep["truth"]["test"].shape[0]
    inv_prop = np.r_[inv_prop, np.full(prep["truth"]["test"].shape[1] - inv_prop.size, inv_prop.max())]
    runs: Dict[str, List[dict]] = {}
    # Seed by seed, so that a cut-short ablation still holds every graph of its first seed.
    variants = [(g, s) for s in args.seeds for g in args.graphs]
    for rep in range(args.repeats):
        for system, variant in [(s, v) for s in args.systems for v in (variants if s == "xmc-ldgn" else [None])]:
            if system == "xmc-ldgn" and rep > 0:
                continue
            folder, suffix = system, ""
            if system == "xmc-ldgn" and len(variants) > 1:
                folder, suffix = f"{system}-{variant[0]}-s{variant[1]}", f" ({variant[0]} graph, seed {variant[1]})"
            print(f"[eurlex57k] {folder} run {rep + 1}", flush=True)
            out = args.cache / "runs" / folder / str(rep)
            for name, result in run_system(system, prep, args, out, variant, suffix).items():
                result.update(score_row(result, prep, inv_prop))
                del result["_pred"]
                runs.setdefault(name, []).append(result)
                print(f"[eurlex57k]   {name}: P@1 {result['P@1']:.2f} P@5 {result['P@5']:.2f} nDCG@5 "
                      f"{result['nDCG@5']:.2f} train {result['train_seconds']:.0f} s", flush=True)
    rows = []
    for name, results in runs.items():
        med = {k: float(median(r[k] for r in results)) for k in COLUMNS + ("train_seconds", "peak_rss_bytes")}
        pred_s = median(r["predict_seconds"] for r in results)
        rows.append({"system": name, "kind": "xmc" if name.startswith("xmc") else "peer",
                     **{k: round(med[k], 2) for k in COLUMNS}, "train_s": round(med["train_seconds"], 1),
                     "docs_per_s": round(n_test / pred_s, 1), "peak_mib": round(med["peak_rss_bytes"] / 2**20, 1),
                     "runs": len(results), "threshold": float(median(r["threshold"] for r in results)),
                     "settings": results[0].get("settings", {})})
    meta = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()} {os.cpu_count()} cores", "threads": args.threads,
            "repeats": args.repeats, "n_test": n_test, "xmc_commit": commit}
    args.results.mkdir(parents=True, exist_ok=True)
    name = args.name
    (args.results / f"{name}.json").write_text(json.dumps(
        [{k: v for k, v in r.items() if k != "settings"} for r in rows], indent=2) + "\n")
    (args.results / f"{name}_settings.json").write_text(json.dumps(
        {"meta": meta, "tfidf": TFIDF, "systems": {r["system"]: r["settings"] for r in rows}}, indent=2) + "\n")
    md = markdown(rows, meta)
    if plot(rows, args.results / f"{name}.png"):
        md += f"\n![test P@5 against training time]({name}.png)\n"
    (args.results / f"{name}.md").write_text(md)
    print(md)
    return rows


if __name__ == "__main__":
    main()
