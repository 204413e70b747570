"""Evaluation metrics for extreme multi-label classification.

Ranking metrics (P@k, nDCG@k, R@k, RP@k, PSP@k, PSnDCG@k, one-error) take ranked
predictions; set metrics (micro/macro F1, Hamming loss, subset accuracy) take
binary predictions. Truth is always a binary (n, L) matrix, preferably CSR.
"""
from xmc.metrics._inputs import topk_from_scores
from xmc.metrics.classification import binarize_threshold, binarize_topk, f1_scores, hamming_loss, subset_accuracy
from xmc.metrics.ranking import (evaluate, inv_propensity, ndcg_at_k, one_error, precision_at_k, psndcg_at_k,
                                 psprecision_at_k, r_precision_at_k, recall_at_k)

__all__ = [
    "binarize_threshold",
    "binarize_topk",
    "evaluate",
    "f1_scores",
    "hamming_loss",
    "inv_propensity",
    "ndcg_at_k",
    "one_error",
    "precision_at_k",
    "psndcg_at_k",
    "psprecision_at_k",
    "r_precision_at_k",
    "recall_at_k",
    "subset_accuracy",
    "topk_from_scores",
]
