"""xmc.models: the raw-text deep models.

- :class:`AttentionXML`: label-wise attention trained level by level over the label tree.
- :class:`LightAttention`: AttentionXML with a cluster generator's dynamic hard negatives.
- :class:`Seq2SeqMDC`: labels generated as a sequence, multi-level dilated convolution, hybrid attention.
- :class:`LWPT`: label-wise pre-training of two label-wise encoders (LW-LSTM, HLW-LSTM), then fine-tuning.
- :class:`LACO`: document-label joint embedding, cross attention, PLCP / CLCP auxiliary tasks.
- :class:`Ensemble`: several of them on label trees with different seeds, scores averaged.
- :func:`load_model`: any saved model directory (linear pipeline or deep model) by its manifest kind.

All share the prediction API of :class:`xmc.pipeline.Pipeline`:
``features``, ``labels``, ``predict_topk``, ``save``/``load``.
"""
from pathlib import Path
from typing import Union

# The deep models need torch; loading them lazily keeps `load_model` of a linear pipeline torch-free.
DEEP_KINDS = ("attentionxml", "lightattention", "ldgn", "seq2seq-mdc", "lwpt", "laco")
ENSEMBLE_KIND = "ensemble"


def __getattr__(name: str):
    if name == "AttentionXML":
        from xmc.models.attentionxml import AttentionXML
        return AttentionXML
    if name == "LightAttention":
        from xmc.models.light_attention import LightAttention
        return LightAttention
    if name == "LDGN":
        from xmc.models.ldgn import LDGN
        return LDGN
    if name == "Seq2SeqMDC":
        from xmc.models.seq2seq_mdc import Seq2SeqMDC
        return Seq2SeqMDC
    if name == "LWPT":
        from xmc.models.lwpt import LWPT
        return LWPT
    if name == "LACO":
        from xmc.models.laco import LACO
        return LACO
    if name == "Ensemble":
        from xmc.models.ensemble import Ensemble
        return Ensemble
    if name == "DeepParams":
        from xmc.models.params import DeepParams
        return DeepParams
    if name == "MODELS":
        from xmc.models.attentionxml import AttentionXML
        from xmc.models.ldgn import LDGN
        from xmc.models.light_attention import LightAttention
        from xmc.models.laco import LACO
        from xmc.models.lwpt import LWPT
        from xmc.models.seq2seq_mdc import Seq2SeqMDC
        return {AttentionXML.KIND: AttentionXML, LightAttention.KIND: LightAttention, LDGN.KIND: LDGN,
                Seq2SeqMDC.KIND: Seq2SeqMDC, LWPT.KIND: LWPT, LACO.KIND: LACO}
    raise AttributeError(f"module 'xmc.models' has no attribute {name!r}")


def load_model(directory: Union[str, Path]):
    """Load any model directory xmc wrote: the class is chosen by the manifest's kind."""
    from xmc.pipeline import KIND as PIPELINE_KIND, Pipeline
    from xmc.utils.modeldir import MANIFEST, ModelFormatError, load_json

    directory = Path(directory)
    manifest = directory / MANIFEST
    if not manifest.exists():
        raise ModelFormatError(f"{directory}: not an xmc model directory ({MANIFEST} is missing)")
    info = load_json(manifest)
    kind = info.get("kind") if isinstance(info, dict) else None
    if kind == PIPELINE_KIND:
        return Pipeline.load(directory)
    if kind in DEEP_KINDS:
        return __getattr__("MODELS")[kind].load(directory)
    if kind == ENSEMBLE_KIND:
        return __getattr__("Ensemble").load(directory)
    raise ModelFormatError(f"{manifest}: unknown model kind {kind!r}; expected one of "
                           f"{[PIPELINE_KIND, *DEEP_KINDS, ENSEMBLE_KIND]}")


__all__ = ["AttentionXML", "LightAttention", "LDGN", "Seq2SeqMDC", "LWPT", "LACO", "Ensemble", "DeepParams", "MODELS",
           "load_model"]
