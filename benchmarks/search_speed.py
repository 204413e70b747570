"""Beam-search throughput on a generated PLT model.

Default model: 10,000 labels, 50,000 features, branching 16, leaves of 100
labels (level sizes 1, 16, 100, 10000), random sparse weights (5% dense at the
leaves, denser above: see --density), 5,000 random tf-idf-like documents of
about 100 features each, L2-normalised. Reports documents/s at the given beam
for each thread count, median of --repeats runs, as JSON.

    python benchmarks/search_speed.py [--threads 1 2] [--out benchmarks/results/search_speed.json]

--export DIR also writes the model and documents as .npz (for running the same
model through a peer's predictor, see benchmarks/peer_search_speed.py);
--load DIR searches such an export instead, e.g. a PECOS model trained on real
data by benchmarks/pecos_export.py.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xmc.search import BeamSearcher  # noqa: E402
from xmc.tree.label_tree import LabelTree  # noqa: E402
from xmc.utils.sparse import l2_normalize_rows  # noqa: E402


def balanced_tree(rng, n_labels: int, branching: int, leaf_size: int) -> LabelTree:
    n_leaves = -(-n_labels // leaf_size)
    sizes = [1]
    while sizes[-1] * branching < n_leaves:
        sizes.append(sizes[-1] * branching)
    sizes += [n_leaves, n_labels]
    layers = []
    for parents, children in zip(sizes[:-1], sizes[1:]):
        layers.append(np.linspace(0, children, parents + 1).round().astype(np.int64))
    return LabelTree(layers, rng.permutation(n_labels))


def random_csc(rng, rows: int, cols: int, density: float) -> sp.csc_matrix:
    per_col = rng.binomial(rows, density, cols)
    indptr = np.concatenate([[0], np.cumsum(per_col)])
    indices = rng.integers(0, rows, indptr[-1]).astype(np.int32)
    data = rng.normal(0, 1.0, indptr[-1]).astype(np.float32)
    W = sp.csc_matrix((data, indices, indptr), shape=(rows, cols))
    W.sum_duplicates()
    return W


def make_model(rng, n_labels, n_features, branching, leaf_size, densities):
    tree = balanced_tree(rng, n_labels, branching, leaf_size)
    weights = []
    for t in range(tree.depth):
        d = densities[min(t, len(densities) - 1) - tree.depth] if len(densities) < tree.depth else densities[t]
        W = random_csc(rng, n_features, tree.level_size(t + 1), d)
        bias = sp.csc_matrix(rng.normal(-1.0, 0.5, (1, W.shape[1])).astype(np.float32))
        weights.append(sp.vstack([W, bias], format="csc"))
    return tree, weights


def make_docs(rng, n_docs, n_features, nnz):
    # Zipf-like feature popularity, as in bag-of-words data.
    p = 1.0 / np.arange(1, n_features + 1) ** 0.8
    p /= p.sum()
    perm = rng.permutation(n_features)
    rows = np.repeat(np.arange(n_docs), nnz)
    cols = perm[rng.choice(n_features, size=n_docs * nnz, p=p)]
    X = sp.csr_matrix((rng.uniform(0.1, 1.0, rows.size).astype(np.float32), (rows, cols)),
                      shape=(n_docs, n_features))
    X.sum_duplicates()
    return l2_normalize_rows(X)


def load_export(directory):
    z = np.load(Path(directory) / "search_model.npz")
    depth = sum(1 for name in z.files if name.startswith("layer_"))
    tree = LabelTree([z[f"layer_{t}"] for t in range(depth)], z["label_order"])
    weights = [sp.csc_matrix((z[f"w{t}_data"], z[f"w{t}_indices"], z[f"w{t}_indptr"]),
                             shape=tuple(z[f"w{t}_shape"])) for t in range(depth)]
    X = sp.csr_matrix((z["docs_data"], z["docs_indices"], z["docs_indptr"]), shape=tuple(z["docs_shape"]))
    return tree, weights, X


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=int, default=10_000)
    ap.add_argument("--features", type=int, default=50_000)
    ap.add_argument("--branching", type=int, default=16)
    ap.add_argument("--leaf-size", type=int, default=100)
    ap.add_argument("--density", type=float, nargs="+", default=[0.3, 0.1, 0.05],
                    help="weight density per layer from the root; the last value is the leaves'")
    ap.add_argument("--docs", type=int, default=5_000)
    ap.add_argument("--doc-nnz", type=int, default=100)
    ap.add_argument("--beam", type=int, default=10)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--activation", default="l3-hinge")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "search_speed.json"))
    ap.add_argument("--export", default=None, help="directory to write search_model.npz into")
    ap.add_argument("--load", default=None, help="search the search_model.npz in this directory instead")
    a = ap.parse_args()

    rng = np.random.default_rng(a.seed)
    t0 = time.perf_counter()
    if a.load:
        tree, weights, X = load_export(a.load)
        a.docs, a.features, a.labels = X.shape[0], X.shape[1], tree.n_labels
        a.branching = a.leaf_size = a.density = None
    else:
        tree, weights = make_model(rng, a.labels, a.features, a.branching, a.leaf_size, a.density)
        X = make_docs(rng, a.docs, a.features, a.doc_nnz)
    gen_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    searcher = BeamSearcher(tree, weights, activation=a.activation)
    build_s = time.perf_counter() - t0

    results = []
    for threads in a.threads:
        searcher.search(X[:200], k=a.k, beam=a.beam, threads=threads)  # warm-up
        times, cpu = [], []
        for _ in range(a.repeats):
            c0 = time.process_time()
            t0 = time.perf_counter()
            searcher.search(X, k=a.k, beam=a.beam, threads=threads)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        med = statistics.median(times)
        results.append({"threads": threads, "median_s": med, "docs_per_s": a.docs / med,
                        "times_s": times,
                        "cpu_s": cpu, "docs_per_cpu_s": X.shape[0] / statistics.median(cpu)})
        print(f"threads={threads}: {a.docs / med:,.0f} docs/s (median of {a.repeats}: {med:.3f}s), "
              f"{X.shape[0] / statistics.median(cpu):,.0f} docs per CPU-second")

    report = {
        "benchmark": "search_speed",
        "model": {"source": a.load or "generated", "labels": a.labels, "features": a.features, "branching": a.branching,
                  "leaf_size": a.leaf_size, "level_sizes": [tree.level_size(l) for l in range(tree.depth + 1)],
                  "density": a.density, "nnz_per_layer": [int(W.nnz) for W in weights],
                  "activation": a.activation},
        "docs": {"n": a.docs, "mean_nnz": X.nnz / a.docs},
        "beam": a.beam, "k": a.k,
        "generate_s": gen_s, "build_layout_s": build_s,
        "layout": searcher.layout_stats(),
        "results": results,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_1m": os.getloadavg()[0]},
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"layout built in {build_s:.2f}s, {report['layout']['bytes'] / 2**20:.0f} MiB; wrote {out}")

    if a.export:
        d = Path(a.export)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {"label_order": tree.label_order, "docs_indptr": X.indptr, "docs_indices": X.indices,
                  "docs_data": X.data, "docs_shape": np.array(X.shape)}
        for t, (ptr, W) in enumerate(zip(tree.layer_indptr, weights)):
            arrays[f"layer_{t}"] = ptr
            arrays[f"w{t}_indptr"], arrays[f"w{t}_indices"], arrays[f"w{t}_data"] = W.indptr, W.indices, W.data
            arrays[f"w{t}_shape"] = np.array(W.shape)
        np.savez(d / "search_model.npz", **arrays)
        print(f"exported model and docs to {d}")


if __name__ == "__main__":
    main()
