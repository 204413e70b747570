"""The ``xmc`` command line: it parses arguments and calls the library, nothing more."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import click

from .output import echo_summary, quiet, quiet_option, say

FORMATS = click.Choice(["auto", "xc", "fasttext", "jsonl", "text"])
THREADS_HELP = "Worker threads (0 = all cores)."


def _store_limit(ctx: click.Context, param: click.Parameter, value: Optional[int]) -> None:
    ctx.meta.setdefault("xmc_limits", {})[param.name] = value


def _limit_options(command):
    """--max-line-bytes / --max-labels-per-doc, options of the group (``xmc --max-line-bytes N train ...``)
    handed to every reader through the click context."""
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
    say(f"read {path}: {_describe(corpus)} in {time.perf_counter() - t:.2f} s")
    return corpus


def _describe(corpus) -> str:
    from xmc.data import XCData

    if isinstance(corpus, XCData):
        return f"{corpus.X.shape[0]:,} documents, {corpus.n_features:,} features, {corpus.n_labels:,} labels"
    return f"{len(corpus.texts):,} text documents"


@contextmanager
def _stage(message: str) -> Iterator[None]:
    """A long step: its progress (:mod:`xmc.utils.progress`), then one line with its time."""
    from xmc.utils.progress import progress

    t = time.perf_counter()
    with progress(message, enabled=not quiet()):
        yield
    say(f"{message}: {time.perf_counter() - t:.2f} s")


def _parse_ks(ks: str) -> Sequence[int]:
    """-k of evaluate: one number K (1, 3, 5 up to K, and K), or the cut-offs themselves (1,3,5,10)."""
    from xmc.metrics import report_cutoffs

    try:
        values = sorted({int(k) for k in ks.split(",") if k.strip()})
    except ValueError:
        raise click.BadParameter(f"expected a number such as 5, or comma-separated numbers such as 1,3,5; "
                                 f"got {ks!r}")
    if not values or values[0] < 1:
        raise click.BadParameter(f"expected positive numbers such as 5 or 1,3,5; got {ks!r}")
    return report_cutoffs(values[0]) if "," not in ks else values


def _metrics_line(metrics: dict) -> str:
    """The metrics as percentages (the library's are fractions), one line."""
    return "in %: " + "  ".join(f"{name}={value * 100:.2f}" for name, value in metrics.items())


class _DataErrors(click.Group):
    """Turns the library's input errors into one clear line and exit code 2, not a traceback."""

    def invoke(self, ctx):
        import warnings

        from xmc.data import DataFormatError
        from xmc.registry import MissingDependency
        from xmc.text.minilm import MiniLMMissing
        from xmc.utils.modeldir import ModelFormatError

        def show(message, category, *args, **kwargs) -> None:
            click.echo(f"warning: {message}", err=True)

        try:
            with warnings.catch_warnings():
                warnings.showwarning = show  # counted skips read as one line each, like the errors
                return super().invoke(ctx)
        except (DataFormatError, ModelFormatError, FileNotFoundError, ValueError, MiniLMMissing,
                MissingDependency) as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=_DataErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xmc")
@_limit_options
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
@quiet_option
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
        say(f"wrote {p}")
    echo_summary(start)


@cli.command("build-tree")
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
@quiet_option
def build_tree(train_path: str, labels_file: Optional[str], fmt: str, out_dir: str, branching_factor: int,
               max_leaf_size: int, height: Optional[int], seed: int, threads: int) -> None:
    """Cluster the labels into a tree (PIFA embeddings, balanced k-means).

    \b
    Example:
      xmc build-tree --train demo/train.txt --out demo/tree --branching-factor 16
      xmc train --train demo/train.txt --tree demo/tree --model-dir demo/model
    """
    from xmc.linear.pipeline import Pipeline
    from xmc.tree import TreeParams, build_label_tree

    start = time.perf_counter()
    corpus = _load(train_path, fmt, labels_file)
    X, Y = Pipeline().prepare(corpus)
    params = TreeParams(branching_factor=branching_factor, max_leaf_size=max_leaf_size, height=height,
                        seed=seed, threads=threads)
    with _stage(f"PIFA embeddings and balanced hierarchical k-means of {Y.shape[1]:,} labels"):
        tree = build_label_tree(X, Y, params)
    tree.save(Path(out_dir))
    say(f"{tree} saved to {out_dir}")
    echo_summary(start)


class ModelKind(click.ParamType):
    """A kind of xmc.registry, read when the command runs: a model registered later (a test's) is accepted."""

    name = "kind"

    def get_metavar(self, param, ctx=None) -> str:
        from xmc.registry import MODELS

        return "[" + "|".join(MODELS) + "]"

    def convert(self, value, param, ctx):
        from xmc.registry import MODELS

        if value not in MODELS:
            self.fail(f"{value!r} is not one of {', '.join(MODELS)}", param, ctx)
        return value


def _model_help() -> str:
    from xmc.registry import MODELS

    return "Model kind (see `xmc params KIND`). " + "; ".join(f"{k}: {e.summary}" for k, e in MODELS.items()) + "."


@cli.command("params")
@click.argument("kind", type=ModelKind())
@click.option("--explain", is_flag=True, help="One line per field (path, default, help) instead of JSON.")
def params_command(kind: str, explain: bool) -> None:
    """Print a model kind's params with their defaults: edit them and pass the file to `xmc train --params`.

    \b
    Examples:
      xmc params attentionxml > ax.json
      xmc train --model attentionxml --params ax.json --train train.jsonl --valid dev.jsonl --model-dir m
      xmc params linear --explain
    """
    import json

    from xmc.registry import get

    params_class = get(kind).params_class()
    if not explain:
        click.echo(json.dumps(params_class.skeleton(), indent=2))
        return
    rows = params_class.describe()
    width = max(len(path) for path, _, _ in rows)
    for path, default, help_text in rows:
        click.echo(f"{path:<{width}}  {json.dumps(default):<12}  {help_text}")


# The flags every model kind may use; each sets the fields its params list for it (Params.flag_paths).
COMMON_FLAGS = ("epochs", "seed", "threads", "device")


@cli.command()
@click.option("--train", "train_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Training data: XC, fastText, JSON Lines, or texts with --labels-file.")
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False), help="Labels file for --format text.")
@click.option("--format", "fmt", type=FORMATS, default="auto", show_default=True)
@click.option("--valid", "valid_path", type=click.Path(exists=True, dir_okay=False),
              help="Held-out file (same format): early stopping for the deep models, evaluated after training.")
