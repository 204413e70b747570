"""What every raw-text deep model shares: turning corpora into token ids and
label matrices, the prediction API of :class:`xmc.linear.pipeline.Pipeline`, and the
self-describing model directory.

Directory layout::

    MODEL_DIR/xmc.json        format version, kind, and size + SHA-256 of every file
    MODEL_DIR/params.json     the model's params (``PARAMS``)
    MODEL_DIR/labels.json     label vocabulary
    MODEL_DIR/text/           tokenizer settings and word vocabulary
    MODEL_DIR/tree/           the label tree
    MODEL_DIR/weights.npz     every network's parameters (numpy arrays, no pickle)
"""
from __future__ import annotations

import contextlib
import functools
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp
import torch

from xmc.data import LabelVocab, TextData
from xmc.data.checks import UNSEEN, check_training_labels, nonempty_rows, warn_unknown_labels
from xmc.data.vocab import LABELS_JSON
from xmc.estimator import Estimator, text_corpus
from xmc.layers.state import WEIGHTS, load_state, state_arrays
from xmc.metrics import evaluate
from xmc.models.params import DeepParams
from xmc.params import check_choice
from xmc.text import load_text_encoder
from xmc.text.embeddings import build_embeddings
from xmc.text.tokens import TextEncoder
from xmc.training import distributed
from xmc.training.checkpoint import (TEXT_DIR, TREE_DIR, DeepCheckpoint, TrainingInterrupted, best_model,
                                     data_fingerprint)
from xmc.tree import LabelTree
from xmc.utils.modeldir import (ModelFormatError, begin_save, load_arrays, load_json, read_manifest, reading,
                                save_arrays, save_json, write_manifest)
from xmc.utils.progress import progress as show_progress
from xmc.utils.resources import StageTimes

PARAMS_JSON = "params.json"

Docs = List[np.ndarray]
Log = Callable[[str], None]


def set_threads(threads: int) -> None:
    if threads and threads > 0:
        # More threads than cores never helps, and a loaded model's count must not exhaust the process.
        torch.set_num_threads(min(int(threads), os.cpu_count() or 1))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no GPU; use device 'cpu' or 'auto'")
    return torch.device(name)


def raw_texts(corpus: Union[TextData, Sequence[str]], model_kind: str) -> List[str]:
    """The texts of a text corpus (or a list of texts); anything else is refused with a clear message."""
    texts = corpus.texts if isinstance(corpus, TextData) else corpus
    if not isinstance(texts, (list, tuple)) or (texts and not isinstance(texts[0], str)):
        raise ValueError(f"{model_kind} reads raw text: give it a text corpus (fastText, JSON Lines or "
                         f"text + labels files), not sparse features")
    return list(texts)


PRIOR_K = 5  # labels of the label-prior baseline


def label_prior_metrics(Y: sp.csr_matrix, Y_valid: sp.csr_matrix) -> Dict[str, float]:
    """P@1 and P@5 on validation of ranking every document's labels by their training frequency: what a
    network that learns nothing of the text scores."""
    counts = np.asarray(Y.sum(axis=0)).ravel()
    top = np.argsort(-counts, kind="stable")[:PRIOR_K]
    ids = np.tile(top.astype(np.int64), (Y_valid.shape[0], 1))
    return {k: v for k, v in evaluate(Y_valid, ids, ks=(1, PRIOR_K)).items() if k.startswith("P@")}


