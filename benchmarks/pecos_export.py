"""Train PECOS XR-Linear on a real dataset and export it in xmc's search format.

Run with the peers' interpreter (libpecos is not an xmc dependency):

    /path/to/peers-venv/bin/python benchmarks/pecos_export.py \\
        /work/shared/data/delicious/delicious_{train,test}_xc.txt /tmp/xmc-delicious
    python benchmarks/search_speed.py --load /tmp/xmc-delicious --threads 1
    /path/to/peers-venv/bin/python benchmarks/peer_search_speed.py /tmp/xmc-delicious --threads 1

so both engines search the same trained, pruned weights on real documents.
PECOS's children need not be contiguous per parent; each level is re-ordered
by parent to fit xmc's LabelTree layout (a relabelling: same model).
"""
import argparse
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pecos.xmc import Indexer, LabelEmbeddingFactory
from pecos.xmc.xlinear.model import XLinearModel


def read_xc(path):
    with open(path) as f:
        n, d, l = (int(v) for v in f.readline().split())
        rows, cols, vals, yr, yc = [], [], [], [], []
        for i, line in enumerate(f):
            labels, _, feats = line.rstrip("\n").partition(" ")
            for lab in filter(None, labels.split(",")):
                yr.append(i)
                yc.append(int(lab))
            for tok in feats.split():
                fid, _, v = tok.partition(":")
                rows.append(i)
                cols.append(int(fid))
                vals.append(float(v))
    X = sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(n, d))
    Y = sp.csr_matrix((np.ones(len(yr), np.float32), (yr, yc)), shape=(n, l))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ X, dtype=np.float32), Y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("out_dir")
    ap.add_argument("--nr-splits", type=int, default=16)
    ap.add_argument("--max-leaf-size", type=int, default=16)
    a = ap.parse_args()
    Xtr, Ytr = read_xc(a.train)
    Xte, _ = read_xc(a.test)
    emb = LabelEmbeddingFactory.create(Ytr, Xtr, method="pifa")
    cluster_chain = Indexer.gen(emb, nr_splits=a.nr_splits, max_leaf_size=a.max_leaf_size)
    model = XLinearModel.train(Xtr, Ytr, C=cluster_chain, threshold=0.1)
    chain = model.model.model_chain
    depth = len(chain)

    arrays = {}
    order = np.array([0])  # new position -> PECOS node id, per level
    for t, m in enumerate(chain):
        W = sp.csc_matrix(m.W, dtype=np.float32)
        C = sp.csc_matrix(m.C)
        parent = np.asarray(C.argmax(axis=1)).ravel()
        new_pos_of_parent = np.empty(order.size, dtype=np.int64)
        new_pos_of_parent[order] = np.arange(order.size)
        child_order = np.lexsort((np.arange(parent.size), new_pos_of_parent[parent]))
        counts = np.bincount(new_pos_of_parent[parent], minlength=order.size)
        arrays[f"layer_{t}"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        Wn = sp.csc_matrix(W[:, child_order])
        Wn.sort_indices()
        arrays[f"w{t}_indptr"], arrays[f"w{t}_indices"], arrays[f"w{t}_data"] = Wn.indptr, Wn.indices, Wn.data
        arrays[f"w{t}_shape"] = np.array(Wn.shape)
        order = child_order
    arrays["label_order"] = order.astype(np.int32)
    Xte.sort_indices()
    arrays.update(docs_indptr=Xte.indptr, docs_indices=Xte.indices, docs_data=Xte.data,
                  docs_shape=np.array(Xte.shape))
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "search_model.npz", **arrays)
    sizes = [1] + [int(arrays[f"layer_{t}"][-1]) for t in range(depth)]
    print(f"exported {depth}-layer model, level sizes {sizes}, test docs {Xte.shape}, "
          f"weights nnz {[int(arrays[f'w{t}_data'].size) for t in range(depth)]} to {out}")


if __name__ == "__main__":
    main()
