r"""Newton's method on the active groups of the group lasso and sparse group lasso.

On a fixed support ``S`` with fixed signs ``s`` the objective restricted to
``S`` is

.. math::

    \phi(v) = \tfrac12 v^T G v - c_S^T v + \tau_1 s^T v
    + \sum_g \tau_g \|v_g\|_2, \qquad G = D_S^T D_S,

smooth where no active group is zero, with gradient ``G v - c_S + tau1 s +
tau_g v_g / ||v_g||`` and Hessian ``G + tau_g / ||v_g|| (I - v_g v_g^T /
||v_g||^2)`` per group block. Damped Newton (Armijo backtracking on phi)
converges quadratically; the caller verifies the signs and the atoms off ``S``.
"""

from __future__ import annotations

import torch

from .linalg import gather_support, pack_support, scatter_support, solve_psd
from .operator import DictionaryOperator

__all__ = ["solve_group_support"]

_MAX_NEWTON = 40
_MAX_HALVINGS = 40
_MIN_STEP = 2.0**-10
_ARMIJO = 1e-4
# Newton stops once the gradient on the support is below this fraction of
# ||D^T y||_inf: near float64 resolution, where further steps only add noise.
_GRADIENT_RTOL = 1e-15
_DECREMENT_RTOL = 1e-12
_LAST_DECREMENT_RTOL = 1e-28


def solve_group_support(penalty, op: DictionaryOperator, c, z, g, step, support, sign):
    """Minimise the objective restricted to ``support`` per sample; return ``(z_S, singular)``.

    Starts from the proximal point ``prox(z + step g)``, which is nonzero on
    the support by construction.

    Shape:
        c, z, g, support, sign: (B, k); step: (B, 1); result (B, k), (B,).
    """
    B, k = c.shape
    index, valid = pack_support(support)
    S = index.shape[1]
    singular = torch.zeros(B, dtype=torch.bool, device=c.device)
    if S == 0:
        return torch.zeros_like(c), singular
    mask = valid.to(c.dtype)
    G = op.gram_block(index, valid)
    c_S = gather_support(c, index, valid)
    start = penalty.prox(z + step * g, step)
    v = gather_support(start, index, valid)
    group_id = torch.where(valid, penalty.index[index.clamp(max=k - 1)], torch.zeros_like(index))
    tau_slot = penalty.tau_g.gather(1, group_id)
    tau_slot = torch.where(valid & torch.isfinite(tau_slot), tau_slot, torch.zeros_like(tau_slot))
    linear = c_S - penalty.tau1 * gather_support(sign, index, valid)
    same_group = (group_id.unsqueeze(-1) == group_id.unsqueeze(-2)) & valid.unsqueeze(-1) & valid.unsqueeze(-2)
    scale = c.abs().amax(-1).clamp(min=torch.finfo(c.dtype).tiny)

    def slot_norms(v):
        squares = v.new_zeros(B, penalty.n_groups).scatter_add(1, group_id, v * v * mask)
        return squares.sqrt().gather(1, group_id)

    def phi(v):
        norms = slot_norms(v)
        quadratic = 0.5 * (v * (G @ v.unsqueeze(-1)).squeeze(-1)).sum(-1)
        # Each slot carries tau_g ||v_g|| * v_j^2 / ||v_g||^2, which sums to tau_g ||v_g||.
        share = torch.where(norms > 0, v * v / norms.clamp(min=torch.finfo(v.dtype).tiny), torch.zeros_like(v))
        return quadratic - (linear * v).sum(-1) + (tau_slot * share).sum(-1)

    active = torch.ones(B, dtype=torch.bool, device=c.device)
    for _ in range(_MAX_NEWTON):
        norms = slot_norms(v)
        positive = norms > 0
        inverse = torch.where(positive, 1.0 / norms.clamp(min=torch.finfo(v.dtype).tiny), torch.zeros_like(norms))
        gradient = (G @ v.unsqueeze(-1)).squeeze(-1) - linear + tau_slot * v * inverse
        gradient = gradient * mask
        active = active & (gradient.abs().amax(-1) > _GRADIENT_RTOL * scale)
        if not bool(active.any()):
            break
        curvature = tau_slot * inverse
        unit = v * inverse
        H = G + torch.diag_embed(curvature) - curvature.unsqueeze(-1) * unit.unsqueeze(-1) * unit.unsqueeze(-2) * same_group
        direction, singular = solve_psd(H, -gradient)
        direction = direction * mask * active.unsqueeze(-1).to(v.dtype)

        value = phi(v)
        slope = (gradient * direction).sum(-1)
        # Once the predicted decrease is at rounding level phi cannot rank the
        # points, so the full Newton step is taken (the quadratic regime).
        # Far below that level the step changes nothing more: it is the last.
        size = value.abs().clamp(min=torch.finfo(v.dtype).tiny)
        full = -slope <= _DECREMENT_RTOL * size
        last = -slope <= _LAST_DECREMENT_RTOL * size
        alpha = torch.ones(B, 1, dtype=v.dtype, device=v.device)
        pending = active & ~full
        for _ in range(_MAX_HALVINGS):
            if not bool(pending.any()):
                break
            trial = v + alpha * direction
            good = phi(trial) <= value + _ARMIJO * alpha.squeeze(-1) * slope
            pending = pending & ~good
            alpha = torch.where(pending.unsqueeze(-1), 0.5 * alpha, alpha)
        stalled = pending
        v = torch.where((active & ~stalled).unsqueeze(-1), v + alpha * direction, v)
        # A damped step means a group or sign is heading for zero, i.e. the
        # support is wrong: stop there and let the next round re-identify it.
        active = active & ~stalled & ~last & (alpha.squeeze(-1) >= _MIN_STEP)
    return scatter_support(v, index, k), singular
