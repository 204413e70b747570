"""Label-tree clustering: xmc ``cluster_labels`` against PECOS hierarchical k-means.

Inputs (generated once into --workdir, outside the repository):
  dense   clustered, L2-normalised float32 embeddings, L x 256
  sparse  PIFA embeddings (xmc.tree.pifa_embeddings) of a generated corpus with L labels

Each measurement runs in a fresh process (xmc with this interpreter, PECOS with
--peer-python) that loads the embeddings, then times only the clustering:
branching 16, leaves of at most 100 labels, 20 k-means iterations, --threads.
Peak memory is the peak resident size (VmHWM) of that process; ``rss_loaded`` is the resident size
after loading the input, so ``peak - loaded`` is what the clustering added.
Writes benchmarks/results/tree_build.{md,json}.

  python benchmarks/tree_build.py --labels 1000000 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import common  # noqa: E402

# Runs inside the measured process. argv: kind tool path threads
WORKER = r"""
import json, resource, sys, time
import numpy as np
import scipy.sparse as sp
kind, tool, path, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def status(key):
    # /proc values belong to this process image; ru_maxrss would carry the
    # parent's peak over fork+exec.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
def rss():
    return status("VmRSS:")
if kind == "dense":
    emb = np.load(path)
else:
    z = np.load(path)
    emb = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
loaded = rss()
if tool == "xmc":
    from xmc.tree import TreeParams, cluster_labels
    t0 = time.perf_counter()
    tree = cluster_labels(emb, TreeParams(branching_factor=16, max_leaf_size=100, max_iter=20, seed=0,
                                          threads=threads))
    seconds = time.perf_counter() - t0
    leaves = tree.n_leaves
else:
    from pecos.xmc import Indexer
    t0 = time.perf_counter()
    chain = Indexer.gen(emb, indexer_type="hierarchicalkmeans", nr_splits=16, max_leaf_size=100,
                        kmeans_max_iter=20, seed=0, threads=threads)
    seconds = time.perf_counter() - t0
    leaves = chain[-1].shape[1]
