"""The group lasso."""

from __future__ import annotations

import torch

from .base import Problem, ScalarSpec
from .formulation import CvxpyFormulation
from .group_family import (
    group_family_formulation,
    group_family_gap,
    group_family_lam_max,
    group_family_objective,
    group_family_residual,
    group_family_vjp,
)
from .groups import Groups

__all__ = ["GroupLasso"]


class GroupLasso(Problem):
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
        super().__init__()
        self.groups = Groups(groups)
        self._store_scalar(self.scalar_specs[0], lam)
        self._store_weights("weights", weights, "groups")
        weights = self._value("weights")
        if weights is not None and weights.shape[-1] != self.groups.n_groups:
            raise ValueError(
                f"weights has length {weights.shape[-1]} but there are "
                f"{self.groups.n_groups} groups; give one weight per group."
            )

    def weight_names(self) -> tuple[str, ...]:
        return ("weights",)

    def resolve(self, B, k, dtype, device) -> dict:
        params = super().resolve(B, k, dtype, device)
        params.update(resolve_groups(self, B, k, dtype, device))
        params["l1_ratio"] = None
        return params

    def objective_batched(self, z, y, D, params) -> torch.Tensor:
        return group_family_objective(z, y, D, params)

    def duality_gap_batched(self, z, y, D, params) -> torch.Tensor:
        return group_family_gap(z, y, D, params)

    def residual_batched(self, z, y, D, params) -> torch.Tensor:
        return group_family_residual(z, y, D, params)

    def lam_max_batched(self, y, D, params) -> torch.Tensor:
        return group_family_lam_max(y, D, params)

    def cvxpy_formulation(self, m: int, k: int) -> CvxpyFormulation:
        return group_family_formulation(m, k, self.groups.members, with_l1=False)

    def prox(self, v, step, params) -> torch.Tensor:
        """Return the proximal step ``prox_{step * penalty}(v)``; step is (B, 1)."""
        from .group_family import group_thresholds
        from .prox import prox_group_l2

        _, tau_g = group_thresholds(params)
        return prox_group_l2(v, step * tau_g, params["group_index"], params["n_groups"])

    def implicit_vjp(self, v, z, y, D, params, needs, dense_limit):
        return group_family_vjp(v, z, y, D, params, needs, dense_limit)

    def cache_key(self) -> tuple:
        return (self.kind, self.groups.key())

    def rescale(self, params: dict, d_scale, y_scale) -> dict:
        return dict(params, lam=params["lam"] / (d_scale * y_scale))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, groups={self.groups!r}"


def resolve_groups(problem: Problem, B: int, k: int, dtype, device) -> dict:
    """Return the group index, count and (B, g) weights of a group-structured problem."""
    groups: Groups = problem.groups
    index = groups.index(k, device=device)
    weights = problem._resolve_weights("weights", B, groups.n_groups, "groups", dtype, device)
    if weights is None:
        weights = groups.default_weights(dtype, device).expand(B, groups.n_groups)
    return {"group_index": index, "n_groups": groups.n_groups, "weights": weights, "groups": groups}
