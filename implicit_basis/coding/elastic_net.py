"""The elastic net."""

from __future__ import annotations

import torch

from .base import ScalarSpec
from .formulation import CvxpyFormulation
from .lasso import LassoFamilyProblem, atom_thresholds, lasso_family_formulation
from .prox import prox_elastic_net

__all__ = ["ElasticNet"]


class ElasticNet(LassoFamilyProblem):
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
        super().__init__((lam, l2), weights, nonneg)

    def cvxpy_formulation(self, m: int, k: int) -> CvxpyFormulation:
        return lasso_family_formulation(m, k, self.nonneg, with_l2=True)

    def prox(self, v, step, params) -> torch.Tensor:
        """Return the proximal step ``prox_{step * penalty}(v)``; step is (B, 1)."""
        ridge = step * params["l2"].unsqueeze(-1)
        return prox_elastic_net(v, step * atom_thresholds(params), ridge, self.nonneg)
