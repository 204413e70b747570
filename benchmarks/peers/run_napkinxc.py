"""napkinXC PLT runner, run with the peers' interpreter.

``napkinxc.models.PLT`` with its defaults (hierarchical balanced 2-means tree,
max_leaves=100, liblinear L2R_LR_DUAL, C=10, eps=0.1, weights_threshold=0.1,
L2-normalized features, bias 1) and ``threads=T``; fit on the CSR matrix and
label lists. napkinXC writes the model to its output directory during
``fit``, so that write is inside the timed training. Prediction reopens the
directory with a fresh ``PLT(dir)`` and calls ``predict_proba(X, top_k=K)``.
Search: ``--search beam`` (default here) uses ``tree_search_type='beam'``
with ``beam_search_width=B``, the same beam as every other system;
``--search exact`` is napkinXC's own default, exact top-k (uniform-cost)
search. Which is faster depends on the data (exact was 4-5x faster on bibtex
and delicious, beam 5x faster on one 10k-label corpus), so compare_linear.py
runs both, as ``napkinxc`` and ``napkinxc-exact``.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402


def main() -> None:
    args = common.runner_args(
        __doc__.splitlines()[0],
        extra=[("--search", dict(choices=("beam", "exact"), default="beam")),
               ("--seed", dict(type=int, default=0))],
    )
    common.set_thread_env(args.threads)
    from napkinxc.models import PLT

    X, Y = common.read_xc(args.train)
    Xt, _ = common.read_xc(args.test)
    labels = [Y.indices[Y.indptr[i] : Y.indptr[i + 1]].tolist() for i in range(Y.shape[0])]
    model_dir = os.path.join(args.out, "model")
    search = dict(tree_search_type="beam", beam_search_width=args.beam) if args.search == "beam" else {}

    with common.Stopwatch() as train:
        model = PLT(model_dir, threads=args.threads, seed=args.seed, **search)
        model.fit(X, labels)
    del model

    loaded = PLT(model_dir, threads=args.threads, **search)
    loaded.load()
    with common.Stopwatch() as pred:
        rows = loaded.predict_proba(Xt, top_k=args.k)
    ids, scores = common.topk_from_rows(rows, args.k)
    if args.dev:
        Xd, _ = common.read_xc(args.dev)
        common.write_dev_predictions(args.out, *common.topk_from_rows(loaded.predict_proba(Xd, top_k=args.k), args.k))
    common.write_outputs(
        args.out, ids, scores, train.seconds, pred.seconds, model_dir,
        settings={
            "system": "napkinxc", "threads": args.threads, "top_k": args.k, "search": args.search,
            "beam_search_width": args.beam if args.search == "beam" else None,
            "tree": "hierarchicalKmeans arity=2 max_leaves=100 (defaults)",
            "loss": "log, liblinear L2R_LR_DUAL C=10 (defaults)", "seed": args.seed,
        },
    )


if __name__ == "__main__":
    main()
