"""PECOS XR-Linear runner (libpecos), run with the peers' interpreter.

Follows PECOS's README quick start: PIFA label embedding, hierarchical
k-means indexer (``Indexer.gen``), ``XLinearModel.train(X, Y, C=chain)``,
then ``XLinearModel.load(path, is_predict_only=True)`` and
``predict(X, beam_size=B, only_topk=K)``. All library defaults otherwise
(nr_splits=16, max_leaf_size=100, L2R_L2LOSS_SVC_DUAL, Cp=Cn=1, threshold 0.1,
post-processor l3-hinge). Rows are L2-normalized first, as PECOS expects
TF-IDF-style unit-norm features. Clustering is part of the timed training,
as xmc's and the other peers' tree building is.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402


def main() -> None:
    args = common.runner_args(
        __doc__.splitlines()[0],
        extra=[("--no-normalize", dict(action="store_true", help="feed raw feature values"))],
    )
    common.set_thread_env(args.threads)
    import numpy as np
    from pecos.xmc import Indexer, LabelEmbeddingFactory
    from pecos.xmc.xlinear.model import XLinearModel

    X, Y = common.read_xc(args.train)
    Xt, _ = common.read_xc(args.test)
    if not args.no_normalize:
        X = common.l2_normalize_rows(X)
        Xt = common.l2_normalize_rows(Xt)
    Y = Y.tocsc().astype(np.float32)
    model_dir = os.path.join(args.out, "model")

    with common.Stopwatch() as train:
        label_feat = LabelEmbeddingFactory.create(Y, X, method="pifa", threads=args.threads)
        chain = Indexer.gen(label_feat, indexer_type="hierarchicalkmeans", threads=args.threads)
        model = XLinearModel.train(X, Y, C=chain, threads=args.threads)
    model.save(model_dir)
    del model

    loaded = XLinearModel.load(model_dir, is_predict_only=True)
    with common.Stopwatch() as pred:
        P = loaded.predict(Xt, beam_size=args.beam, only_topk=args.k, threads=args.threads)
    ids, scores = common.topk_from_csr(P, args.k)
    if args.dev:
        Xd, _ = common.read_xc(args.dev)
        Xd = Xd if args.no_normalize else common.l2_normalize_rows(Xd)
        common.write_dev_predictions(args.out, *common.topk_from_csr(
            loaded.predict(Xd, beam_size=args.beam, only_topk=args.k, threads=args.threads), args.k))
    common.write_outputs(
        args.out, ids, scores, train.seconds, pred.seconds, model_dir,
        settings={
            "system": "pecos", "threads": args.threads, "beam_size": args.beam, "only_topk": args.k,
            "label_embedding": "pifa", "indexer": "hierarchicalkmeans (defaults: nr_splits=16, max_leaf_size=100)",
            "solver": "L2R_L2LOSS_SVC_DUAL (default)", "l2_normalize_rows": not args.no_normalize,
            "load": "is_predict_only=True",
        },
    )


if __name__ == "__main__":
    main()