@click.option("--model", default="linear", show_default=True, type=ModelKind(), help=_model_help())
@click.option("--model-dir", required=True, type=click.Path(file_okay=False),
              help="Where the model is saved (checkpoints go to MODEL_DIR/checkpoint while it trains).")
@click.option("--tree", "tree_dir", type=click.Path(exists=True, file_okay=False),
              help="A tree from `xmc build-tree` (linear, attentionxml, lightattention); built here when not given.")
@click.option("--params", "params_file", type=click.Path(exists=True, dir_okay=False),
              help="The model's params as JSON (`xmc params KIND` prints them with their defaults).")
@click.option("--set", "settings", multiple=True, metavar="FIELD=VALUE",
              help="Set one params field (repeatable): a dotted path (training.lr=3e-3) or a field name found "
                   "once in the params (C=1, hidden=256).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="[deep] Most epochs (training.epochs).")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Seed of everything random: initial weights, batches, word vectors, tree.")
@click.option("--threads", type=click.IntRange(min=0), default=None, help=THREADS_HELP)
@click.option("--device", default=None, help="[deep] auto (the GPU when torch sees one), cpu, cuda or cuda:N.")
@click.option("--resume", is_flag=True,
              help="Continue from MODEL_DIR/checkpoint: run the same command again with --resume (other data or "
                   "params are refused). Without a checkpoint, training starts from the beginning.")
