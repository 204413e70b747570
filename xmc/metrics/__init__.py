"""Evaluation metrics for extreme multi-label classification.

Ranking metrics (P@k, nDCG@k, R@k, RP@k, PSP@k, PSnDCG@k, one-error) take ranked
predictions; set metrics (micro/macro F1, Hamming loss, subset accuracy) take
binary predictions; calibration metrics (log-loss, expected calibration error)
take the scores of the top-k predictions and whether each is true. Truth is
always a binary (n, L) matrix, preferably CSR.

Every metric is a fraction in [0, 1] (log-loss: nats); ``xmc evaluate`` and the
other commands print them multiplied by 100, as percentages.
"""
from xmc.metrics._inputs import topk_from_scores
from xmc.metrics.calibration import expected_calibration_error, log_loss, topk_outcomes
from xmc.metrics.classification import (binarize_threshold, binarize_topk, f1_scores, hamming_loss, set_metrics,
                                        subset_accuracy)
from xmc.metrics.ranking import (evaluate, inv_propensity, ndcg_at_k, one_error, precision_at_k, psndcg_at_k,
                                 psprecision_at_k, r_precision_at_k, recall_at_k, report_cutoffs)

__all__ = [
    "binarize_threshold",
    "binarize_topk",
    "evaluate",
    "expected_calibration_error",
    "f1_scores",
    "hamming_loss",
    "inv_propensity",
    "log_loss",
    "ndcg_at_k",
    "one_error",
    "precision_at_k",
    "psndcg_at_k",
    "psprecision_at_k",
    "r_precision_at_k",
    "recall_at_k",
    "set_metrics",
    "report_cutoffs",
    "subset_accuracy",
    "topk_from_scores",
    "topk_outcomes",
]
