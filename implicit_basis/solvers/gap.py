r"""The relative duality gap of the penalised kinds, from products already computed.

For ``P(z) = 1/2 ||D z - y||^2 + h(z)`` the dual point ``theta = alpha r_w``
built from the residual ``r_w = y - D w`` of any point ``w``, scaled by the
largest ``alpha`` in [0, 1] that makes it dual feasible, gives the lower
bound

.. math::

    P^\star \ge \tfrac12 \|y\|^2 - \tfrac12 \|y - \alpha r_w\|^2
    - \tfrac{\alpha^2 \ell_2}{2} \|w\|^2 ,

(the last term for the elastic net, the lasso on ``[D; sqrt(l2) I]``).
Unpenalised atoms must have a zero dual correlation, so they are first
refitted (``project_free``). The solver takes ``w`` as the point where it
last evaluated the gradient, so the check costs no product with ``D`` when
every atom is penalised. The gap is divided by ``max(P(z), 1/2
||y||^2)``, which makes it invariant to scaling ``(D, y, lam)`` to ``(c D, c
y, c^2 lam)``. It matches the problems' ``duality_gap`` oracles when ``w = z``.
"""

from __future__ import annotations

import torch

from .operator import DictionaryOperator
from .penalties import project_free, project_free_nonneg

__all__ = ["relative_gap"]


def relative_gap(penalty, y, op: DictionaryOperator, z, Dz, w, Dw, corr_w) -> torch.Tensor:
    """Return the relative duality gap of ``z`` with the dual point of ``w``, (B,).

    Shape:
        y, Dz, Dw: (B, m); z, w, corr_w: (B, k) with ``corr_w = D^T (y - D w)``.
    """
    r_z = Dz - y
    primal = 0.5 * (r_z * r_z).sum(-1) + penalty.value(z)
    r_w = y - Dw
    if penalty.has_free():
        # The dual bounds the correlation of unpenalised atoms by 0 (one-sided
        # for a non-negative code), so refit them.
        if penalty.nonneg:
            r_w, w = project_free_nonneg(r_w, w, op, penalty)
        else:
            r_w, w = project_free(r_w, w, op, penalty)
        corr_w = op.rmatvec(r_w)
    alpha = penalty.dual_scaling(penalty.dual_correlation(corr_w, w))
    shifted = y - alpha.unsqueeze(-1) * r_w
    half_norm = 0.5 * (y * y).sum(-1)
    dual = half_norm - 0.5 * (shifted * shifted).sum(-1) - penalty.dual_ridge(alpha, w)
    gap = torch.relu(primal - dual)
    scale = torch.maximum(half_norm, primal)
    return torch.where(scale > 0, gap / scale.clamp(min=torch.finfo(y.dtype).tiny), gap)