@click.option("--overwrite", is_flag=True,
              help="Train into a MODEL_DIR that is not empty (an earlier model, a checkpoint): the new model "
                   "replaces the old one. Without it such a MODEL_DIR is refused.")
@quiet_option
def train(train_path: str, labels_file: Optional[str], fmt: str, valid_path: Optional[str], model: str,
          model_dir: str, tree_dir: Optional[str], params_file: Optional[str], settings: Sequence[str],
          resume: bool, overwrite: bool, **flags) -> None:
    """Train a model and save it to --model-dir.

    A model's settings are its params (`xmc params KIND` prints them): give a
    file with --params, change fields with --set. A flag or field the chosen
    model does not use is an error.

    \b
    Examples:
      xmc train --train demo/train.txt --model-dir demo/model
      xmc train --train demo/train.txt --model-dir m --set C=1 --set tree.max_leaf_size=50 --threads 2
      xmc train --train texts.txt --labels-file labels.txt --format text --model-dir m
      xmc train --model attentionxml --train reuters/train.jsonl --valid reuters/test.jsonl --model-dir m
      xmc train --model lightattention --train go/train.jsonl --valid go/dev.jsonl --model-dir m --epochs 10
      xmc train --model ldgn --set graph=static --train reuters/train.jsonl --model-dir m
      xmc train --model ldgn --set candidates=m_linear --train big/train.jsonl --model-dir m
      xmc train --model laco --set aux_tasks=plcp --set training.lr=1e-4 --train go/train.jsonl --model-dir m
      xmc train --model ensemble --set model=attentionxml --set n_models=3 --train t.jsonl --model-dir m
      xmc params attentionxml > ax.json    # edit, then:
      xmc train --model attentionxml --params ax.json --train t.jsonl --valid v.jsonl --model-dir m

    \b
    Stopping and resuming: Ctrl-C or SIGTERM (a job's time limit) checkpoints
    the current step and, for a deep model, saves the best weights validated so
    far as the model in MODEL_DIR (predict with it at once); a crash leaves
    MODEL_DIR/checkpoint, which `xmc save-best --model-dir MODEL_DIR` turns into
    that model. Run the same command with --resume added to continue: it ends
    with the model an uninterrupted run makes.
    """
    from xmc.registry import get
    from xmc.training import checkpoint as ckpt
    from xmc.training import distributed
    from xmc.training.checkpoint import TrainingInterrupted  # torch-free: the linear model must not need torch
    from xmc.utils.resources import StageTimes

    entry = get(model)
    params = _train_params(entry, params_file, settings, flags)
    if tree_dir and not hasattr(params, "tree"):
        raise click.BadParameter(f"--model {model} builds no label tree", param_hint="--tree")
    _check_model_dir_is_free(Path(model_dir), resume, overwrite)
    start = time.perf_counter()
    checkpoint = Path(model_dir) / "checkpoint"
    distributed.init()
    if not distributed.is_main():
        # Under torchrun, rank 0 alone handles the checkpoint folder and writes the model; it says go first.
        if _go_ahead(None):
            _fit(entry, params, train_path, labels_file, fmt, valid_path, tree_dir, checkpoint, resume)
            distributed.barrier()
        return
    if resume:
        ckpt.reclaim(checkpoint)
        if not ckpt.exists(checkpoint):
            if (Path(model_dir) / "xmc.json").is_file():
                say(f"{model_dir} holds a finished model and {checkpoint} no checkpoint: nothing to resume")
                _go_ahead(False)
                return
            say(f"no checkpoint in {checkpoint}: training from the beginning")
    elif ckpt.exists(checkpoint):
        say(f"{checkpoint} holds a checkpoint of an earlier run; starting over (add --resume to continue it)")
    _go_ahead(True)
    stages = StageTimes()
    try:
        trained, valid = _fit(entry, params, train_path, labels_file, fmt, valid_path, tree_dir, checkpoint, resume,
                              stages)
    except (TrainingInterrupted, KeyboardInterrupt):
        click.echo(f"\ninterrupted: {_save_interrupted(entry, checkpoint, Path(model_dir))}", err=True)
        sys.exit(130)
    with stages.stage("saving"):
        _save_beside_checkpoint(trained, Path(model_dir), checkpoint)
        ckpt.remove_checkpoint(checkpoint)
    distributed.barrier()
    say(f"model saved to {model_dir} ({trained.n_labels:,} labels)")
    threads = flags.get("threads") or 0
    summary = ""
    if valid:
        with stages.stage("validation"):
            summary = _metrics_line(_evaluate_model(trained, valid, ks=(1, 3, 5), threads=threads))
    echo_summary(start, summary, stages)


