"""The group lasso."""

from __future__ import annotations

import torch

from .base import ScalarSpec
from .formulation import CvxpyFormulation
from .group_family import GroupFamilyProblem, group_family_formulation, group_thresholds
from .prox import prox_group_l2

__all__ = ["GroupLasso"]


class GroupLasso(GroupFamilyProblem):
    r"""The group lasso.

    Solves, per sample,

    .. math::

        \min_z \ \tfrac12 \|D z - y\|_2^2 + \lambda \sum_g w_g \|z_g\|_2

    with default weights ``w_g = sqrt(|g|)``. scikit-learn has no group lasso;
    with the ``1 / (2 n_samples)`` scaling of its linear models the
    equivalent weight is ``lam = n_samples * alpha``.

    Args:
        lam: penalty weight, ``>= 0`` and finite; a float or a tensor of shape
            () or (B,). May require grad.
        groups: a partition of the atoms: a list of group sizes (contiguous
            groups) or a list of index lists. Groups must be non-empty,
            disjoint, and together cover every atom exactly once.
        weights: optional per-group weights, shape (g,) or (B, g). ``0`` leaves
            a group unpenalised; ``+inf`` forces it to zero (its atoms are
            removed before the solve and get exactly zero codes and gradients).

    Shape:
        y: (m,) or (B, m); D: (m, k) or (B, m, k); z: (k,) or (B, k).
    """

    kind = "group_lasso"
    scalar_specs = (ScalarSpec("lam"),)

    def __init__(self, lam, groups, weights=None) -> None:
        super().__init__(groups, (lam,), weights)

    def cvxpy_formulation(self, m: int, k: int) -> CvxpyFormulation:
        return group_family_formulation(m, k, self.groups.members, with_l1=False)

    def prox(self, v, step, params) -> torch.Tensor:
        """Return the proximal step ``prox_{step * penalty}(v)``; step is (B, 1)."""
        _, tau_g = group_thresholds(params)
        return prox_group_l2(v, step * tau_g, params["group_index"], params["n_groups"])
