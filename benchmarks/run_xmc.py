"""xmc linear PLT runner, run with xmc's interpreter (same CLI as the peer runners).

Reads both files with ``xmc.data.read_xc`` (the test file with the training
dimensions), trains ``PLTLinear(PLTParams(threads=T))`` with its
defaults (PIFA tree, 16-way, leaves <= 100 labels, squared hinge, C=0.5, rows
L2-normalised inside fit and predict, so that cost is timed), saves it, loads
it back with ``PLTLinear.load`` and ``prepare_search()`` (the beam searcher's weight
layout, timed apart as part of loading, like the peers' load steps) and times
``predict_topk(X, k, beam)`` over the whole test set. Reading is not timed.
"""
from __future__ import annotations

import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import common  # noqa: E402


def main() -> None:
    args = common.runner_args(__doc__.splitlines()[0], extra=[("--seed", dict(type=int, default=0))])
    common.set_thread_env(args.threads)
    from xmc.data import read_xc
    from xmc.linear import PLTLinear, PLTParams

    train = read_xc(args.train, threads=args.threads)
    test = read_xc(args.test, n_features=train.n_features, n_labels=train.n_labels, threads=args.threads)
    X, Y = train.X, train.Y
    Xt = test.X
    model_dir = os.path.join(args.out, "model")
    params = PLTParams(threads=args.threads, seed=args.seed)
    params.tree.threads = args.threads
    params.tree.seed = args.seed

    from xmc.tree.build import build_label_tree
    importlib.import_module("sklearn.preprocessing")  # row normalisation's module: imported before the clock, like xmc

    # The tree build is timed apart so benchmarks/scale.py can show how it grows; train_seconds is
    # it plus fit() on that tree (which normalises the rows once, as fit() alone would), like the
    # peers' training, which builds their trees inside. The normalisation done here only to hand
    # the tree fit()'s features is not counted: PIFA scales each document itself, and
    # `xmc build-tree` runs without it.
    model = PLTLinear(params)
    with common.Stopwatch() as prepare_rows:
        X_rows = model.prepare_rows(X)  # the features fit() builds the tree on
    with common.Stopwatch() as tree_build:
        tree = build_label_tree(X_rows, Y, params.tree)
    del X_rows
    with common.Stopwatch() as layers:
        model.fit(X, Y, tree=tree)
    model.save(model_dir)
    del model

    loaded = PLTLinear.load(model_dir)
    with common.Stopwatch() as prepare:
        loaded.prepare_search()  # part of loading, as the peers' runners time it (PECOS: is_predict_only)
    with common.Stopwatch() as pred:
        ids, scores = loaded.predict_topk(Xt, k=args.k, beam=args.beam, threads=args.threads)
    if args.dev:
        dev = read_xc(args.dev, n_features=train.n_features, n_labels=train.n_labels, threads=args.threads)
        common.write_dev_predictions(args.out, *loaded.predict_topk(dev.X, k=args.k, beam=args.beam,
                                                                   threads=args.threads))
    common.write_outputs(
        args.out, ids, scores, tree_build.seconds + layers.seconds, pred.seconds, model_dir,
        settings={"system": "xmc", "threads": args.threads, "k": args.k, "beam": args.beam,
                  "params": params.to_dict(), "tree_seconds": tree_build.seconds,
                  "tree_rows_normalisation_seconds": prepare_rows.seconds,
                  "prepare_search_seconds": prepare.seconds},
    )


if __name__ == "__main__":
    main()
