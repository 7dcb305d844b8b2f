"""Soft thresholding and the support-selection variant used by the LISTA family.

Convention shared by every module in the package: the soft threshold is

    soft(v, theta) = sign(v) * max(|v| - theta, 0),

written as ``torch.sign(v) * torch.relu(v.abs() - theta)``. Autograd takes the
derivative of ``relu`` at 0 to be 0, so at a tie ``|v| == theta`` the
derivative with respect to ``v`` and to ``theta`` is 0: a coordinate exactly at
the threshold counts as inactive. ``torch.nn.functional.softshrink`` makes the
same choice. The threshold is used as given: a negative ``theta`` is not
clipped, so ``soft(v, theta)`` then moves ``v`` away from zero. Learned networks
leave their thresholds unconstrained, as in the reference code of Chen et al.
(2018), and rely on training to keep them positive.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "selected_count",
    "soft_threshold",
    "soft_threshold_support_selection",
    "support_fraction",
]


def soft_threshold(v: torch.Tensor, theta: torch.Tensor | float) -> torch.Tensor:
    """Apply the soft threshold ``sign(v) * max(|v| - theta, 0)`` entrywise.

    This is the proximal operator of ``theta * ||.||_1`` for ``theta >= 0``.
    The derivative at ``|v| == theta`` is 0 (the module docstring gives the
    convention).

    Shape:
        v: any shape; theta: a scalar or a tensor broadcastable to ``v``;
        result: the shape of ``v``.
    """
    return torch.sign(v) * torch.relu(v.abs() - theta)


def support_fraction(layer: int, p_step: float, p_max: float) -> float:
    """Return the fraction of entries that layer ``layer`` (1-based) keeps.

    The fraction grows linearly with depth and saturates:
    ``min(p_step * layer, p_max)``, the schedule of LISTA-CPSS (Chen et al.,
    2018) and ALISTA (Liu et al., 2019).
    """
    return min(p_step * layer, p_max)


def selected_count(fraction: float, n: int) -> int:
    """Return how many of ``n`` entries a support fraction selects: ``floor(fraction * n)``.

    The small tolerance keeps products such as ``0.012 * 5 * 500`` (29.999...
    in floating point) at their exact integer value.
    """
    return max(0, min(n, math.floor(fraction * n + 1e-9)))


def soft_threshold_support_selection(
    v: torch.Tensor, theta: torch.Tensor | float, fraction: float
) -> torch.Tensor:
    """Soft-threshold ``v``, except for its largest entries, which pass unchanged.

    In each sample (last dimension of length ``n``), the ``floor(fraction * n)``
    entries of largest magnitude that also exceed ``theta`` are kept as they
    are. Every other entry is soft-thresholded. This is the support selection
    of LISTA-CPSS (Chen et al., 2018). The selection is a constant for autograd,
    as in the reference code: gradients flow through ``v`` for kept entries and
    through the soft threshold for the others, never through the choice
    itself. Among entries of equal magnitude at the cut, ``torch.topk`` decides
    which are kept.

    Shape:
        v: (..., n); theta: a scalar or a tensor broadcastable to ``v``;
        result: the shape of ``v``.
    """
    shrunk = soft_threshold(v, theta)
    count = selected_count(fraction, v.shape[-1])
    if count == 0:
        return shrunk

    with torch.no_grad():
        magnitude = v.abs()
        largest = torch.topk(magnitude, count, dim=-1).indices
        keep = torch.zeros_like(v, dtype=torch.bool).scatter_(-1, largest, True)
        keep &= magnitude > theta
    return torch.where(keep, v, shrunk)
