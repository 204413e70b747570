"""Where a tree search loses the true labels: after each level of the label tree, the share of the test
set's (document, true label) pairs whose ancestor at that level is still inside the beam
(:mod:`xmc.search.recall`), for the linear PLT and, given a trained model directory, AttentionXML, on the
same tree.

The tree is the given AttentionXML model's, or else one built as `xmc train --model attentionxml` builds it
(PIFA over TF-IDF of the texts, branching factor 16, at most 8 labels per leaf); the linear PLT is trained
on it with its default params.
The last column, "scored", is the share of positives among the labels the last level scores (the children
of the last beam): a bound on the recall of the final ranking. Writes
benchmarks/results/beam_recall_{dataset}.{md,json}.

    python benchmarks/beam_recall.py --dataset eurlex57k --beams 10,16,50
    python benchmarks/beam_recall.py --dataset eurlex57k --attentionxml runs/eurlex/ax
    # deep_synthetic.py's 50,000-label corpus, and AttentionXML over its tree as deep_synthetic.py trains it
    python benchmarks/deep_synthetic.py --models attentionxml --model-dir runs/synthetic
    python benchmarks/beam_recall.py --dataset synthetic50k --attentionxml runs/synthetic/attentionxml
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def splits(args):
    from xmc.data import TextData, load_corpus
    from xmc.datasets.synthetic import SyntheticParams, make_text_corpus

    if args.dataset == "eurlex57k":
        folder = args.data / "eurlex57k"
        return load_corpus(folder / "train.jsonl.gz"), load_corpus(folder / "test.jsonl.gz")
    # benchmarks/deep_synthetic.py's defaults
    c = make_text_corpus(SyntheticParams(n_labels=50000, n_train=30000, n_test=3000, n_features=50000, seed=0))
    return TextData(c.train_texts, c.train_labels), TextData(c.test_texts, c.test_labels)


def attentionxml_tree(train, threads: int):
    from xmc.data import LabelVocab
    from xmc.models.attentionxml import AttentionXMLParams, build_tree_from_texts

    params = AttentionXMLParams()
    params = params.with_values({"tree.threads": threads})
    vocab = LabelVocab().fit(train.labels)
    return build_tree_from_texts(train.texts, vocab.encode(train.labels), params), vocab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["eurlex57k", "synthetic50k"], default="eurlex57k")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("XMC_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--beams", default="10,16,50")
    ap.add_argument("--attentionxml", type=Path, help="a trained AttentionXML model directory on this dataset")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()

    from xmc.linear import PLTParams
    from xmc.linear.pipeline import Pipeline
    from xmc.metrics import recall_at_k
    from xmc.search.recall import beam_recall, plt_level_beams

    train, test = splits(args)
    deep = None
    if args.attentionxml:
        from xmc.registry import load_model

        deep = load_model(args.attentionxml)
        if getattr(deep, "over_candidates", False):
            raise SystemExit(f"{args.attentionxml}: this AttentionXML scores another model's candidates, not its "
                             "tree; train it with --set candidates=null")
        tree, vocab = deep.tree, deep.vocab
    else:
        t0 = time.perf_counter()
        tree, vocab = attentionxml_tree(train, args.threads)
        print(f"{tree} in {time.perf_counter() - t0:.1f} s", flush=True)
    linear = Pipeline(PLTParams(threads=args.threads)).fit(train, tree=tree)
    if linear.vocab != vocab:
        raise SystemExit("the linear pipeline numbered the labels otherwise than the tree")
    Y = linear.labels(test)
    X = linear.model._check_features(linear.features(test))
    rows: List[Dict] = []
    for beam in map(int, args.beams.split(",")):
        levels = plt_level_beams(tree, linear.model.weights, X, beam, linear.params.resolved_activation)
        ids, _ = linear.predict_topk(test, k=5, beam=beam)
        rows.append({"model": "linear PLT", "beam": beam, "levels": beam_recall(tree, Y, levels),
                     "R@5": recall_at_k(Y, ids, 5)})
        print(json.dumps(rows[-1]), flush=True)
    if deep is not None:
        for beam in map(int, args.beams.split(",")):
            ids, _ = deep.predict_topk(test, k=5, beam=beam)
            rows.append({"model": "AttentionXML", "beam": beam,
                         "levels": beam_recall(tree, Y, deep.level_beams(test, beam)),
                         "R@5": recall_at_k(Y, ids, 5)})
            print(json.dumps(rows[-1]), flush=True)
    sizes = [tree.level_size(level) for level in range(1, tree.depth + 1)]
    header = [f"level {level} ({size:,} nodes)" for level, size in enumerate(sizes[:-1], start=1)]
    lines = [f"# Positives kept by the beam, level by level ({args.dataset})", "",
             f"The test set's {Y.nnz:,} (document, true label) pairs; a pair is kept at a level when its label's "
             f"ancestor there is in the beam. Tree: {tree}. `scored`: among the labels the last level scores; "
             "R@5: in the final top 5.", "",
             "| model | beam | " + " | ".join(header) + " | scored | R@5 |",
             "|---|---|" + "---|" * (len(header) + 2)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['beam']} | " + " | ".join(f"{v * 100:.2f}" for v in r["levels"])
                     + f" | {r['R@5'] * 100:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"beam_recall_{args.dataset}.json").write_text(json.dumps(
        {"tree_level_sizes": sizes, "n_positives": int(Y.nnz), "rows": rows}, indent=2) + "\n")
    (args.out / f"beam_recall_{args.dataset}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
