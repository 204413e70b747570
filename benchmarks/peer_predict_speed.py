"""Prediction speed of napkinXC (PLT) and omikuji (Parabel) on a real dataset.

Their own trained models, not xmc's, so only a rough reference for
benchmarks/search_speed.py --load (which runs a PECOS-trained model). Run
with the peers' interpreter:

    /path/to/peers-venv/bin/python benchmarks/peer_predict_speed.py \\
        /work/shared/data/delicious/delicious_{train,test}_xc.txt

napkinXC predicts a batch in C++ (beam search, width 10, one thread);
omikuji's Python binding predicts one document per call (beam 10, 1 tree), so
its figure includes a Python call per document.
"""
import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def read_xc(path):
    with open(path) as f:
        n, d, l = (int(v) for v in f.readline().split())
        rows, cols, vals, Y = [], [], [], []
        for i, line in enumerate(f):
            labels, _, feats = line.rstrip("\n").partition(" ")
            Y.append([int(v) for v in labels.split(",") if v])
            for tok in feats.split():
                fid, _, v = tok.partition(":")
                rows.append(i)
                cols.append(int(fid))
                vals.append(float(v))
    X = sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(n, d))
    X.sum_duplicates()
    return X, Y


def timed(fn, repeats):
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "peer_predict_speed.json"))
    a = ap.parse_args()
    Xtr, Ytr = read_xc(a.train)
    Xte, _ = read_xc(a.test)
    n = Xte.shape[0]
    out = {"dataset": a.train, "test_docs": n, "results": {}}

    from napkinxc.models import PLT
    with tempfile.TemporaryDirectory() as d:
        m = PLT(d, tree_search_type="beam", beam_search_width=10, threads=1)
        m.fit(Xtr, Ytr)
        m.predict(Xte[:100], top_k=5)
        wall, cpu = timed(lambda: m.predict(Xte, top_k=5), a.repeats)
        out["results"]["napkinxc_plt_beam10"] = {"docs_per_s": n / wall, "docs_per_cpu_s": n / cpu}

    import omikuji
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "train.txt"
        with open(a.train) as src, open(path, "w") as dst:
            dst.write(src.read())
        hp = omikuji.Model.default_hyper_param()
        hp.n_trees = 1
        model = omikuji.Model.train_on_data(str(path), hp, n_threads=1)
        docs = [list(zip(Xte.indices[Xte.indptr[i]:Xte.indptr[i + 1]].tolist(),
                         Xte.data[Xte.indptr[i]:Xte.indptr[i + 1]].tolist())) for i in range(n)]
        wall, cpu = timed(lambda: [model.predict(doc, beam_size=10, top_k=5) for doc in docs], a.repeats)
        out["results"]["omikuji_parabel_1tree_beam10"] = {"docs_per_s": n / wall, "docs_per_cpu_s": n / cpu}

    out["load_avg_1m"] = os.getloadavg()[0]
    for name, r in out["results"].items():
        print(f"{name}: {r['docs_per_s']:,.0f} docs/s, {r['docs_per_cpu_s']:,.0f} docs per CPU-second")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
