"""xmc's deep runner for benchmarks/eurlex57k.py, run with xmc's interpreter: a deep model over the linear
PLT's candidates, trained from raw text, everything timed (TF-IDF, linear PLT, tokens, word vectors, epochs).

The linear PLT (uni+bigram sublinear TF-IDF with min_df 2, the peers' features; default PLT params) is
trained first, as ``xmc train --model linear --set 'tfidf.ngram_range=[1,2]' --set tfidf.min_df=2``
does; LDGN then trains on its top ``n_candidates`` labels per document (``LDGN(params,
candidates=linear)``, as ``xmc train --model ldgn --set candidates=DIR`` does), with ``candidate_weight``
null: the blend weight of the two models' scores is chosen on the dev documents once training ends.

Writes three systems under --out: ``blend/`` (the model as trained: the weight chosen on dev, or with
``--set candidate_input=true`` LDGN stacked on the PLT's out-of-fold scores), ``alone/`` (LDGN's own
ranking of the candidates: weight 0 and, stacked, without the PLT's log-odds) and ``candidates/`` (the
candidate model alone, e.g. with ``--linear-set neighbours.k=10``), each with predictions.npz,
dev_predictions.npz and result.json (its ``settings.system`` names the row) as the other runners write
them. The first two share the training time; the third's is the candidate model's.

    python benchmarks/run_xmc_deep.py --data ../shared/data/eurlex57k --out runs/ldgn --threads 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import common  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with train/dev/test.jsonl.gz")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                    help="an LDGN params field, as xmc train --set (repeatable)")
    ap.add_argument("--linear-set", action="append", default=[], metavar="FIELD=JSON",
                    help="a linear params field of the candidate model, e.g. neighbours.k=10 (repeatable)")
    args = ap.parse_args()
    common.set_thread_env(args.threads)
    from xmc.data import TfidfParams, load_corpus
    from xmc.linear import LinearParams
    from xmc.linear.pipeline import Pipeline
    from xmc.models.ldgn import LDGN, LDGNParams

    train, dev, test = (load_corpus(args.data / f"{split}.jsonl.gz") for split in ("train", "dev", "test"))
    params = LDGNParams().with_values({"candidate_weight": None, "training.threads": args.threads,
                                       "training.seed": args.seed, "embedding.seed": args.seed,
                                       "embedding.threads": args.threads}).with_settings(args.set)
    log_lines = []

    def log(line: str) -> None:
        log_lines.append(line)
        print(line, flush=True)

    with common.Stopwatch() as linear_clock:
        linear_params = LinearParams(threads=args.threads, seed=args.seed,
                                     tfidf=TfidfParams(ngram_range=(1, 2), min_df=2)).with_settings(args.linear_set)
        linear = Pipeline(linear_params).fit(train, log=log)
    log(f"linear PLT (candidates) trained in {linear_clock.seconds:.1f} s")
    with common.Stopwatch() as deep_clock:
        model = LDGN(params, candidates=linear).fit(train, valid=dev, progress=False, log=log)
    train_seconds = linear_clock.seconds + deep_clock.seconds
    model_dir = args.out / "model"
    model.save(model_dir)
    for name, system, configure in systems(model):
        configure()
        write_row(args, args.out / name, system, model, model_dir, dev, test, train_seconds, {
            "candidate_weight": model.candidate_weight, "params": params.to_dict(),
            "linear_params": linear_params.to_dict(), "linear_train_seconds": linear_clock.seconds,
            "deep_train_seconds": deep_clock.seconds, "log": log_lines})
    neighbours = f" + {linear.neighbour_params.k} neighbours" if linear.neighbours is not None else ""
    write_row(args, args.out / "candidates", f"xmc linear PLT{neighbours} (LDGN's candidate model)", linear,
              model_dir / "candidates", dev, test, linear_clock.seconds, {"linear_params": linear_params.to_dict()})


def write_row(args, out: Path, system: str, model, model_dir: Path, dev, test, train_seconds: float,
              settings: dict) -> None:
    """One system's predictions on test (timed) and dev, with its label names so the benchmark maps the ids
    into its own label ids."""
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    ids, scores = model.predict_topk(test, k=args.k)
    predict_seconds = time.perf_counter() - start
    common.write_dev_predictions(str(out), *model.predict_topk(dev, k=args.k))
    np.save(out / "label_names.npy", np.array(model.vocab.labels, dtype=str))
    common.write_outputs(str(out), ids, scores, train_seconds, predict_seconds, str(model_dir),
                         settings={"system": system, "threads": args.threads, **settings})

def systems(model):
    """(folder, row name, how to set the model up) of the two rows a run reports: the model as trained
    (``blend``) and LDGN's own ranking of the candidates (``alone``)."""
    import torch

    chosen = model.candidate_weight
    scale = model.network.candidate_scale

    def as_trained() -> None:
        model.candidate_weight = chosen

    def ldgn_alone() -> None:
        model.candidate_weight = 0.0
        if scale is not None:  # the stacked model's own part, without the candidate model's log-odds
            with torch.no_grad():
                scale.zero_()

    if scale is not None:
        return [("blend", "xmc LDGN stacked on linear", as_trained),
                ("alone", "xmc LDGN part of the stacked model alone", ldgn_alone)]
    return [("blend", "xmc LDGN + linear", as_trained), ("alone", "xmc LDGN", ldgn_alone)]

if __name__ == "__main__":
    main()
