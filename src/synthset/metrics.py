"""Classification metrics as pure functions (accuracy, per-class recall, balanced accuracy, ROC-AUC)."""
from __future__ import annotations

from typing import Optional

import torch


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of correct predictions."""
    return float((pred == target).float().mean().item())


def class_recall(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> list[Optional[float]]:
    """Recall of each class (its sensitivity); None for a class absent from ``target``. On an
    imbalanced test set it shows which class a model favours, which accuracy hides."""
    return [float((pred[target == c] == c).float().mean().item()) if (target == c).any() else None
            for c in range(num_classes)]


def balanced_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Mean per-class recall (Brodersen et al., 2010); classes absent from ``target`` are
    skipped. Equals accuracy on balanced data; 1/num_classes for a constant predictor."""
    recalls = [r for r in class_recall(pred, target, num_classes) if r is not None]
    return float(sum(recalls) / len(recalls))


def roc_auc(score: torch.Tensor, target: torch.Tensor) -> float:
    """Binary ROC-AUC via the Mann-Whitney U statistic with midranks for ties
    (Hanley & McNeil, 1982, eq. 1): AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)."""
    score = score.double().flatten()
    target = target.flatten()
    n_pos = int((target == 1).sum())
    n_neg = int((target == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(score)
    ranks = torch.empty_like(score)
    sorted_scores = score[order]
    # Midranks: every element of a tie group gets the group's mean rank.
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    mid = ends - (counts.double() - 1) / 2
    ranks[order] = mid[inverse]
    r_pos = ranks[target == 1].sum().item()
    return float((r_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