def _check_model_dir_is_free(model_dir: Path, resume: bool, overwrite: bool) -> None:
    """A model directory that holds anything (an earlier model, a checkpoint, other files) is trained into only
    with --overwrite, or with --resume, which continues what it holds."""
    if resume or overwrite or not model_dir.is_dir():
        return
    entries = sorted(p.name for p in model_dir.iterdir())
    if entries:
        what = "a model" if "xmc.json" in entries else "a checkpoint" if "checkpoint" in entries else \
            f"{len(entries)} entries ({', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''})"
        raise click.BadParameter(f"{model_dir} is not empty: it holds {what}. Add --overwrite to train a new "
                                 f"model into it, or --resume to continue its checkpoint", param_hint="--model-dir")


def _save_beside_checkpoint(model, model_dir: Path, checkpoint: Path) -> None:
    """Save ``model`` to ``model_dir``, whose ``checkpoint`` is set aside meanwhile (a hidden name, outside the
    model's manifest)."""
    from xmc.training import checkpoint as ckpt

    ckpt.set_aside(checkpoint)
    model.save(model_dir)


def _save_interrupted(entry, checkpoint: Path, model_dir: Path) -> str:
    """After Ctrl-C: save a deep model's best weights so far as the model in ``model_dir``, the checkpoint kept
    for --resume. Returns what was done, for the message."""
    from xmc.training import checkpoint as ckpt

    if not ckpt.exists(checkpoint):
        return "no checkpoint was written yet"
    resume = f"checkpoint in {checkpoint}; to continue, run the same command with --resume"
    model_class = entry.model_class()
    if not hasattr(model_class, "from_checkpoint"):
        return resume
    try:
        model, what = model_class.from_checkpoint(checkpoint)
        _save_beside_checkpoint(model, model_dir, checkpoint)
    except ckpt.CheckpointError as e:
        return f"{resume}. No model saved: {e}"
    except KeyboardInterrupt:
        return f"{resume}. No model saved (interrupted again)"
    finally:
        ckpt.reclaim(checkpoint)
    return f"{what} saved as the model in {model_dir} (xmc predict reads it); {resume}"


def _train_params(entry, params_file: Optional[str], settings: Sequence[str], flags: dict):
    """The model's params: defaults, or --params FILE, then --set, then the common flags (last, so they reach
    the fields of what --set chose: an ensemble's member kind)."""
    params_class = entry.params_class()
    params = params_class.load(params_file) if params_file else params_class()
    try:
        params = params.with_settings(settings)
    except (ValueError, TypeError) as e:
        raise click.BadParameter(f"--model {entry.kind}: {e}", param_hint="--set") from None
    values = {}
    for flag in COMMON_FLAGS:
        if flags.get(flag) is None:
            continue
        paths = params.flag_paths(flag)
        if not paths:
            raise click.BadParameter(f"--model {entry.kind} does not use it", param_hint=f"--{flag}")
        values.update({path: flags[flag] for path in paths})
    try:
        return params.with_values(values)
    except (ValueError, TypeError) as e:
        raise click.BadParameter(str(e), param_hint=f"--model {entry.kind}") from None