def split_validation(n: int, fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Train / validation row indices; at least one row on each side."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_valid = min(max(1, int(round(n * fraction))), n - 1)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


class DeepModel(Estimator):
    """Base of the raw-text models; subclasses implement ``_fit_networks``, ``_search`` and the weights.

    Their scores are sigmoid outputs, probabilities already; the scikit-learn-style methods are
    :class:`xmc.estimator.Estimator`'s."""

    KIND = ""
    PARAMS: type = DeepParams  # the model's own params class
    # The network class of a model with one network, built as NETWORK(word_vectors, n_labels, params):
    # ``_weights`` and ``_load_network`` save and restore it.
    NETWORK: Optional[type] = None

    def __init__(self, params: Optional[DeepParams] = None, **settings) -> None:
        """``Model(params)``, ``Model(lr=3e-3, hidden=256)`` or both (see :mod:`xmc.estimator`)."""
        self.params = self._params_from(params, settings)
        self.text: Optional[TextEncoder] = None
        self.vocab: Optional[LabelVocab] = None
        self.tree: Optional[LabelTree] = None
        self.device = resolve_device(self.params.training.device)
        self.label_prior: Dict[str, float] = {}  # validation P@k of the label prior, set by fit
        self.stage_seconds = StageTimes()  # of the last fit: featurising, word vectors, tree, training

    def unfitted_copy(self) -> "DeepModel":
        """A new, untrained model with these settings."""
        return type(self)(self.params)

    # ---- data -----------------------------------------------------------------
    def features(self, corpus: Union[TextData, Sequence[str]]) -> Docs:
        """Token-id sequences of a corpus (or a list of texts), cut at the model's max_len."""
        self._check_fitted()
        return self.text.encode(raw_texts(corpus, self.KIND))

    def labels(self, corpus: TextData, unseen: str = "drop") -> sp.csr_matrix:
        """Ground truth in the model's label ids. Labels unseen in training are counted in a warning and
        dropped, or with ``unseen="keep"`` kept as ids past the model's labels, so that metrics count them
        as misses (what ``xmc predict`` does)."""
        self._check_fitted()
        check_choice(unseen, "unseen", tuple(UNSEEN))
        warn_unknown_labels(corpus.labels, self.vocab, UNSEEN[unseen])
        return self.vocab.encode(corpus.labels, unknown="extend" if unseen == "keep" else "skip")

    def reader_kwargs(self) -> dict:
        return {}

    @property
    def n_labels(self) -> int:
        self._check_fitted()
        return len(self.vocab)

    # ---- training ---------------------------------------------------------------
    def fit(self, corpus: TextData, y=None, valid: Optional[TextData] = None, tree: Optional[LabelTree] = None,
            progress: bool = True, log: Optional[Log] = print, checkpoint_dir: Optional[Union[str, Path]] = None,
            resume: bool = False) -> "DeepModel":
        """Train on ``corpus`` (or on a list of texts and their labels ``y``, scikit-learn style); ``valid``
        drives early stopping (else a held-out part of ``corpus``).

        With ``checkpoint_dir``, a checkpoint is written there after the preparation (vocabularies, tree,
        word vectors), every ``params.training.checkpoint_every`` steps, at every epoch end and when training is
        complete; Ctrl-C writes one and raises :class:`xmc.training.checkpoint.TrainingInterrupted`. With
        ``resume``, training continues from the checkpoint there (when there is one) and ends with the same
        model as an uninterrupted run; a checkpoint of other data or other options is refused.
        """
        if not distributed.is_main():  # under torchrun rank 0 reports for all
            progress, log = False, None
        corpus = text_corpus(corpus, y)
        self.thresholds = None
        if not isinstance(corpus, TextData):
            raise ValueError(f"{self.KIND} trains on raw text (TextData), got {type(corpus).__name__}")
        keep = nonempty_rows(np.array([not t.strip() for t in corpus.texts], dtype=bool), "empty texts")
        if keep is not None:
            corpus = corpus.subset(keep)
        if len(corpus) < 2:
            raise ValueError(f"{self.KIND} needs at least 2 training documents, got {len(corpus)}")
        set_threads(self.params.training.threads)
        torch.manual_seed(self.params.training.seed)
        ckpt = None
        if checkpoint_dir is not None:
            ckpt = DeepCheckpoint(self, Path(checkpoint_dir), data_fingerprint(corpus, valid),
                                  every=self.params.training.checkpoint_every)
        resumed = resume and ckpt is not None and ckpt.load()
        if resumed and log is not None:
            log(f"resuming from the checkpoint in {ckpt.found}")
        with ckpt.stop_on_sigint() if ckpt is not None else contextlib.nullcontext():
            if resumed and ckpt.complete:
                self._load_weights(ckpt.arrays, ckpt.state["manifest"], ckpt.found)
                return self
            fixed_text = False
            if not resumed:
                fixed_text = self._new_vocabularies(corpus)
            if valid is None:
                train_rows, valid_rows = split_validation(len(corpus), self.params.training.valid_fraction,
                                                          self.params.training.seed)
                train, valid = corpus.subset(train_rows), corpus.subset(valid_rows)
            else:
                train = corpus
            self._before_training(train, valid, log)
            self.stage_seconds = stages = StageTimes()
            with stages.stage("featurising"):
                start = time.perf_counter()
                tokens = self.text.tokenizer.tokenize_many(train.texts)
                lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
                # The networks read the first max_len tokens only: the vocabulary and the word vectors are
                # fitted to those (skip-gram over the rest would cost time for vectors nothing reads).
                max_len = self.params.text.max_len
                tokens = [t[:max_len] for t in tokens]
                if not resumed and not fixed_text:
                    self.text.fit_tokens(tokens)
                docs = self.text.encode_tokens(tokens)
                Y = self.vocab.encode(train.labels)
                valid_docs = self.text.encode(valid.texts)
                Y_valid = self.vocab.encode(valid.labels, unknown="skip")
            self.label_prior = label_prior_metrics(Y, Y_valid)
            if log is not None:
                log(self._describe_text(lengths, train, valid, time.perf_counter() - start))
                log(f"the label prior (the {PRIOR_K} most frequent training labels for every document): valid "
                    + " ".join(f"{k} {v * 100:.2f}" for k, v in self.label_prior.items()))
            if resumed:
                # Past the preparation checkpoint the networks hold the word vectors: zeros only fix the shape.
                embeddings = ckpt.embeddings if ckpt.embeddings is not None else np.zeros(
                    (len(self.text.vocab), self.params.embedding.dim), dtype=np.float32)
            else:
                with stages.stage("word vectors"):
                    embeddings = self._initial_word_vectors(tokens, progress, log)
            del tokens
            if not resumed:
                with stages.stage("tree"):
                    self.tree = self._label_tree(tree, train, Y, progress, log)
                if ckpt is not None:
                    ckpt.write_prepared(embeddings)
            if ckpt is not None and ckpt.interrupted():
                raise TrainingInterrupted(ckpt.path)
            with stages.stage("training"):
                self._fit_networks(docs, Y, valid_docs, Y_valid, embeddings, progress=progress, log=log,
                                   checkpoint=ckpt)
            if ckpt is not None:
                ckpt.write_complete()
        return self

    def _initial_word_vectors(self, tokens: List[List[str]], progress: bool, log: Optional[Log]) -> np.ndarray:
        """Rank 0's vectors on every rank of a torchrun (word2vec threads are not reproducible)."""
        start = time.perf_counter()
        source = self.params.embedding.source
        epochs = self.params.embedding.epochs if source == "skipgram" else None
        with show_progress(f"word vectors ({source})", total=epochs, unit="epoch", enabled=progress) as bar:
            embeddings = distributed.array_from_main(functools.partial(self._word_vectors, tokens, bar.update))
        if log is not None:
            log(f"word vectors ({source}, {embeddings.shape[1]} dimensions) in {time.perf_counter() - start:.1f} s")
        return embeddings

    def _label_tree(self, given: Optional[LabelTree], train: TextData, Y: sp.csr_matrix, progress: bool,
                    log: Optional[Log]) -> LabelTree:
        """The given tree (checked against the labels), else one built on rank 0 and sent to every rank."""
        if given is not None:
            if given.n_labels != Y.shape[1]:
                raise ValueError(f"the given tree has {given.n_labels} labels but the training data has {Y.shape[1]}")
            return given
        start = time.perf_counter()
        with show_progress(f"label tree of {Y.shape[1]:,} labels", enabled=progress):
            tree = distributed.tree_from_main(lambda: self._build_tree(train.texts, Y))
        if log is not None:
            log(f"{tree} in {time.perf_counter() - start:.1f} s")
        return tree

    def _describe_text(self, lengths: np.ndarray, train: TextData, valid: TextData, seconds: float) -> str:
        """One line on the training texts (``lengths``: tokens per document before the cut): what truncation
        and the vocabulary keep of them."""
        max_len = self.params.text.max_len
        cut = float(np.mean(lengths > max_len)) if lengths.size else 0.0
        return (f"text: {len(train):,} training and {len(valid):,} validation documents in {seconds:.1f} s; "
                f"{len(self.text.vocab):,} words; tokens per document median {int(np.median(lengths))}, "
                f"90th percentile {int(np.percentile(lengths, 90))}; {cut:.0%} cut at max_len {max_len}")

    def _new_vocabularies(self, corpus: TextData) -> bool:
        """Set the label vocabulary and the text encoder for a new training run; True when the text encoder
        comes ready-made (a pre-trained model's) and must not be fitted to this corpus."""
        self._fit_label_vocabulary(corpus)
        self.text = TextEncoder(self.params.text)
        return False

    def _fit_label_vocabulary(self, corpus: TextData) -> None:
        self.vocab = LabelVocab().fit(corpus.labels)
        check_training_labels(self.vocab.encode(corpus.labels))

    def _build_tree(self, texts: Sequence[str], Y: sp.csr_matrix) -> LabelTree:
        raise NotImplementedError

    def _word_vectors(self, tokens: List[List[str]], on_epoch: Optional[Callable[[], None]] = None) -> np.ndarray:
        """The initial word vectors (len(vocab), dim) of ``params.embedding``; ``tokens`` are the training texts';
        ``on_epoch`` is called after each skip-gram epoch."""
        return build_embeddings(self.text.vocab, self.params.embedding, token_lists=tokens, on_epoch=on_epoch)

    def _before_training(self, train: TextData, valid: TextData, log: Optional[Log]) -> None:
        """Called once the training and validation texts are fixed (after the validation split), before
        they are encoded: a model that needs more of the raw texts than their tokens takes it here."""

    def _save_extra(self, directory: Path) -> None:
        """Files beyond the common ones, written before the manifest (which then covers them)."""

    def _fit_networks(self, docs: Docs, Y: sp.csr_matrix, valid_docs: Docs, Y_valid: sp.csr_matrix,
                      embeddings: np.ndarray, progress: bool, log: Optional[Log], checkpoint=None) -> None:
        """Train the networks; ``checkpoint`` (an :class:`xmc.training.checkpoint.DeepCheckpoint`) restores
        finished networks and hands each training loop its saved state."""
        raise NotImplementedError

    # ---- prediction -------------------------------------------------------------
    def predict_topk(self, corpus_or_docs: Union[TextData, Docs], k: int = 5, beam: Optional[int] = None,
                     threads: Optional[int] = None, batch_size: Optional[int] = None,
                     on_batch: Optional[Callable[[int], None]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Top-k label ids (-1 = none) and scores in [0, 1], best first."""
        docs = self._prediction_docs(corpus_or_docs, threads)
        # Models without a tree or decoder search have no top_k; their beam is never read.
        beam = max(int(beam or getattr(self.params, "top_k", 1)), 1)
        batch_size = batch_size or self.params.training.eval_batch_size
        positions, scores = self._search(docs, k=k, beam=beam, batch_size=batch_size, on_batch=on_batch)
        ids = np.where(positions >= 0, self.tree.label_order[np.maximum(positions, 0)], -1).astype(np.int32)
        return ids, scores.astype(np.float32)

    def _prediction_docs(self, corpus_or_docs: Union[TextData, Sequence[str], Docs], threads: Optional[int]) -> Docs:
        """What every prediction entry point does first: check the model is trained, encode the texts
        (encoded documents pass through) and set the thread count."""
        self._check_fitted()
        docs = corpus_or_docs if self._is_docs(corpus_or_docs) else self.features(corpus_or_docs)
        set_threads(self.params.training.threads if threads is None else threads)
        return docs

    def _search(self, docs: Docs, k: int, beam: int, batch_size: int,
                on_batch: Optional[Callable[[int], None]]) -> Tuple[np.ndarray, np.ndarray]:
        """(label positions in tree order, scores), each (n, k)."""
        raise NotImplementedError

    @staticmethod
    def _is_docs(x) -> bool:
        return isinstance(x, list) and (not x or isinstance(x[0], np.ndarray))

    # ---- persistence ------------------------------------------------------------
    def save(self, directory: Union[str, Path]) -> None:
        self._check_fitted()
        directory = begin_save(Path(directory))
        save_json(directory / PARAMS_JSON, self.params.to_dict())
        self.vocab.save(directory)
        self.text.save(directory / TEXT_DIR)
        self.tree.save(directory / TREE_DIR)
        save_arrays(directory / WEIGHTS, self._weights())
        self._save_extra(directory)
        self._save_thresholds(directory)
        write_manifest(directory, self.KIND, {"input_kind": "text", **self._manifest_extra()})

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: Union[str, Path]) -> Tuple["DeepModel", str]:
        """The model of the best weights so far of an interrupted training (its checkpoint directory), and a
        few words on them; save it like any model. See :func:`xmc.training.checkpoint.best_model`."""
        return best_model(cls, Path(checkpoint_dir))

    @classmethod
    def load(cls, directory: Union[str, Path]) -> "DeepModel":
        directory = Path(directory)
        info = read_manifest(directory, cls.KIND, required=[PARAMS_JSON, LABELS_JSON, WEIGHTS])
        with reading(directory, info):
            return cls._load_listed(directory, info)

    @classmethod
    def _load_listed(cls, directory: Path, info: Dict) -> "DeepModel":
        try:
            params = cls.PARAMS.from_saved(load_json(directory / PARAMS_JSON))
        except (TypeError, ValueError) as e:
            raise ModelFormatError(f"{directory / PARAMS_JSON}: invalid parameters: {e}") from None
        if params.training.device.startswith("cuda") and not torch.cuda.is_available():
            params.training.device = "cpu"  # a model trained on a GPU still predicts on a machine without one
        model = cls(params)
        model.vocab = LabelVocab.load(directory)
        model.text = load_text_encoder(directory / TEXT_DIR)
        model.tree = LabelTree.load(directory / TREE_DIR)
        if model.tree.n_labels != len(model.vocab):
            raise ModelFormatError(f"{directory / LABELS_JSON}: holds {len(model.vocab)} labels but the tree in "
                                   f"{directory / TREE_DIR} has {model.tree.n_labels}")
        arrays = load_arrays(directory / WEIGHTS)
        # Each layer saves arrays: a forged count must not loop for ever.
        if getattr(params, "lstm_layers", 0) > len(arrays):
            raise ModelFormatError(f"{directory / PARAMS_JSON}: lstm_layers {params.lstm_layers} is more than the "
                                   f"{len(arrays)} arrays in {directory / WEIGHTS} can hold")
        # Dry run on the meta device: networks sized by a forged params.json (hidden=2**31) are refused on
        # their shapes by load_state before any memory is allocated.
        device, model.device = model.device, torch.device("meta")
        try:
            with torch.device("meta"):
                model._load_weights(arrays, info, directory)
        except ModelFormatError as e:
            # Either file may be the forged one: name both.
            raise ModelFormatError(f"{directory / PARAMS_JSON} and the weights disagree: {e}") from None
        except (RuntimeError, ValueError, OverflowError, TypeError) as e:  # torch: sizes past int64
            raise ModelFormatError(f"{directory / PARAMS_JSON}: describes networks that cannot be built "
                                   f"({str(e)[:200]})") from None
        model.device = device
        model._load_weights(arrays, info, directory)
        model._load_thresholds(directory, info)
        return model

    def _weights(self) -> Dict[str, np.ndarray]:
        """Default for models of one network ``self.network`` (see ``NETWORK``)."""
        network = getattr(self, "network", None)
        return state_arrays("network", network) if network is not None else {}

    def _load_network(self, arrays: Dict[str, np.ndarray], directory: Path) -> None:
        """``self.network = NETWORK(word_vectors, n_labels, params)`` with the saved ``network.*`` weights."""
        # The word vectors are part of the saved weights: zeros only give the embedding its shape.
        zeros = np.broadcast_to(np.float32(0), (len(self.text.vocab), self.params.embedding.dim))
        self.network = self.NETWORK(zeros, self.tree.n_labels, self.params)
        load_state("network", self.network, arrays, directory)
        self.network.to(self.device).eval()

    def _manifest_extra(self) -> Dict:
        return {}

    def _load_weights(self, arrays: Dict[str, np.ndarray], info: Dict, directory: Path) -> None:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if self.vocab is None or self.text is None:
            raise RuntimeError(f"this {type(self).__name__} is not trained yet: call fit() or load()")
