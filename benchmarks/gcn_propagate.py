"""Static graph propagation (xmc.ops.gcn_propagate): fused kernel against torch.sparse.

LDGN's setting from the issue: 4,000 labels, dim 256, batch 16, a co-occurrence graph of a
generated corpus (xmc.datasets.synthetic, 4 labels a document), normalised. Forward and
backward timed together, median of --repeats after a warm-up, every backend in this process
one after the other (alternating, so load hits them alike). Writes
benchmarks/results/gcn_propagate.{md,json}.

    python benchmarks/gcn_propagate.py --threads 2 --repeats 11
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--labels", type=int, default=4000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--results", default=str(HERE / "results"))
    args = p.parse_args(argv)

    import torch

    from xmc.data.label_graph import cooccurrence_graph, normalize_adjacency
    from xmc.datasets.synthetic import SyntheticParams, make_corpus
    from xmc.ops import SparseGraph, gcn_propagate

    torch.set_num_threads(args.threads)
    corpus = make_corpus(SyntheticParams(n_labels=args.labels, n_train=5 * args.labels, n_test=10,
                                         n_features=1000))
    A = normalize_adjacency(cooccurrence_graph(corpus.Y_train))
    graph = SparseGraph.from_scipy(A, device=args.device)
    backends = ["reference", "cuda" if args.device == "cuda" else "cpu"]
    g = torch.Generator().manual_seed(0)
    H = torch.randn(args.batch, args.labels, args.dim, generator=g).to(args.device).requires_grad_()
    grad = torch.randn(args.batch, args.labels, args.dim, generator=g).to(args.device)

    def once(backend: str) -> float:
        if args.device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        gcn_propagate(graph, H, backend=backend).backward(grad)
        if args.device == "cuda":
            torch.cuda.synchronize()
        H.grad = None
        return time.perf_counter() - t

    times = {b: [] for b in backends}
    for b in backends:
        once(b)  # warm-up
    for _ in range(args.repeats):
        for b in backends:
            times[b].append(once(b))
    med = {b: median(v) for b, v in times.items()}
    fast = backends[1]
    report = {"labels": args.labels, "dim": args.dim, "batch": args.batch, "nnz": int(A.nnz),
              "threads": args.threads, "device": args.device, "repeats": args.repeats,
              "seconds": med, "ratio": med[fast] / med["reference"], "load": os.getloadavg()}
    md = (f"# Static graph propagation, forward+backward ({args.device}, {args.threads} threads)\n\n"
          f"{args.labels:,} labels, dim {args.dim}, batch {args.batch}, normalised co-occurrence graph of a "
          f"generated corpus ({A.nnz:,} edges). Median of {args.repeats} alternating runs after a warm-up.\n\n"
          "| backend | fwd+bwd (s) | time / torch.sparse |\n|---|---|---|\n" +
          "".join(f"| {b} | {med[b]:.4f} | {med[b] / med['reference']:.2f} |\n" for b in backends))
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.device == "cpu" else f"_{args.device}"
    (out / f"gcn_propagate{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"gcn_propagate{suffix}.md").write_text(md)
    print(md)
    return report


if __name__ == "__main__":
    main()