def _go_ahead(decision: Optional[bool]) -> bool:
    """Rank 0's decision (train or not), on every rank of a torchrun; ``decision`` on rank 0, None elsewhere."""
    import numpy as np

    from xmc.training import distributed

    flag = None if decision is None else {"go": np.array([int(decision)], dtype=np.int64)}
    return bool(distributed.broadcast_arrays(flag, ["go"])["go"][0])


def _fit(entry, params, train_path, labels_file, fmt, valid_path, tree_dir, checkpoint, resume, stages=None):
    """The trained model and the validation corpus; ``stages`` gets the time of each stage (reading, then the
    model's own: featurising, tree, training, ...)."""
    from xmc.data import TextData
    from xmc.tree import LabelTree
    from xmc.utils.resources import StageTimes

    stages = StageTimes() if stages is None else stages
    model_class = entry.model_class()  # a deep model's torch loads (or fails) before any data is read
    with stages.stage("reading"):
        corpus = _load(train_path, fmt, labels_file)
    if entry.needs_torch and not isinstance(corpus, TextData):
        raise ValueError(f"{train_path}: --model {entry.kind} reads raw text, but this file holds sparse "
                         f"features; give it a fastText, JSON Lines or text + labels file, or use --model linear")
    with stages.stage("reading"):
        tree = LabelTree.load(Path(tree_dir)) if tree_dir else None
        # A deep model early-stops on the validation set; the linear one reads it after training, with its features.
        valid = _load(valid_path, fmt, None) if valid_path and entry.needs_torch else None
    fit_time = StageTimes()
    with fit_time.stage("training"):
        trained = model_class(params).fit(corpus, valid=valid, tree=tree, progress=not quiet(), log=say,
                                          checkpoint_dir=checkpoint, resume=resume)
    # A model that times its own stages (featurising, tree, training...) says more than the whole fit.
    stages.add(getattr(trained, "stage_seconds", None) or fit_time)
    if valid_path and valid is None:
        with stages.stage("reading"):
            valid = _load(valid_path, fmt, None, **trained.reader_kwargs())
    return trained, valid


def _evaluate_model(model, corpus, ks, threads: int) -> dict:
    """Metrics of ``model`` on ``corpus``; true labels unseen in training count as misses, as in xmc predict."""
    import scipy.sparse as sp

    from xmc.metrics import evaluate, set_metrics

    truth = model.labels(corpus, unseen="keep")
    ids, _ = model.predict_topk(corpus, k=max(ks), threads=threads)
    metrics = evaluate(truth, ids, ks=ks)
    if hasattr(model, "predict_sets"):  # a model that decodes label sets: the set metrics of its paper
        sets = sp.csr_matrix(model.predict_sets(corpus, threads=threads))
        sets.resize(truth.shape)  # the unseen labels' columns: never predicted
        metrics.update(set_metrics(truth, sets))
    return metrics


@cli.command()
@click.option("--model-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="auto", show_default=True)
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False), help="Labels file for --format text.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Text predictions; the same as .npz beside it (ids, scores, label_names).")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(min=1),
              help="Labels per document; with labelled input, metrics at 1, 3, 5 up to K, and at K.")
@click.option("--beam", default=None, type=int,
              help="Beam width of the tree search (linear default 10; deep models: their top-k, 16).")
@click.option("--batch-size", default=None, type=int,
              help="Documents scored per batch (linear default 65536, deep models 128).")
@click.option("--threads", default=0, show_default=True, help=THREADS_HELP)
@click.option("--chunk-docs", default=None, type=click.IntRange(min=1),
              help="Documents read, scored and written at a time (default 50000): memory stays bounded "
                   "whatever the input's size.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Label sets: the top-k labels whose calibrated probability is at least this (instead of "
                   "the per-label thresholds of `xmc tune-thresholds`, used when the model has them).")
