"""The elastic net."""

from __future__ import annotations

import torch

from .base import Problem, ScalarSpec
from .formulation import CvxpyFormulation
from .lasso import (
    lasso_family_formulation,
    lasso_family_gap,
    lasso_family_lam_max,
    lasso_family_objective,
    lasso_family_rescale,
    lasso_family_residual,
    lasso_family_vjp,
)

__all__ = ["ElasticNet"]


class ElasticNet(Problem):
    r"""The elastic net.

    Solves, per sample,

    .. math::

        \min_z \ \tfrac12 \|D z - y\|_2^2 + \lambda \sum_j w_j |z_j|
        + \tfrac{\ell_2}{2} \|z\|_2^2

    scikit-learn: ``sklearn.linear_model.ElasticNet(alpha, l1_ratio)``
    minimises ``1/(2 n) ||y - X w||^2 + alpha l1_ratio ||w||_1 + alpha (1 -
    l1_ratio) / 2 ||w||^2``, which equals ``lam = n alpha l1_ratio`` and
    ``l2 = n alpha (1 - l1_ratio)`` here (``n`` is the number of rows of D).

    Args:
        lam: l1 weight, ``>= 0`` and finite; float or tensor () or (B,).
        l2: l2 weight, ``>= 0`` and finite; float or tensor () or (B,).
        weights: optional per-atom l1 weights (k,) or (B, k), as in ``Lasso``.
        nonneg: constrain the code to be non-negative.

    Shape:
        y: (m,) or (B, m); D: (m, k) or (B, m, k); z: (k,) or (B, k).
    """

    kind = "elastic_net"
    scalar_specs = (ScalarSpec("lam"), ScalarSpec("l2"))

    def __init__(self, lam, l2, weights=None, nonneg: bool = False) -> None:
        super().__init__()
        if not isinstance(nonneg, bool):
            raise TypeError(f"nonneg must be a bool; got {type(nonneg).__name__}.")
        self._store_scalar(self.scalar_specs[0], lam)
        self._store_scalar(self.scalar_specs[1], l2)
        self._store_weights("weights", weights, "atoms")
        self.nonneg = nonneg

    def weight_names(self) -> tuple[str, ...]:
        return ("weights",)

    def resolve(self, B, k, dtype, device) -> dict:
        params = super().resolve(B, k, dtype, device)
        params["weights"] = self._resolve_weights("weights", B, k, "atoms", dtype, device)
        params["nonneg"] = self.nonneg
        return params

    def objective_batched(self, z, y, D, params) -> torch.Tensor:
        return lasso_family_objective(z, y, D, params)

    def duality_gap_batched(self, z, y, D, params) -> torch.Tensor:
        return lasso_family_gap(z, y, D, params)

    def residual_batched(self, z, y, D, params) -> torch.Tensor:
        return lasso_family_residual(z, y, D, params)

    def lam_max_batched(self, y, D, params) -> torch.Tensor:
        return lasso_family_lam_max(y, D, params)

    def cvxpy_formulation(self, m: int, k: int) -> CvxpyFormulation:
        return lasso_family_formulation(m, k, self.nonneg, with_l2=True)

    def prox(self, v, step, params) -> torch.Tensor:
        """Return the proximal step ``prox_{step * penalty}(v)``; step is (B, 1)."""
        from .lasso import atom_thresholds
        from .prox import prox_elastic_net

        ridge = step * params["l2"].unsqueeze(-1)
        return prox_elastic_net(v, step * atom_thresholds(params), ridge, self.nonneg)

    def implicit_vjp(self, v, z, y, D, params, needs, dense_limit):
        return lasso_family_vjp(v, z, y, D, params, needs, dense_limit)

    def cache_key(self) -> tuple:
        return (self.kind, self.nonneg)

    def rescale(self, params: dict, d_scale, y_scale) -> dict:
        return lasso_family_rescale(params, d_scale, y_scale)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self._value("weights") is not None:
            text += ", weights=..."
        if self.nonneg:
            text += ", nonneg=True"
        return text
