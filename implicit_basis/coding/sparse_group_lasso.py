"""The sparse group lasso."""

from __future__ import annotations

import torch

from .base import ScalarSpec
from .formulation import CvxpyFormulation
from .group_family import GroupFamilyProblem, group_family_formulation, group_thresholds
from .prox import prox_sparse_group

__all__ = ["SparseGroupLasso"]


class SparseGroupLasso(GroupFamilyProblem):
    r"""The sparse group lasso.

    Solves, per sample,

    .. math::

        \min_z \ \tfrac12 \|D z - y\|_2^2
        + \lambda \Big(a \|z\|_1 + (1 - a) \sum_g w_g \|z_g\|_2\Big)

    with ``a = l1_ratio`` in [0, 1] and default weights ``w_g = sqrt(|g|)``.
    ``a = 1`` is the lasso and ``a = 0`` the group lasso. With the
    ``1 / (2 n_samples)`` scaling of scikit-learn's linear models the
    equivalent weight is ``lam = n_samples * alpha``.

    Args:
        lam: penalty weight, ``>= 0`` and finite; float or tensor () or (B,).
        groups: a partition of the atoms (see ``GroupLasso``).
        l1_ratio: the mix ``a`` in [0, 1]; float or tensor () or (B,).
        weights: optional per-group weights (g,) or (B, g); ``+inf`` forces a
            group to zero; ``0`` leaves only the l1 part on it.

    Shape:
        y: (m,) or (B, m); D: (m, k) or (B, m, k); z: (k,) or (B, k).
    """

    kind = "sparse_group_lasso"
    scalar_specs = (ScalarSpec("lam"), ScalarSpec("l1_ratio", 0.0, 1.0))

    def __init__(self, lam, groups, l1_ratio, weights=None) -> None:
        super().__init__(groups, (lam, l1_ratio), weights)

    def cvxpy_formulation(self, m: int, k: int) -> CvxpyFormulation:
        return group_family_formulation(m, k, self.groups.members, with_l1=True)

    def prox(self, v, step, params) -> torch.Tensor:
        """Return the proximal step ``prox_{step * penalty}(v)``; step is (B, 1)."""
        tau1, tau_g = group_thresholds(params)
        index, n_groups = params["group_index"], params["n_groups"]
        return prox_sparse_group(v, step * tau1.unsqueeze(-1), step * tau_g, index, n_groups)
