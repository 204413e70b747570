"""Training time of xmc's linear PLT against PECOS XR-Linear, napkinXC PLT and omikuji.

    python benchmarks/linear_speed.py --datasets bibtex,delicious,gen10k --threads 2 --repeats 3

Every model gets the same L2-normalised features and the same thread count.
xmc and PECOS are timed as tree build + node training (PECOS's tree: PIFA +
hierarchical k-means, 16-way, leaves <= 100 labels, like xmc's default);
napkinXC and omikuji only expose the total. The generated corpus (10,000
labels, 20,000 training docs, 50,000 features) is written under --workdir, never
into the repository. Results go to benchmarks/results/linear_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from linear_peers import read_xc  # noqa: E402

from xmc.linear import PLTLinear, PLTParams  # noqa: E402
from xmc.tree.build import build_label_tree  # noqa: E402
from xmc.utils.sparse import l2_normalize_rows  # noqa: E402

DATA = Path("/work/shared/data")
PEERS_PY = "/work/peers-venv/bin/python"


def write_xc(path: Path, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
    with open(path, "w") as f:
        f.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n")
        for i in range(X.shape[0]):
            labels = ",".join(map(str, Y.indices[Y.indptr[i]:Y.indptr[i + 1]]))
            s, e = X.indptr[i], X.indptr[i + 1]
            feats = " ".join(f"{j}:{v:.6g}" for j, v in zip(X.indices[s:e], X.data[s:e]))
            f.write(f"{labels} {feats}\n")


def generate(n_train=20000, n_test=5000, n_labels=10000, n_features=50000, seed=0):
    """Labels with Zipf-like frequencies, each owning 12 signature features; Zipf noise words."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    label_p = 1.0 / np.arange(1, n_labels + 1) ** 0.7
    label_p /= label_p.sum()
    word_p = 1.0 / np.arange(1, n_features + 1) ** 1.0
    word_p /= word_p.sum()
    signature = rng.integers(0, n_features, size=(n_labels, 12))
    n_lab = rng.integers(1, 6, size=n)
    labels = rng.choice(n_labels, size=int(n_lab.sum()), p=label_p)
    yptr = np.concatenate([[0], np.cumsum(n_lab)])
    rows, cols = [], []
    noise = rng.choice(n_features, size=(n, 40), p=word_p)
    for i in range(n):
        own = signature[labels[yptr[i]:yptr[i + 1]]]
        pick = own[:, rng.permutation(12)[:6]].ravel()
        f = np.unique(np.concatenate([pick, noise[i]]))
        rows.append(np.full(f.size, i))
        cols.append(f)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    X = sp.csr_matrix((rng.uniform(0.5, 2.0, rows.size).astype(np.float32), (rows, cols)), shape=(n, n_features))
    Y = sp.csr_matrix((np.ones(labels.size, np.float32), labels, yptr), shape=(n, n_labels))
    Y.sum_duplicates()
    Y.data[:] = 1
    X = l2_normalize_rows(X)
    return X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]


def prepare(name: str, workdir: Path):
    train, test = workdir / f"{name}_train.txt", workdir / f"{name}_test.txt"
    if not (train.exists() and test.exists()):
        if name == "gen10k":
            Xtr, Ytr, Xte, Yte = generate()
        else:
            Xtr, Ytr = read_xc(str(DATA / name / f"{name}_train_xc.txt"))
            Xte, Yte = read_xc(str(DATA / name / f"{name}_test_xc.txt"))
            Xtr, Xte = l2_normalize_rows(Xtr), l2_normalize_rows(Xte)
        write_xc(train, Xtr, Ytr)
        write_xc(test, Xte, Yte)
    return train, test


def time_xmc(Xtr, Ytr, Xte, Yte, threads: int, repeats: int):
    params = PLTParams(threads=threads)
    params.tree.threads = threads
    runs = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        tree = build_label_tree(Xtr, Ytr, params.tree)
        t1, c1 = time.perf_counter(), time.process_time()
        model = PLTLinear(params).fit(Xtr, Ytr, tree=tree)
        t2, c2 = time.perf_counter(), time.process_time()
        runs.append((t1 - t0, t2 - t1, t2 - t0, c2 - c1, c2 - c0))
    ids, _ = model.predict_topk(Xte, k=1, beam=10, threads=threads)
    p1 = float(np.asarray(Yte[np.arange(Xte.shape[0]), ids[:, 0]]).mean())
    nnz = sum(W.nnz for W in model.weights)
    return {"tree_s": statistics.median(r[0] for r in runs), "train_s": statistics.median(r[1] for r in runs),
            "total_s": statistics.median(r[2] for r in runs), "train_cpu_s": statistics.median(r[3] for r in runs),
            "total_cpu_s": statistics.median(r[4] for r in runs), "p1": p1, "weights_nnz": nnz,
            "runs_total_s": [round(r[2], 3) for r in runs]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="bibtex,delicious,gen10k")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peers", default="pecos,napkinxc,omikuji")
    ap.add_argument("--workdir", default="/tmp/xmc-bench-linear")
    args = ap.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = {"threads": args.threads, "repeats": args.repeats, "load_before": os.getloadavg()}
    for name in args.datasets.split(","):
        train, test = prepare(name, workdir)
        Xtr, Ytr = read_xc(str(train))
        Xte, Yte = read_xc(str(test))
        res = {"xmc": time_xmc(Xtr, Ytr, Xte, Yte, args.threads, args.repeats)}
        if args.peers:
            out = subprocess.run([PEERS_PY, str(HERE / "linear_peers.py"), str(train), str(test),
                                  "--threads", str(args.threads), "--repeats", str(args.repeats),
                                  "--peers", args.peers], capture_output=True, text=True, check=True)
            res.update(json.loads(out.stdout.strip().splitlines()[-1]))
        results[name] = res
        for model, r in res.items():
            parts = " ".join(f"{k}={v:.3f}" for k, v in r.items() if isinstance(v, float))
            print(f"{name:10s} {model:9s} {parts}", flush=True)
    results["load_after"] = os.getloadavg()
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "linear_speed.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
