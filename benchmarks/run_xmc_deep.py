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

With ``--reuse DIR`` (the LDGN ablation: several graphs on one candidate model) the candidate model and
LDGN's out-of-fold proposals are kept in DIR, keyed by the linear settings, the seed and the folds, and
loaded by the next run with the same key instead of being computed again. Both are deterministic given
that key, so the model is the same; the row's training time still counts them, at the seconds they took
when they were computed (recorded beside them).

    python benchmarks/run_xmc_deep.py --data ../shared/data/eurlex57k --out runs/ldgn --threads 2
"""
from __future__ import annotations

import argparse
import hashlib
import json
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
    ap.add_argument("--reuse", type=Path, default=None,
                    help="folder that keeps the candidate model and out-of-fold proposals for later runs")
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

    linear_params = LinearParams(threads=args.threads, seed=args.seed,
                                 tfidf=TfidfParams(ngram_range=(1, 2), min_df=2)).with_settings(args.linear_set)
    reuse = Reuse(args.reuse, {"data": str(args.data.resolve()), "linear": linear_params.to_dict()})
    linear, linear_seconds = reuse.candidate_model(lambda: Pipeline(linear_params).fit(train, log=log), Pipeline)
    log(f"linear PLT (candidates) trained in {linear_seconds:.1f} s")
    model = LDGN(params, candidates=linear)
    reused_seconds = reuse.out_of_fold(model, params)
    with common.Stopwatch() as deep_clock:
        model.fit(train, valid=dev, progress=False, log=log)
    deep_seconds = deep_clock.seconds + reused_seconds()
    train_seconds = linear_seconds + deep_seconds
    model_dir = args.out / "model"
    model.save(model_dir)
    for name, system, configure in systems(model):
        configure()
        write_row(args, args.out / name, system, model, model_dir, dev, test, train_seconds, {
            "candidate_weight": model.candidate_weight, "params": params.to_dict(),
            "linear_params": linear_params.to_dict(), "linear_train_seconds": linear_seconds,
            "deep_train_seconds": deep_seconds, "reused": reuse.used, "log": log_lines})
    lead = linear_params.tfidf.lead_tokens
    extras = (f" + lead block ({lead} tokens)" if lead else "") + \
        (" + re-ranker" if linear.reranker is not None else "") + \
        (f" + {linear.neighbour_params.k} neighbours" if linear.neighbours is not None else "")
    write_row(args, args.out / "candidates", f"xmc linear PLT{extras} (LDGN's candidate model)", linear,
              model_dir / "candidates", dev, test, linear_seconds, {"linear_params": linear_params.to_dict()})


class Reuse:
    """The candidate model and the out-of-fold proposals kept in a folder between runs of one key (see the
    module docstring); with no folder every step is computed."""

    def __init__(self, folder, key: dict) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.key = key
        self.used = []  # the steps loaded from the folder

    def _path(self, what: str, extra: dict) -> Path:
        digest = hashlib.sha256(json.dumps({**self.key, **extra}, sort_keys=True).encode()).hexdigest()[:16]
        return self.folder / f"{what}-{digest}"

    def candidate_model(self, fit, kind):
        if self.folder is None:
            with common.Stopwatch() as clock:
                model = fit()
            return model, clock.seconds
        path = self._path("candidates", {})
        if (path / "seconds.json").is_file():
            self.used.append("candidate model")
            return kind.load(path / "model"), json.loads((path / "seconds.json").read_text())["seconds"]
        with common.Stopwatch() as clock:
            model = fit()
        model.save(path / "model")
        (path / "seconds.json").write_text(json.dumps({"seconds": clock.seconds, "key": self.key}))
        return model, clock.seconds

    def out_of_fold(self, model, params):
        """Wrap ``model``'s out-of-fold proposals with the folder; returns a function giving the seconds of the
        loaded ones (0 when computed in this run, where the clock around fit counts them)."""
        seconds = [0.0]
        if self.folder is None or not params.candidate_input:
            return lambda: seconds[0]
        import numpy as np

        path = self._path("out-of-fold", {"folds": params.candidate_folds, "seed": params.training.seed,
                                         "n_candidates": params.n_candidates})
        compute = model._out_of_fold_proposals

        def cached(train):
            if (path / "proposals.npz").is_file():
                self.used.append("out-of-fold proposals")
                seconds[0] = json.loads((path / "seconds.json").read_text())["seconds"]
                with np.load(path / "proposals.npz") as z:
                    return z["ids"], z["scores"]
            with common.Stopwatch() as clock:
                ids, scores = compute(train)
            path.mkdir(parents=True, exist_ok=True)
            np.savez(path / "proposals.npz", ids=ids, scores=scores)
            (path / "seconds.json").write_text(json.dumps({"seconds": clock.seconds}))
            return ids, scores

        model._out_of_fold_proposals = cached
        return lambda: seconds[0]


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
