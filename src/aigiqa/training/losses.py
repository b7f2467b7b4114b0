"""Training losses for quality regression: L1, MSE, differentiable PLCC, pairwise ranking and
pairwise fidelity.

Every loss takes predictions and targets of shape (B,) and returns a scalar tensor; a spec such
as ``"plcc+rank"`` sums several.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aigiqa.errors import MetricError

if TYPE_CHECKING:  # pragma: no cover
    import torch

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return (pred - target).abs().mean()


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return (pred - target).pow(2).mean()


def plcc_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(1 - PLCC) / 2 of the batch: 0 for a perfect linear fit, 1 for a perfect inverse one.

    Differentiable Pearson correlation of the batch, as in Li et al., Norm-in-Norm Loss, ACM MM
    2020 (which also normalises by the batch's mean and spread); needs B >= 2.
    """
    p = pred - pred.mean()
    t = target - target.mean()
    corr = (p * t).sum() / (p.norm() * t.norm() + eps)
    return (1 - corr) / 2


def rank_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pairwise ranking loss: mean of log(1 + exp(-(p_i - p_j) sign(y_i - y_j))) over pairs.

    The logistic (RankNet) form of the pairwise losses in Liu et al., RankIQA, ICCV 2017 and Zhang
    et al., UNIQUE, TIP 2021; pairs with equal targets are left out (0 if every pair ties).
    """
    dp = pred[:, None] - pred[None, :]
    sign = (target[:, None] - target[None, :]).sign()
    mask = sign != 0
    if not bool(mask.any()):
        return pred.sum() * 0
    import torch.nn.functional as F

    return F.softplus(-dp[mask] * sign[mask]).mean()


def fidelity_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pairwise fidelity loss over the pairs i < j of the batch (Tsai et al., FRank, SIGIR 2007),
    as LIQE (Zhang et al., CVPR 2023) and UNIQUE train quality: the model's probability that i is
    better is ``p = Φ(pred_i - pred_j)`` (Thurstone, unit variance per score), the target's ``g =
    1, 0.5, 0`` (i better, tie, worse); loss ``1 - sqrt(p g + eps) - sqrt((1 - p)(1 - g) + eps)``.
    """
    import torch

    i, j = torch.triu_indices(len(pred), len(pred), offset=1, device=pred.device)
    p = 0.5 * (1 + torch.erf((pred[i] - pred[j]) / 2 ** 0.5))
    g = 0.5 * (torch.sign(target[i] - target[j]) + 1)
    return (1 - torch.sqrt(p * g + eps) - torch.sqrt((1 - p) * (1 - g) + eps)).mean()


LOSSES: dict[str, LossFn] = {"l1": l1_loss, "mse": mse_loss, "plcc": plcc_loss, "rank": rank_loss,
                             "fidelity": fidelity_loss}


def make_loss(spec: str) -> LossFn:
    """A loss from its name or a ``+``-sum of names, e.g. ``"mse"``, ``"plcc+rank"``."""
    names = [s.strip().lower() for s in spec.split("+")]
    unknown = [n for n in names if n not in LOSSES]
    if not names or unknown:
        raise MetricError(f"unknown loss {spec!r}; use one of {', '.join(LOSSES)} or a sum "
                          "such as plcc+rank")
    parts = [LOSSES[n] for n in names]

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = parts[0](pred, target)
        for fn in parts[1:]:
            total = total + fn(pred, target)
        return total

    return loss