@quiet_option
def predict(model_dir: str, input_path: str, fmt: str, labels_file: Optional[str], out_path: str, k: int,
            beam: Optional[int], batch_size: Optional[int], threads: int, chunk_docs: Optional[int],
            threshold: Optional[float]) -> None:
    """Predict the top-k labels of every document, and label sets with thresholds.

    The input is read, scored and written in chunks of --chunk-docs documents, so a
    corpus larger than memory streams through (an XC file without a header is read
    with the model's feature count).

    \b
    Output (--out FILE): one line per input document, best label first,
      label:score label:score ...
    and FILE with suffix .npz holding `ids` (int32, n x k, -1 = none), `scores`
    (float32) and `label_names` (the model's labels, indexed by id). Both appear
    only when every document is done (an interrupted run leaves the old files).
    When the input carries labels, P@k and nDCG@k are printed for k = 1, 3, 5
    up to -k and for -k itself; true labels unseen in training count as misses,
    as in `xmc evaluate`. Throughput is given end to end (reading and
    featurising included) and for the model alone.

    \b
    Label sets, with --threshold T or a model tuned by `xmc tune-thresholds`:
    the scores are probabilities (a linear model's calibrated by Platt
    scaling), and each line is the set, a '|', then the rest of the top k,
      label:prob label:prob | label:prob ...
    with `in_set` (bool, n x k) in the .npz. The set holds only top-k labels:
    give a -k above the largest set you expect.

    \b
    Examples:
      xmc predict --model-dir demo/model --input demo/test.txt --out demo/pred.txt -k 5 --beam 10
      xmc predict --model-dir m --input go/test.jsonl --out pred.txt -k 10 --threshold 0.4
    """
    from xmc.data.stream import DEFAULT_CHUNK_DOCS
    from xmc.inference import predict_file
    from xmc.registry import load_model
    from xmc.training import distributed
    from xmc.utils.progress import progress

    start = time.perf_counter()
    distributed.init()
    pipe = load_model(Path(model_dir))
    options = {name: value for name, value in (("beam", beam), ("batch_size", batch_size)) if value is not None}
    t = time.perf_counter()
    with progress("predict", unit="doc", enabled=distributed.is_main() and not quiet()) as bar:
        run = predict_file(pipe, input_path, Path(out_path), k=k, format=None if fmt == "auto" else fmt,
                           labels_path=labels_file, chunk_docs=chunk_docs or DEFAULT_CHUNK_DOCS, threads=threads,
                           limits=click.get_current_context().meta.get("xmc_limits", {}), on_batch=bar.update,
                           threshold=threshold, **options)
    if not distributed.is_main():
        return
    txt, npz = run.paths
    ranks = f" on {distributed.world_size()} ranks" if distributed.is_distributed() else ""
    say(f"wrote {txt} and {npz}: {run.n_docs:,} documents{ranks} at "
        f"{run.n_docs / max(time.perf_counter() - t, 1e-9):,.0f} docs/s end to end (reading and featurising "
        f"included), {run.n_docs / max(run.seconds, 1e-9):,.0f} docs/s for the model alone")
    echo_summary(start, _metrics_line(run.metrics) if run.metrics else "")


@cli.command()
@click.option("--predictions", "pred_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Output of `xmc predict` (.txt or .npz).")
@click.option("--truth", "truth_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="File with the true labels (any input format).")
@click.option("--format", "fmt", type=FORMATS, default="auto", show_default=True)
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False), help="Labels file for --format text.")
@click.option("--train", "train_path", type=click.Path(exists=True, dir_okay=False),
              help="Training file: enables the propensity-scored metrics (PSP@k, PSnDCG@k).")
@click.option("-k", "ks", default="5", show_default=True,
              help="Report at 1, 3, 5 up to K, and at K (as xmc predict -k); or a list of cut-offs, 1,3,10.")
