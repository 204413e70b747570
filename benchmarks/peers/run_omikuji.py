"""omikuji runner with Parabel settings, run with the peers' interpreter.

omikuji's README reproduces Parabel with its default hyper-parameters
(``Model.default_hyper_param()``: balanced 2-means clustering, min_branch_size
100, max_depth 20, hinge loss, linear.c 1, eps 0.1, weight threshold 0.1,
3 trees, as Parabel's own default), which we keep; ``--n-trees`` overrides the
tree count (1 is the single-tree PLT that xmc trains).

Training calls the same two library functions ``Model.train_on_data`` calls
(load the XC file, then train), so only the training is timed. The Python
binding has no batch prediction: its documented way is ``model.predict(pairs,
beam_size, top_k)`` per document after ``densify_weights(0.05)`` (the README's
"trade memory for prediction speed" step; also timed outside prediction, as
part of loading). cffi releases the GIL inside the native call, so documents
are split over T Python threads, each calling ``predict``; the rayon pool is
sized 1 per call, so T threads use T cores and no more.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402


def main() -> None:
    args = common.runner_args(
        __doc__.splitlines()[0],
        extra=[("--n-trees", dict(type=int, default=3)),
               ("--densify", dict(type=float, default=0.05, help="max_sparse_density; 0 to skip"))],
    )
    common.set_thread_env(args.threads)
    import omikuji
    from omikuji import ffi, lib

    Xt, _ = common.read_xc(args.test)
    hp = omikuji.Model.default_hyper_param()
    hp.n_trees = args.n_trees
    hp.cluster_balanced = True
    hp.cluster_k = 2
    hp.linear_loss_type = omikuji.LossType.HINGE.value
    model_dir = os.path.join(args.out, "model")

    pool = omikuji._ThreadPoolHandle(args.threads)
    dataset = lib.load_omikuji_data_set(ffi.new("char[]", args.train.encode()), pool.ptr)
    if dataset == ffi.NULL:
        raise SystemExit(f"omikuji could not load {args.train}")
    dataset = ffi.gc(dataset, lib.free_omikuji_data_set)
    with common.Stopwatch() as train:
        model_ptr = lib.train_omikuji_model(dataset, hp, pool.ptr)
    if model_ptr == ffi.NULL:
        raise SystemExit("omikuji training failed")
    omikuji.Model(model_ptr, pool).save(model_dir)
    del dataset

    model = omikuji.Model.load(model_dir)
    model.init_prediction_thread_pool(1)
    if args.densify > 0:
        model.densify_weights(args.densify, n_threads=args.threads)
    docs = as_pairs(Xt)
    with common.Stopwatch() as pred:
        rows = predict_all(model, docs, args)
    ids, scores = common.topk_from_rows(rows, args.k)
    if args.dev:
        Xd, _ = common.read_xc(args.dev)
        common.write_dev_predictions(args.out, *common.topk_from_rows(predict_all(model, as_pairs(Xd), args), args.k))
    common.write_outputs(
        args.out, ids, scores, train.seconds, pred.seconds, model_dir,
        settings={
            "system": "omikuji", "threads": args.threads, "beam_size": args.beam, "top_k": args.k,
            "n_trees": args.n_trees, "cluster_balanced": True, "cluster_k": 2, "loss": "hinge",
            "hyper_param": "Model.default_hyper_param() (Parabel defaults)",
            "densify_weights": args.densify, "predict": "per-document predict over T Python threads",
        },
    )


def as_pairs(X):
    return [list(zip(X.indices[X.indptr[i]:X.indptr[i + 1]].tolist(), X.data[X.indptr[i]:X.indptr[i + 1]].tolist()))
            for i in range(X.shape[0])]


def predict_all(model, docs, args):
    """Every document's (label, score) list, the documents split over args.threads Python threads."""
    def predict_range(bounds):
        lo, hi = bounds
        return [model.predict(docs[i], beam_size=args.beam, top_k=args.k) for i in range(lo, hi)]

    n = len(docs)
    step = (n + args.threads - 1) // max(args.threads, 1)
    chunks = [(lo, min(lo + step, n)) for lo in range(0, n, max(step, 1))]
    if args.threads <= 1:
        return predict_range((0, n))
    with ThreadPoolExecutor(max_workers=args.threads) as ex:
        return [r for part in ex.map(predict_range, chunks) for r in part]


if __name__ == "__main__":
    main()
