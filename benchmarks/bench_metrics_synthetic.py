"""Timings of xmc.metrics and xmc.datasets.synthetic, plus an optional peer learnability check.

    python benchmarks/bench_metrics_synthetic.py            # timings, about a minute
    python benchmarks/bench_metrics_synthetic.py --peers    # + napkinXC metric cross-check, PLT and omikuji

Timings are medians of ``--repeats`` runs (wall and process CPU seconds).
``--peers`` first compares evaluate() (P, nDCG, PSP, PSnDCG @1,3,5 and the
inverse propensities) with napkinXC's metrics on skewed random data, then
writes the default synthetic corpus in Extreme Classification
Repository format to a temporary folder and trains napkinXC's PLT and omikuji
(one tree) with the peers' interpreter (``--peers-python``), single-threaded.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xmc.datasets import SyntheticParams, make_corpus, make_label_embeddings  # noqa: E402
from xmc.metrics import evaluate, inv_propensity, topk_from_scores  # noqa: E402


def timed(fn, repeats):
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def report(name, wall_cpu):
    print(f"{name:<52s} wall {wall_cpu[0]:7.2f} s   cpu {wall_cpu[1]:7.2f} s", flush=True)


def metric_inputs(n=1_000_000, L=100_000, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 8, n)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    start = np.repeat(rng.integers(0, L - 8, n), counts)
    offs = np.arange(indptr[-1]) - np.repeat(indptr[:-1], counts)
    Y = sp.csr_matrix((np.ones(indptr[-1], np.float32), (start + offs).astype(np.int32), indptr), shape=(n, L))
    ids = rng.integers(0, L - 5, n)[:, None] + np.arange(5)[None, :]
    S = sp.csr_matrix(
        (rng.random(n * 20).astype(np.float32), np.tile(np.arange(20, dtype=np.int32) * 4000, n),
         np.arange(0, n * 20 + 1, 20)),
        shape=(n, L),
    )
    return Y, ids, S


def write_xc(path, X, Y):
    with open(path, "w") as f:
        f.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n")
        for i in range(X.shape[0]):
            labs = ",".join(map(str, Y.indices[Y.indptr[i]:Y.indptr[i + 1]]))
            a, b = X.indptr[i], X.indptr[i + 1]
            feats = " ".join(f"{j}:{v:.6f}" for j, v in zip(X.indices[a:b], X.data[a:b]))
            f.write(f"{labs} {feats}\n")


PEER_SCRIPT = r"""
import sys, time, numpy as np, omikuji
from napkinxc.datasets import load_libsvm_file
from napkinxc.models import PLT
from napkinxc.metrics import precision_at_k
d = sys.argv[1]
X, Y = load_libsvm_file(d + '/train.txt'); Xt, Yt = load_libsvm_file(d + '/test.txt')
t = time.time(); m = PLT(d + '/plt', threads=1); m.fit(X, Y); tt = time.time() - t
p = precision_at_k(Yt, m.predict(Xt, top_k=5), k=5)
print(f"napkinXC PLT       P@1 {p[0]:.4f} P@3 {p[2]:.4f} P@5 {p[4]:.4f}  train {tt:.1f} s")
hp = omikuji.Model.default_hyper_param(); hp.n_trees = 1
t = time.time(); om = omikuji.Model.train_on_data(d + '/train.txt', hp, n_threads=1); tt = time.time() - t
hits = np.zeros(5)
for x, y in zip(Xt, Yt):
    x = x.tocsr()
    pred = [l for l, _ in om.predict(list(zip(x.indices.tolist(), x.data.tolist())), top_k=5)]
    h = np.array([1.0 if j < len(pred) and pred[j] in set(y) else 0.0 for j in range(5)])
    hits += np.cumsum(h) / np.arange(1, 6)
p = hits / len(Yt)
print(f"omikuji (1 tree)   P@1 {p[0]:.4f} P@3 {p[2]:.4f} P@5 {p[4]:.4f}  train {tt:.1f} s")
"""


METRIC_PEER_SCRIPT = r"""
import sys, json, numpy as np, scipy.sparse as sp
import napkinxc.metrics as m
d = sys.argv[1]
Y = sp.load_npz(d + '/Y.npz'); ids = np.load(d + '/ids.npy'); w = np.load(d + '/w.npy')
Yl = [list(Y.indices[Y.indptr[i]:Y.indptr[i + 1]]) for i in range(Y.shape[0])]
P = [[x for x in r if x >= 0] for r in ids]
out = {}
for name, f in [('P', m.precision_at_k), ('nDCG', m.ndcg_at_k)]:
    v = f(Yl, P, k=5); out.update({f'{name}@{k}': float(v[k - 1]) for k in (1, 3, 5)})