@click.option("-A", "prop_a", default=0.55, show_default=True, help="Propensity model parameter A (Jain et al.).")
@click.option("-B", "prop_b", default=1.5, show_default=True, help="Propensity model parameter B.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the metrics as JSON (as fractions in [0, 1]).")
@quiet_option
def evaluate(pred_path: str, truth_path: str, fmt: str, labels_file: Optional[str], train_path: Optional[str],
             ks: str, prop_a: float, prop_b: float, json_path: Optional[str]) -> None:
    """Score predictions against the true labels: P@k, nDCG@k, PSP@k, PSnDCG@k, recall@k, RP@k, and for
    predictions with label sets micro-F1, macro-F1, HL (Hamming loss) and subset-acc (subset accuracy).

    RP@k is P@k normalised by min(k, number of true labels) (the EURLEX57K paper's metric).
    Every metric is printed as a percentage.
    True labels never seen in training count as misses, as in `xmc predict`.

    \b
    Examples:
      xmc evaluate --predictions demo/pred.txt --truth demo/test.txt --train demo/train.txt
      xmc evaluate --predictions demo/pred.txt --truth demo/test.txt -k 10    # at 1, 3, 5 and 10
    """
    from xmc.data.predictions import evaluate_prediction_file

    cutoffs = _parse_ks(ks)
    start = time.perf_counter()
    truth = _load(truth_path, fmt, labels_file)
    train_corpus = _load(train_path, fmt, None) if train_path else None
    metrics = evaluate_prediction_file(Path(pred_path), truth, ks=cutoffs, train=train_corpus,
                                       A=prop_a, B=prop_b)
    width = max(len(name) for name in metrics)
    click.echo(f"{'metric':<{width}}  {'%':>6}")
    for name, value in metrics.items():
        click.echo(f"{name:<{width}}  {value * 100:6.2f}")
    if json_path:
        from xmc.utils.modeldir import save_json

        save_json(Path(json_path), metrics)
    echo_summary(start)


@cli.command("save-best")
@click.option("--model-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The MODEL_DIR of an interrupted `xmc train`, which holds MODEL_DIR/checkpoint.")
@quiet_option
def save_best(model_dir: str) -> None:
    """Save the best weights so far of an interrupted deep training as the model in MODEL_DIR.

    Ctrl-C and SIGTERM do this themselves; this is for a run that was killed
    (kill -9, out of memory, a machine lost). The checkpoint stays: the same
    `xmc train` command with --resume continues the training.

    \b
    Example:
      xmc save-best --model-dir m
      xmc predict --model-dir m --input test.jsonl --out pred.txt
    """
    from xmc.registry import by_saved_kind
    from xmc.training import checkpoint as ckpt
    from xmc.utils.modeldir import MANIFEST, load_json

    start = time.perf_counter()
    checkpoint = Path(model_dir) / "checkpoint"
    ckpt.reclaim(checkpoint)
    found = ckpt.find_checkpoint(checkpoint)
    if found is None:
        raise click.BadParameter(f"{checkpoint}: no checkpoint there", param_hint="--model-dir")
    kind = load_json(found / MANIFEST).get("model")
    entry = by_saved_kind(kind) if isinstance(kind, str) else None
    if entry is None or not hasattr(entry.model_class(), "from_checkpoint"):
        raise click.BadParameter(f"{found}: a checkpoint of a {kind!r} model, which cannot be saved before its "
                                 f"training ends; continue it with --resume", param_hint="--model-dir")
    model, what = entry.model_class().from_checkpoint(checkpoint)
    try:
        _save_beside_checkpoint(model, Path(model_dir), checkpoint)
    finally:
        ckpt.reclaim(checkpoint)
    say(f"{what} saved as the model in {model_dir}; the checkpoint stays in {checkpoint} for --resume")
    echo_summary(start)


