"""PECOS's beam search on the very model benchmarks/search_speed.py generated.

Run with the peers' interpreter (libpecos is not an xmc dependency):

    python benchmarks/search_speed.py --export /tmp/xmc-search-bench
    /path/to/peers-venv/bin/python benchmarks/peer_search_speed.py /tmp/xmc-search-bench

Builds a pecos HierarchicalMLModel from the exported per-layer weights (bias as
PECOS's bias row with value 1.0, l3-hinge post-processor, which multiplies
down the tree like xmc's), times predict at the same beam and k, median of
--repeats, and saves PECOS's top-k next to the export for an agreement check.
Needs no xmc import, so it runs under numpy 1.x.
"""
import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pecos.xmc.base import HierarchicalMLModel, MLModel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("--beam", type=int, default=10)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "search_speed_pecos.json"))
    a = ap.parse_args()

    z = np.load(Path(a.export_dir) / "search_model.npz")
    depth = sum(1 for name in z.files if name.startswith("layer_"))
    label_order = z["label_order"]
    X = sp.csr_matrix((z["docs_data"], z["docs_indices"], z["docs_indptr"]), shape=tuple(z["docs_shape"]))
    chain = []
    for t in range(depth):
        ptr = z[f"layer_{t}"]
        W = sp.csc_matrix((z[f"w{t}_data"], z[f"w{t}_indices"], z[f"w{t}_indptr"]), shape=tuple(z[f"w{t}_shape"]))
        parents = np.repeat(np.arange(ptr.size - 1), np.diff(ptr))
        if t == depth - 1:
            # PECOS's last layer is indexed by label id; ours by position in label_order.
            position = np.empty_like(label_order)
            position[label_order] = np.arange(label_order.size)
            W = W[:, position]
            parents = parents[position]
        C = sp.csc_matrix((np.ones(parents.size, dtype=np.float32), (np.arange(parents.size), parents)),
                          shape=(parents.size, ptr.size - 1))
        chain.append(MLModel(W=W.astype(np.float32).tocsc(), C=C, bias=1.0,
                             pred_params={"only_topk": a.beam if t < depth - 1 else a.k,
                                          "post_processor": "l3-hinge"}))
    # Saved and reloaded predict-only, PECOS's fast path: the chunked weight
    # layout is built once at load instead of at every predict call.
    model_dir = Path(a.export_dir) / "pecos_model"
    HierarchicalMLModel(chain).save(str(model_dir))
    t0 = time.perf_counter()
    model = HierarchicalMLModel.load(str(model_dir), is_predict_only=True)
    load_s = time.perf_counter() - t0

    results = []
    Y = None
    for threads in a.threads:
        model.predict(X[:200], threads=threads, beam_size=a.beam, only_topk=a.k)
        times, cpu = [], []
        for _ in range(a.repeats):
            c0 = time.process_time()
            t0 = time.perf_counter()
            Y = model.predict(X, threads=threads, beam_size=a.beam, only_topk=a.k)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        med = statistics.median(times)
        results.append({"threads": threads, "median_s": med, "docs_per_s": X.shape[0] / med, "times_s": times,
                        "cpu_s": cpu, "docs_per_cpu_s": X.shape[0] / statistics.median(cpu)})
        print(f"pecos threads={threads}: {X.shape[0] / med:,.0f} docs/s (median of {a.repeats}: {med:.3f}s), "
              f"{X.shape[0] / statistics.median(cpu):,.0f} docs per CPU-second")
    Y = sp.csr_matrix(Y)
    np.savez(Path(a.export_dir) / "pecos_topk.npz", indptr=Y.indptr, indices=Y.indices, data=Y.data,
             shape=np.array(Y.shape))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "search_speed_pecos", "engine": "libpecos HierarchicalMLModel",
                               "beam": a.beam, "k": a.k, "load_s": load_s, "docs": int(X.shape[0]), "results": results,
                               "load_avg_1m": os.getloadavg()[0]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
