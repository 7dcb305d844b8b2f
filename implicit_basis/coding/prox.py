r"""Proximal operators of the coding penalties, batched over samples.

Each operator is the exact minimiser of a separable problem, written in its
docstring. Thresholds are per sample and broadcast against the input: a
(B, 1) column for one threshold per sample, (B, k) for one per atom. A
threshold of ``+inf`` forces the corresponding entries to zero.

Shape:
    v: (B, k); atom thresholds (B, 1) or (B, k); group thresholds (B, g);
    group ``index``: (k,) int64 group id of each atom; result (B, k).
"""

from __future__ import annotations

import torch

from .groups import group_norms

__all__ = ["prox_elastic_net", "prox_group_l2", "prox_l1", "prox_sparse_group", "soft_threshold"]


def soft_threshold(v: torch.Tensor, theta: torch.Tensor | float) -> torch.Tensor:
    """Apply the soft threshold ``sign(v) * max(|v| - theta, 0)`` entrywise.

    This is the proximal operator of ``theta * ||.||_1`` for ``theta >= 0``,
    and the one definition that the coding problems, the classic iterations
    and the LISTA family share. A threshold of ``+inf`` gives 0. A negative
    ``theta`` is not clipped, so it moves ``v`` away from zero.

    Under autograd the derivative in ``v`` and in ``theta`` is 0 at a tie
    ``|v| == theta``, because torch takes the derivative of ``relu`` at 0 to
    be 0. A coordinate exactly at the threshold therefore counts as inactive,
    the same choice as ``torch.nn.functional.softshrink``. Elsewhere on
    the support the derivative in ``theta`` is ``-sign(v)``, also at
    ``theta = 0``. The form ``v - clamp(v, -theta, theta)`` has the same
    values, but at ``theta = 0`` it passes a zero derivative in ``theta`` to
    negative entries.

    Shape:
        v: any shape; theta: a scalar or a tensor broadcastable to ``v``;
        result: the shape of ``v``.
    """
    return torch.sign(v) * torch.relu(v.abs() - theta)


def prox_l1(v: torch.Tensor, tau: torch.Tensor, nonneg: bool = False) -> torch.Tensor:
    r"""Soft-threshold ``v``, one-sided when ``nonneg``.

    .. math::

        \operatorname{prox}(v) = \arg\min_z \ \tfrac12 \|z - v\|_2^2
        + \sum_j \tau_j |z_j| \ \ (+\ \iota_{z \ge 0}(z) \text{ if nonneg})
        = \operatorname{sign}(v) \max(|v| - \tau, 0)
        \ \ \big(\max(v - \tau, 0) \text{ if nonneg}\big)

    ``tau = +inf`` gives 0 and ``tau = 0`` leaves ``v`` (or ``max(v, 0)``).
    """
    if nonneg:
        return torch.relu(v - tau)
    return soft_threshold(v, tau)


def prox_elastic_net(
    v: torch.Tensor, tau: torch.Tensor, ridge: torch.Tensor, nonneg: bool = False
) -> torch.Tensor:
    r"""Soft-threshold ``v`` and shrink it by ``1 + ridge``.

    .. math::

        \arg\min_z \ \tfrac12 \|z - v\|_2^2 + \sum_j \tau_j |z_j|
        + \tfrac{\rho}{2} \|z\|_2^2
        = \frac{\operatorname{prox}_{\ell_1, \tau}(v)}{1 + \rho}

    with ``rho = ridge`` (B, 1), and the one-sided threshold when ``nonneg``.
    """
    return prox_l1(v, tau, nonneg) / (1 + ridge)


def prox_group_l2(
    v: torch.Tensor, tau_g: torch.Tensor, index: torch.Tensor, n_groups: int
) -> torch.Tensor:
    r"""Shrink each group of ``v`` towards zero in l2 norm (block soft-thresholding).

    .. math::

        \arg\min_z \ \tfrac12 \|z - v\|_2^2 + \sum_g \tau_g \|z_g\|_2,
        \qquad z_g = \max\Big(0, 1 - \frac{\tau_g}{\|v_g\|_2}\Big) v_g

    A group with ``||v_g|| <= tau_g`` (or ``tau_g = +inf``) is set to zero.
    """
    norms = group_norms(v, index, n_groups)
    # A zero group and a forced group (tau_g = +inf) get factor 0. The ratio
    # uses finite stand-ins there, because under autograd the derivative of
    # tau_g / ||v_g|| with tau_g = inf is inf * 0 = NaN even where
    # torch.where discards it.
    keep = (norms > 0) & torch.isfinite(tau_g)
    safe = torch.where(keep, norms, torch.ones_like(norms))
    finite_tau = torch.where(keep, tau_g, torch.zeros_like(tau_g))
    factor = torch.where(keep, torch.relu(1 - finite_tau / safe), torch.zeros_like(norms))
    return v * factor[:, index]


def prox_sparse_group(
    v: torch.Tensor,
    tau1: torch.Tensor,
    tau_g: torch.Tensor,
    index: torch.Tensor,
    n_groups: int,
) -> torch.Tensor:
    r"""Soft-threshold ``v`` entrywise, then shrink each group in l2 norm.

    .. math::

        \arg\min_z \ \tfrac12 \|z - v\|_2^2 + \tau_1 \|z\|_1
        + \sum_g \tau_g \|z_g\|_2
        = \operatorname{prox}_{\text{group}, \tau_g}\big(
          \operatorname{prox}_{\ell_1, \tau_1}(v)\big)

    The composition is exact. With ``w = soft(v, tau1)`` and ``z_g = alpha w_g``,
    ``alpha = max(0, 1 - tau_g / ||w_g||)``, the scaling keeps the signs and
    zeros of ``w``, so ``v - w`` is an l1 subgradient at ``z`` and ``(1 -
    alpha) w_g`` a group subgradient: together they give ``v - z``.
    ``tau1`` is (B, 1).
    """
    return prox_group_l2(prox_l1(v, tau1), tau_g, index, n_groups)
