"""Training time of the peer linear tree models on one dataset (run with the peers' interpreter).

    /work/peers-venv/bin/python benchmarks/linear_peers.py TRAIN_XC TEST_XC --threads 2 --repeats 3

Prints one JSON object: per peer, the median training seconds and P@1. Inputs
are Extreme Classification Repository files whose rows are already L2-normalised
(linear_speed.py writes them), so every model sees the same features.
Pure numpy/scipy on purpose: linear_speed.py imports ``read_xc`` from here.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
import scipy.sparse as sp


def read_xc(path: str):
    """(X csr float32, Y csr float32) from an XC-format text file."""
    with open(path) as f:
        n, d, L = map(int, f.readline().split())
        indptr, cols, vals, yptr, ycols = [0], [], [], [0], []
        for line in f:
            head, _, rest = line.rstrip("\n").partition(" ")
            if head:
                ycols.extend(int(l) for l in head.split(","))
            for tok in rest.split():
                fid, _, v = tok.partition(":")
                cols.append(int(fid))
                vals.append(float(v))
            indptr.append(len(cols))
            yptr.append(len(ycols))
    X = sp.csr_matrix((np.array(vals, np.float32), np.array(cols, np.int32), np.array(indptr)), shape=(n, d))
    Y = sp.csr_matrix((np.ones(len(ycols), np.float32), np.array(ycols, np.int32), np.array(yptr)), shape=(n, L))
    X.sum_duplicates()
    Y.sum_duplicates()
    Y.data[:] = 1
    return X, Y


def p_at_1(top: np.ndarray, Y) -> float:
    return float(np.asarray(Y[np.arange(len(top)), top]).mean())


def time_pecos(Xtr, Ytr, Xte, Yte, threads):
    from pecos.xmc import Indexer, LabelEmbeddingFactory
    from pecos.xmc.xlinear.model import XLinearModel

    t0, c0 = time.perf_counter(), time.process_time()
    emb = LabelEmbeddingFactory.create(Ytr, Xtr, method="pifa")
    chain = Indexer.gen(emb, indexer_type="hierarchicalkmeans", nr_splits=16, max_leaf_size=100,
                        threads=threads)
    t1, c1 = time.perf_counter(), time.process_time()
    model = XLinearModel.train(Xtr, Ytr, C=chain, threads=threads)
    t2, c2 = time.perf_counter(), time.process_time()
    P = model.predict(Xte, beam_size=10, only_topk=1, threads=threads)
    top = np.asarray(P.argmax(axis=1)).ravel()
    return {"tree_s": t1 - t0, "train_s": t2 - t1, "total_s": t2 - t0, "train_cpu_s": c2 - c1,
            "total_cpu_s": c2 - c0, "p1": p_at_1(top, Yte)}


def time_napkinxc(Xtr, Ytr, Xte, Yte, threads):
    from napkinxc.models import PLT

    with tempfile.TemporaryDirectory() as out:
        model = PLT(out, threads=threads, seed=0)
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(Xtr, Ytr)
        t1, c1 = time.perf_counter(), time.process_time()
        pred = model.predict(Xte, top_k=1)
    top = np.array([p[0] if len(p) else 0 for p in pred])
    return {"total_s": t1 - t0, "total_cpu_s": c1 - c0, "p1": p_at_1(top, Yte)}


def time_omikuji(train_path, Xte, Yte, threads):
    import omikuji

    hp = omikuji.Model.default_hyper_param()
    hp.n_trees = 1  # one tree, like the other models here (omikuji's default is 3)
    t0, c0 = time.perf_counter(), time.process_time()
    model = omikuji.Model.train_on_data(train_path, hp, n_threads=threads)
    t1, c1 = time.perf_counter(), time.process_time()
    top = []
    for i in range(Xte.shape[0]):
        row = Xte[i]
        pred = model.predict(list(zip(row.indices.tolist(), row.data.tolist())), top_k=1)
        top.append(pred[0][0] if pred else 0)
    return {"total_s": t1 - t0, "total_cpu_s": c1 - c0, "p1": p_at_1(np.array(top), Yte), "note": "total includes reading the file"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peers", default="pecos,napkinxc,omikuji")
    args = ap.parse_args()
    Xtr, Ytr = read_xc(args.train)
    Xte, Yte = read_xc(args.test)
    out = {}
    for peer in args.peers.split(","):
        runs = []
        for _ in range(args.repeats):
            if peer == "pecos":
                runs.append(time_pecos(Xtr, Ytr, Xte, Yte, args.threads))
            elif peer == "napkinxc":
                runs.append(time_napkinxc(Xtr, Ytr, Xte, Yte, args.threads))
            elif peer == "omikuji":
                runs.append(time_omikuji(args.train, Xte, Yte, args.threads))
        res = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k.endswith("_s")}
        res["p1"] = runs[0]["p1"]
        res["runs_total_s"] = [round(r["total_s"], 3) for r in runs]
        out[peer] = res
    print(json.dumps(out))


if __name__ == "__main__":
    main()
