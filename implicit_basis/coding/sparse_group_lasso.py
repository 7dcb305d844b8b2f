"""The sparse group lasso."""

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
from .group_lasso import resolve_groups
from .groups import Groups

__all__ = ["SparseGroupLasso"]


class SparseGroupLasso(Problem):
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
        super().__init__()
        self.groups = Groups(groups)
        self._store_scalar(self.scalar_specs[0], lam)
        self._store_scalar(self.scalar_specs[1], l1_ratio)
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
        return group_family_formulation(m, k, self.groups.members, with_l1=True)

    def prox(self, v, step, params) -> torch.Tensor:
        """Return the proximal step ``prox_{step * penalty}(v)``; step is (B, 1)."""
        from .group_family import group_thresholds
        from .prox import prox_sparse_group

        tau1, tau_g = group_thresholds(params)
        index, n_groups = params["group_index"], params["n_groups"]
        return prox_sparse_group(v, step * tau1.unsqueeze(-1), step * tau_g, index, n_groups)

    def implicit_vjp(self, v, z, y, D, params, needs, dense_limit):
        return group_family_vjp(v, z, y, D, params, needs, dense_limit)

    def cache_key(self) -> tuple:
        return (self.kind, self.groups.key())

    def rescale(self, params: dict, d_scale, y_scale) -> dict:
        return dict(params, lam=params["lam"] / (d_scale * y_scale))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, groups={self.groups!r}"
