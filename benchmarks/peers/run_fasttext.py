"""fastText runner (the ``fasttext-wheel`` build of fastText 0.9.2), run with the peers' interpreter.

Unlike the other runners it reads raw text: ``--train``, ``--test`` and ``--dev`` are fastText files
(``__label__ID ... text`` per line, written by benchmarks/eurlex57k.py, IDs being the XC files' label
ids). Settings are fastText's multi-label tutorial's (fasttext.cc, "Multi-label classification"):
``loss='ova'`` (one independent binary classifier per label), ``lr=0.5``, ``epoch=25``,
``wordNgrams=2``, ``bucket=200000``, ``dim=50``; ``thread`` = --threads. Prediction is
``model.predict(lines, k=K, threshold=0.0)`` on all test lines at once, the documented batch call.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

LABEL = "__label__"


def texts_of(path: str):
    """The text part of each line (what follows the labels)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = line.split()
            out.append(" ".join(w for w in words if not w.startswith(LABEL)))
    return out


def topk(model, lines, k):
    labels, probs = model.predict(lines, k=k, threshold=0.0)
    rows = [[(int(name[len(LABEL):]), float(p)) for name, p in zip(ls, ps)] for ls, ps in zip(labels, probs)]
    return common.topk_from_rows(rows, k)


def main() -> None:
    args = common.runner_args(__doc__.splitlines()[0], extra=[("--seed", dict(type=int, default=0))])
    common.set_thread_env(args.threads)
    import fasttext

    settings = dict(loss="ova", lr=0.5, epoch=25, wordNgrams=2, bucket=200000, dim=50, thread=args.threads,
                    seed=args.seed, verbose=0)
    with common.Stopwatch() as train:
        model = fasttext.train_supervised(input=args.train, **settings)
    model_dir = os.path.join(args.out, "model")
    os.makedirs(model_dir, exist_ok=True)
    model.save_model(os.path.join(model_dir, "model.bin"))
    del model
    loaded = fasttext.load_model(os.path.join(model_dir, "model.bin"))
    lines = texts_of(args.test)
    with common.Stopwatch() as pred:
        ids, scores = topk(loaded, lines, args.k)
    if args.dev:
        common.write_dev_predictions(args.out, *topk(loaded, texts_of(args.dev), args.k))
    common.write_outputs(args.out, ids, scores, train.seconds, pred.seconds, model_dir,
                         settings={"system": "fasttext", **settings, "predict": "model.predict(all lines, k)"})


if __name__ == "__main__":
    main()
