r"""Exact path following for the lasso family (the homotopy, or LARS-lasso, method).

With every threshold scaled by a factor ``f``, ``tau_j f``, the solution is
piecewise linear in ``f``. On a fixed support ``S`` with signs ``s``

.. math::

    z_S(f) = a - f b, \qquad (G_{SS} + \ell_2 I) a = c_S, \quad
    (G_{SS} + \ell_2 I) b = \tau_S s_S,

and the correlation of an atom off the support is ``g_j(f) = p_j + f q_j``
with ``p = c - D^T D z_a`` and ``q = D^T D z_b``. Lowering ``f`` from
``lam_max`` (where the code is the fit on the unpenalised atoms) to 1, the
support changes only where a support entry reaches zero (``f = a_j / b_j``)
or an atom off the support reaches its threshold (``p_j + f q_j = +-f
tau_j``). Each step jumps to the next such breakpoint and updates the
support; the last step lands on ``f = 1``. The cost is one support system
per breakpoint, about as many as the final support has atoms, whatever the
conditioning that slows proximal gradient down.

The same path gives basis pursuit denoising exactly: on each piece the
residual ``y - D z(f)`` is affine in ``f``, so the factor where its norm
equals ``sigma`` is the root of a quadratic. Followed to ``f = 0`` it gives
basis pursuit, with the dual certificate ``D z_b`` of the last piece.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .linalg import gather_support, pack_support, scatter_support, solve_psd
from .operator import DictionaryOperator
from .penalties import L1Penalty, project_free

__all__ = ["PathResult", "follow_lasso_path"]

logger = logging.getLogger(__name__)

# Breakpoints within this relative distance of the next one are taken in
# the same step (ties), and a new breakpoint must lie this far below the
# current factor.
_EVENT_RTOL = 1e-9
# Breakpoints below this fraction of lam_max are rounding noise: where the
# residual vanishes (the basis pursuit end of the path), p is ~1e-16 of its
# scale and would put spurious roots near zero.
_EVENT_FLOOR = 1e-10


@dataclass
class PathResult:
    """End point of each sample's path.

    Attributes:
        z: (B, k) the code at the final factor, exact zeros off the support.
        factor: (B,) the final threshold factor (the target, or where the
            residual norm met ``sigma``).
        finished: (B,) the path reached its end within ``max_steps``.
        degenerate: (B,) simultaneous breakpoints or a singular support system.
        steps: (B,) int64 support systems solved.
        direction: (B, m) ``D z_b`` of the last piece; at factor 0 it is the
            dual certificate of basis pursuit.
    """

    z: torch.Tensor
    factor: torch.Tensor
    finished: torch.Tensor
    degenerate: torch.Tensor
    steps: torch.Tensor
    direction: torch.Tensor


def follow_lasso_path(penalty: L1Penalty, y, op: DictionaryOperator, c, *, max_steps, target=None, sigma=None):
    """Follow the solution path of each sample from ``lam_max`` down to a factor.

    The path ends at the factor ``target`` (B,), which defaults to 1 (the
    penalty's own thresholds); 0 gives the basis pursuit limit. With
    ``sigma`` (B,) it ends earlier, where the residual norm ``||y - D z||``
    falls to ``sigma`` (basis pursuit denoising). The caller verifies the
    result.

    Shape:
        y: (B, m); c: (B, k) ``D^T y``.
    """
    B, k = c.shape
    device, dtype = c.device, c.dtype
    target = torch.ones(B, dtype=dtype, device=device) if target is None else target
    tau = penalty.tau.expand(B, k)
    forced = torch.isinf(tau)
    tau = torch.where(forced, torch.zeros_like(tau), tau)
    # Unpenalised atoms stay on the support (under nonneg they enter and leave like the others).
    free = (tau == 0) & ~forced & (not penalty.nonneg)
    eligible = ~forced & op.nonzero_atoms().expand(B, k)

    # lam_max: the factor above which the fit on the unpenalised atoms alone is optimal.
    r, w = project_free(y, torch.zeros_like(c), op, penalty)
    alpha = penalty.dual_scaling(penalty.dual_correlation(op.rmatvec(r), w), limit=torch.inf)
    factor = torch.where(alpha > 0, 1.0 / alpha.clamp(min=torch.finfo(dtype).tiny), torch.ones_like(alpha))
    # Start just above lam_max, so that the first atom's breakpoint lies below.
    factor = torch.maximum(factor * (1 + 2 * _EVENT_RTOL), target)
    floor = (_EVENT_FLOOR * factor).unsqueeze(-1)

    support = free & eligible
    sign = torch.zeros_like(c)
    z = torch.zeros_like(c)
    direction = torch.zeros_like(y)
    degenerate = torch.zeros(B, dtype=torch.bool, device=device)
    steps = torch.zeros(B, dtype=torch.int64, device=device)
    running = torch.ones(B, dtype=torch.bool, device=device)
    for step in range(max_steps):
        rows = running.nonzero().squeeze(-1)
        if rows.numel() == 0:
            break
        steps[rows] += 1
        sub_op = op.rows(rows)
        index, valid = pack_support(support[rows])
        A = sub_op.gram_block(index, valid)
        if penalty.l2 is not None:
            A.diagonal(dim1=-2, dim2=-1).add_(penalty.l2[rows] * valid.to(dtype))
        rhs = torch.stack(
            [gather_support(c[rows], index, valid), gather_support(tau[rows] * sign[rows], index, valid)], dim=-1
        )
        solution, singular = solve_psd(A, rhs)
        degenerate[rows] |= singular
        z_a = scatter_support(solution[..., 0], index, k)
        z_b = scatter_support(solution[..., 1], index, k)
        fit_a = sub_op.matvec(z_a)
        slope = sub_op.matvec(z_b)
        p = c[rows] - sub_op.rmatvec(fit_a)
        q = sub_op.rmatvec(slope)

        current = factor[rows].unsqueeze(-1)
        below = current * (1 - _EVENT_RTOL)
        noise = floor[rows]
        on = support[rows]
        # A support entry a_j - f b_j reaches zero.
        leave_at = _root(z_a, z_b)
        leave_at = torch.where(on & ~free[rows] & (leave_at < below) & (leave_at > noise), leave_at, 0.0)
        # An atom off the support reaches +f tau_j (or -f tau_j).
        off = ~on & eligible[rows]
        t = tau[rows]
        upper = _root(p, t - q)
        lower = _root(-p, t + q)
        upper = torch.where(off & (upper < below) & (upper > noise), upper, 0.0)
        lower = torch.where(off & (lower < below) & (lower > noise), lower, 0.0)
        if penalty.nonneg:
            lower = torch.zeros_like(lower)

        events = torch.maximum(leave_at, torch.maximum(upper, lower))
        nxt = torch.maximum(events.amax(-1), target[rows])
        arrived = nxt <= target[rows]
        if sigma is not None:
            reach = _residual_root(y[rows] - fit_a, slope, sigma[rows])
            stop = reach >= nxt
            nxt = torch.where(stop, reach, nxt)
            arrived = arrived | stop
        z[rows] = z_a - nxt.unsqueeze(-1) * z_b
        factor[rows] = nxt
        direction[rows] = slope
        # Every breakpoint within _EVENT_RTOL of the next one changes the support now.
        close = (events >= (nxt * (1 - _EVENT_RTOL)).unsqueeze(-1)) & ~arrived.unsqueeze(-1)
        leaving = close & (leave_at > 0)
        entering_up = close & (upper > 0)
        entering_down = close & (lower > 0)
        degenerate[rows] |= (close & (events > 0)).sum(-1) > 1
        support[rows] = (on & ~leaving) | entering_up | entering_down
        new_sign = torch.where(entering_up, torch.ones_like(z_a), sign[rows])
        new_sign = torch.where(entering_down, -torch.ones_like(z_a), new_sign)
        sign[rows] = torch.where(leaving, torch.zeros_like(z_a), new_sign)
        z[rows] = torch.where(leaving, torch.zeros_like(z_a), z[rows])
        running[rows[arrived]] = False
        logger.debug("homotopy: step %d, %d samples left", step + 1, int(running.sum()))
    return PathResult(z, factor, ~running, degenerate, steps, direction)


def _residual_root(r_a: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Return the largest f with ``||r_a + f v|| = sigma``, or -1 where there is none, (B,)."""
    a2 = (v * v).sum(-1)
    b1 = (r_a * v).sum(-1)
    c0 = (r_a * r_a).sum(-1) - sigma**2
    discriminant = b1 * b1 - a2 * c0
    ok = (a2 > 0) & (discriminant >= 0)
    safe_a2 = torch.where(ok, a2, torch.ones_like(a2))
    root = (-b1 + torch.sqrt(discriminant.clamp(min=0))) / safe_a2
    return torch.where(ok, root, torch.full_like(root, -1.0))


def _root(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """Return ``numerator / denominator`` where positive, else 0."""
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    root = numerator / safe
    return torch.where((denominator != 0) & (root > 0), root, torch.zeros_like(root))