peak = status("VmHWM:")
print(json.dumps({"seconds": seconds, "peak_rss": peak, "rss_loaded": loaded, "leaves": int(leaves)}))
"""


def make_dense(n_labels: int, dim: int, path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n_centers = max(2, n_labels // 256)
    centers = rng.standard_normal((n_centers, dim), dtype=np.float32)
    out = np.empty((n_labels, dim), dtype=np.float32)
    step = 65536
    for s in range(0, n_labels, step):
        e = min(n_labels, s + step)
        block = centers[rng.integers(0, n_centers, e - s)]
        block += 0.8 * rng.standard_normal((e - s, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s:e] = block
    np.save(path, out)


def make_corpus(n_labels: int, seed: int = 0):
    """Topic corpus: each doc draws features and labels from its topic's ranges.

    Returns (X, Y) with about 0.6 docs per label, 16 features and 3 labels per doc.
    Some labels get no document (empty PIFA rows), as in real data.
    """
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n_docs = max(100, int(0.6 * n_labels))
    n_features = max(1000, n_labels // 5)
    n_topics = max(2, n_labels // 500)
    topic = rng.integers(0, n_topics, n_docs)
    nf, nl = 16, 3
    f_window = max(50, n_features // n_topics * 4)
    f_base = (topic * (n_features // n_topics))[:, None]
    feats = (f_base + rng.integers(0, f_window, (n_docs, nf))) % n_features
    feats[:, : nf // 4] = rng.integers(0, n_features, (n_docs, nf // 4))  # topic-free words
    vals = rng.random((n_docs, nf), dtype=np.float32) + 0.1
    X = sp.csr_matrix((vals.ravel(), feats.ravel(), np.arange(0, n_docs * nf + 1, nf)),
                      shape=(n_docs, n_features))
    X.sum_duplicates()
    l_window = n_labels // n_topics
    labels = topic[:, None] * l_window + rng.integers(0, l_window, (n_docs, nl))
    Y = sp.csr_matrix((np.ones(n_docs * nl, dtype=np.float32), labels.ravel(),
                       np.arange(0, n_docs * nl + 1, nl)), shape=(n_docs, n_labels))
    Y.sum_duplicates()
    Y.data[:] = 1
    return X, Y


def make_sparse(n_labels: int, path: Path, info: dict) -> None:
    from sklearn.preprocessing import normalize

    from xmc.tree import pifa_embeddings

    X, Y = make_corpus(n_labels)
    t0 = time.perf_counter()
    P = pifa_embeddings(X, Y, threads=info["threads"])
    info["pifa_xmc_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    R = normalize(Y.T.tocsr() @ normalize(X)).tocsr()
    R.sort_indices()  # the core takes sorted columns; xmc's PIFA returns them sorted
    info["pifa_scipy_seconds"] = time.perf_counter() - t0
    info["pifa_max_abs_diff"] = float(abs(P - R).max()) if P.nnz else 0.0
    info["corpus"] = {"docs": X.shape[0], "features": X.shape[1], "labels": n_labels, "X_nnz": int(X.nnz),
                      "Y_nnz": int(Y.nnz), "pifa_nnz": int(P.nnz),
                      "labels_without_docs": int((np.diff(P.indptr) == 0).sum())}
    np.savez(path, indptr=P.indptr, indices=P.indices, data=P.data, shape=np.array(P.shape))


def run_worker(python: str, kind: str, tool: str, path: Path, threads: int, timeout: float) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) if tool == "xmc" else ""
    proc = subprocess.run([python, "-c", WORKER, kind, tool, str(path), str(threads)], capture_output=True,
                          text=True, env=env, cwd="/tmp", timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} on {kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inputs", default="dense,sparse")
    ap.add_argument("--tools", default="xmc,pecos")
    ap.add_argument("--peer-python", default=common.default_peers_python(),
                    help="interpreter with libpecos (default $XMC_PEERS_PYTHON, else benchmarks/.peers-venv)")
    ap.add_argument("--workdir", default="/tmp/xmc_tree_bench")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", default=str(RESULTS / "tree_build"))
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    info: dict = {"labels": args.labels, "dim": args.dim, "threads": args.threads, "repeats": args.repeats,
                  "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                  "load_avg_start": os.getloadavg()}
    paths = {"dense": work / f"dense_{args.labels}x{args.dim}.npy", "sparse": work / f"pifa_{args.labels}.npz"}
    inputs = args.inputs.split(",")
    if "dense" in inputs and not paths["dense"].exists():
        make_dense(args.labels, args.dim, paths["dense"])
    if "sparse" in inputs:
        make_sparse(args.labels, paths["sparse"], info)  # always rebuilt: also times PIFA

    runs: dict = {}
    for kind in inputs:
        for tool in args.tools.split(","):
            # Absolute: the workers run in /tmp.
            python = sys.executable if tool == "xmc" else os.path.abspath(args.peer_python)
            rows = []
            for r in range(args.repeats):
                rows.append(run_worker(python, kind, tool, paths[kind], args.threads, args.timeout))
                print(f"{kind:6s} {tool:5s} run {r}: {rows[-1]['seconds']:.2f} s, peak {mib(rows[-1]['peak_rss'])}",
                      flush=True)
            runs[f"{kind}/{tool}"] = {
                "seconds_median": statistics.median(x["seconds"] for x in rows),
                "peak_rss_median": statistics.median(x["peak_rss"] for x in rows),
                "rss_loaded_median": statistics.median(x["rss_loaded"] for x in rows),
                "leaves": rows[0]["leaves"],
                "runs": rows,
            }
    info["load_avg_end"] = os.getloadavg()
    result = {"info": info, "runs": runs}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")

    lines = [
        "# Label-tree clustering: xmc vs PECOS",
        "",
        f"{args.labels} labels, branching 16, leaves <= 100, 20 iterations, threads={args.threads}, "
        f"median of {args.repeats} fresh processes. Machine: {info['machine']}; load average "
        f"{info['load_avg_start'][0]:.1f} at start, {info['load_avg_end'][0]:.1f} at end.",
        "",
        "| input | tool | time (s) | peak RSS | RSS after load | added by clustering | leaves |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in runs.items():
        kind, tool = key.split("/")
        lines.append(f"| {kind} | {tool} | {r['seconds_median']:.2f} | {mib(r['peak_rss_median'])} | "
                     f"{mib(r['rss_loaded_median'])} | {mib(r['peak_rss_median'] - r['rss_loaded_median'])} | "
                     f"{r['leaves']} |")
    if "corpus" in info:
        c = info["corpus"]
        lines += ["", f"Sparse input: PIFA of a generated corpus ({c['docs']} docs, {c['features']} features, "
                      f"X nnz {c['X_nnz']}, Y nnz {c['Y_nnz']}; PIFA nnz {c['pifa_nnz']}, "
                      f"{c['labels_without_docs']} labels without documents). PIFA time: xmc "
                      f"{info['pifa_xmc_seconds']:.2f} s vs scipy normalize(Y.T @ normalize(X)) + sort_indices "
                      f"{info['pifa_scipy_seconds']:.2f} s (max abs diff {info['pifa_max_abs_diff']:.1e})."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
