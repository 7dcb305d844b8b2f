"""Soft thresholding and the support-selection variant used by the LISTA family.

``soft_threshold`` is defined once, in ``implicit_basis.coding.prox``, and
re-exported here. Its derivative at a tie ``|v| == theta`` is 0, so a
coordinate exactly at the threshold counts as inactive. The threshold is used
as given: a negative ``theta`` is not clipped. Learned networks leave their
thresholds unconstrained, as in the reference code of Chen et al. (2018), and
rely on training to keep them positive.
"""

from __future__ import annotations

import math

import torch

from ..coding.prox import soft_threshold

__all__ = [
    "selected_count",
    "soft_threshold",
    "soft_threshold_support_selection",
    "support_fraction",
]


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
