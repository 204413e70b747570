"""xmc linear model runner, run with xmc's interpreter (same CLI as the peer runners).

Reads both files with ``xmc.data.read_xc`` (the test file with the training
dimensions) and trains ``Pipeline(LinearParams(threads=T, seed=S))``, the model of
``xmc train --model linear``, with its defaults (PIFA tree, 16-way, leaves <= 100
labels, squared hinge, rows L2-normalised inside fit and predict) or the options
given with ``--set FIELD=JSON`` (``--set trees=2``, ``--set neighbours.k=10``).
The clock covers the whole ``fit`` of a fresh process, as a user's script meets
it: tree, layers and any option's stage, and whatever a first fit pays once. It
saves the model, loads it back, lays the weights out for beam search (timed apart,
like the peers' load steps) and times ``predict_topk(X, k, beam)`` over the whole
test set. Reading is not timed.
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import common  # noqa: E402


def main() -> None:
    args = common.runner_args(__doc__.splitlines()[0], extra=[
        ("--seed", dict(type=int, default=0)),
        ("--set", dict(action="append", default=[], metavar="FIELD=JSON", dest="settings",
                       help="a field of LinearParams, as `xmc train --set` takes it; repeatable")),
    ])
    common.set_thread_env(args.threads)
    from xmc.data import read_xc
    from xmc.linear import LinearParams, Pipeline

    train = read_xc(args.train, threads=args.threads)
    test = read_xc(args.test, n_features=train.n_features, n_labels=train.n_labels, threads=args.threads)
    model_dir = os.path.join(args.out, "model")
    params = LinearParams(threads=args.threads, seed=args.seed).with_settings(args.settings)

    with common.Stopwatch() as fit:
        model = Pipeline(params).fit(train)
    stages = dict(model.stage_seconds)
    model.save(model_dir)
    del model

    loaded = Pipeline.load(model_dir)
    with common.Stopwatch() as prepare:
        for plt in loaded.trees:  # part of loading, as the peers' runners time it (PECOS: is_predict_only)
            plt.prepare_search()
    with common.Stopwatch() as pred:
        ids, scores = loaded.predict_topk(test.X, k=args.k, beam=args.beam, threads=args.threads)
    if args.dev:
        dev = read_xc(args.dev, n_features=train.n_features, n_labels=train.n_labels, threads=args.threads)
        common.write_dev_predictions(args.out, *loaded.predict_topk(dev.X, k=args.k, beam=args.beam,
                                                                   threads=args.threads))
    common.write_outputs(
        args.out, ids, scores, fit.seconds, pred.seconds, model_dir,
        settings={"system": "xmc", "threads": args.threads, "k": args.k, "beam": args.beam,
                  "set": args.settings, "params": params.to_dict(), "stage_seconds": stages,
                  "tree_seconds": stages.get("tree"), "prepare_search_seconds": prepare.seconds},
    )


if __name__ == "__main__":
    main()