@cli.command("tune-thresholds")
@click.option("--model-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--valid", "valid_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Held-out documents with labels (not the training file), in any input format.")
@click.option("--format", "fmt", type=FORMATS, default="auto", show_default=True)
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False), help="Labels file for --format text.")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(min=1),
              help="Candidates per document: the top k, as `xmc predict -k` proposes them.")
@click.option("--calibration", type=click.Choice(["auto", "platt", "none"]), default="auto", show_default=True,
              help="platt: Platt scaling of the log of the scores; none: the scores are probabilities already; "
                   "auto: platt for the linear model, none for the deep ones (sigmoid outputs).")
@click.option("--objective", type=click.Choice(["micro-F1", "label-F1"]), default="micro-F1", show_default=True,
              help="micro-F1: each label's threshold moved from the global one where that raises validation "
                   "micro-F1; label-F1: each label's own best F1 (better macro-F1, worse micro-F1).")
@click.option("--keep-top/--no-keep-top", default=True, show_default=True,
              help="Every document's set holds its best label, whatever its probability.")
@click.option("--threads", default=0, show_default=True, help=THREADS_HELP)
@quiet_option
def tune_thresholds(model_dir: str, valid_path: str, fmt: str, labels_file: Optional[str], k: int,
                    calibration: str, objective: str, keep_top: bool, threads: int) -> None:
    """Calibrate a model's scores and tune one threshold per label, for label sets.

    On the validation documents' top k: the scores become probabilities (the
    linear model's by Platt scaling, sigmoid(a log(score) + b) fitted by maximum
    likelihood; the deep models' sigmoid outputs are probabilities already),
    then the global threshold that maximises micro-F1 is found and each
    label's threshold moved from it where that raises validation micro-F1
    (--objective label-F1: each label's own best F1 instead). Every set keeps
    the document's best label unless --no-keep-top. Both are saved in
    MODEL_DIR/thresholds and listed in its manifest; `xmc predict` then
    writes label sets.

    \b
    Example:
      xmc tune-thresholds --model-dir m --valid go/dev.jsonl
      xmc predict --model-dir m --input go/test.jsonl --out pred.txt -k 10
      xmc evaluate --predictions pred.txt --truth go/test.jsonl
    """
    from xmc.registry import load_model

    start = time.perf_counter()
    model = load_model(Path(model_dir))
    if not hasattr(model, "tune_thresholds"):
        raise click.UsageError(f"{model_dir}: this model kind has no label sets")
    valid = _load(valid_path, fmt, labels_file, **model.reader_kwargs())
    with _stage(f"calibration and thresholds of {model.n_labels:,} labels on {valid_path}"):
        model.tune_thresholds(valid, k=k, calibration=calibration, objective=objective, keep_top=keep_top,
                              threads=threads)
    tuned = model.thresholds
    tuned.add_to(Path(model_dir))
    report = tuned.report
    if tuned.calibration is not None:
        click.echo(f"Platt scaling: probability = sigmoid({tuned.calibration.a:.4g} log(score) + "
                   f"{tuned.calibration.b:.4g}); validation log-loss {report['log_loss_raw']:.4f} -> "
                   f"{report['log_loss']:.4f}, ECE {report['ece_raw'] * 100:.2f} -> {report['ece'] * 100:.2f} %")
    for name, what in (("global", f"global threshold {tuned.global_threshold:.3f}"), ("per_label", "per label")):
        click.echo(f"{what}: validation (tuned on it) " + _metrics_line(
            {metric: report[f"{metric}_{name}"] for metric in ("micro-F1", "macro-F1", "HL", "subset-acc")}))
    echo_summary(start, f"saved in {Path(model_dir) / 'thresholds'}")


from .datasets import convert_dataset  # noqa: E402  (kept beside add_command so merges stay small)

cli.add_command(convert_dataset)


def main(argv: Optional[Sequence[str]] = None) -> None:
    cli.main(args=argv, prog_name="xmc")


if __name__ == "__main__":
    main(sys.argv[1:])