for name, f in [('PSP', m.psprecision_at_k), ('PSnDCG', m.psndcg_at_k)]:
    v = f(Yl, P, w, k=5); out.update({f'{name}@{k}': float(v[k - 1]) for k in (1, 3, 5)})
out['inv_prop'] = np.asarray(m.Jain_et_al_inverse_propensity(Y, A=0.55, B=1.5), dtype=float).ravel().tolist()
print(json.dumps(out))
"""


def compare_metrics_with_napkinxc(python: str) -> None:
    """Our evaluate() against napkinXC's metrics on skewed random data with padding."""
    import json

    rng = np.random.default_rng(1)
    n, L = 2000, 300
    Y = sp.csr_matrix((rng.random((n, L)) < np.linspace(0.05, 0.002, L)).astype(np.float32))
    ids = np.argsort(-(Y.toarray() * rng.random((n, L)) * 0.5 + rng.random((n, L))), axis=1)[:, :5]
    ids[::7, 3:] = -1
    w = inv_propensity(Y)
    ours = evaluate(Y, ids, ks=(1, 3, 5), inv_prop=w)
    with tempfile.TemporaryDirectory() as d:
        sp.save_npz(os.path.join(d, "Y.npz"), Y)
        np.save(os.path.join(d, "ids.npy"), ids)
        np.save(os.path.join(d, "w.npy"), w)
        res = subprocess.run([python, "-c", METRIC_PEER_SCRIPT, d], check=True, capture_output=True, text=True)
    theirs = json.loads(res.stdout.strip().splitlines()[-1])
    worst = max(abs(ours[k] - theirs[k]) for k in ours)
    w_diff = float(np.abs(np.asarray(theirs["inv_prop"]) - w).max())
    print(f"metrics vs napkinXC: max |diff| over {len(ours)} values {worst:.2e}; inv. propensity {w_diff:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peers", action="store_true")
    ap.add_argument("--peers-python", default="/work/peers-venv/bin/python")
    args = ap.parse_args()
    r = args.repeats

    Y, ids, S = metric_inputs()
    w = inv_propensity(Y)
    evaluate(Y[:10], ids[:10], inv_prop=w)  # numba kernel load outside the timings
    topk_from_scores(S[:10], 5)
    report("evaluate 1M docs x top-5, P/nDCG@1,3,5", timed(lambda: evaluate(Y, ids), r))
    report("evaluate 1M docs x top-5, + PSP/PSnDCG", timed(lambda: evaluate(Y, ids, inv_prop=w), r))
    report("topk_from_scores 1M docs x 20 scores, k=5", timed(lambda: topk_from_scores(S, 5), r))
    del Y, ids, S

    report("make_corpus defaults (2k labels, 10k+2k docs)", timed(lambda: make_corpus(SyntheticParams()), r))
    for L in (1_000_000, 3_000_000):
        p = SyntheticParams(n_labels=L, n_train=2000, n_test=500, n_features=100_000)
        report(f"make_corpus {L:,} labels, 2k+500 docs", timed(lambda: make_corpus(p), r))
    p = SyntheticParams(n_labels=100_000, n_train=200_000, n_test=20_000, n_features=200_000)
    report("make_corpus 100k labels, 200k+20k docs", timed(lambda: make_corpus(p), 1))
    report("make_label_embeddings 1M x 256, 1000 clusters", timed(lambda: make_label_embeddings(1_000_000, 256, 1000), r))

    if args.peers:
        compare_metrics_with_napkinxc(args.peers_python)
        c = make_corpus(SyntheticParams())
        with tempfile.TemporaryDirectory() as d:
            write_xc(os.path.join(d, "train.txt"), c.X_train, c.Y_train)
            write_xc(os.path.join(d, "test.txt"), c.X_test, c.Y_test)
            # The peers print progress bars on stderr; keep only their results.
            subprocess.run([args.peers_python, "-c", PEER_SCRIPT, d], check=True, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
