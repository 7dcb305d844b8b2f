"""Basis pursuit denoising."""

from __future__ import annotations

import cvxpy as cp
import torch

from .base import Problem, ScalarSpec, batched_matvec, batched_rmatvec
from .basis_pursuit import distance_to_range, feasibility_tolerance
from .formulation import CvxpyFormulation

__all__ = ["BasisPursuitDenoising"]


class BasisPursuitDenoising(Problem):
    r"""Basis pursuit denoising, in its constrained form.

    Solves, per sample,

    .. math::

        \min_z \ \|z\|_1 \quad \text{s.t.} \quad \|D z - y\|_2 \le \sigma

    The code is zero when ``||y|| <= sigma``. A sample with
    ``dist(y, range(D)) > sigma`` has no feasible point and raises
    ``InfeasibleProblemError``. The Lagrangian form with a penalty weight is
    ``Lasso``.

    Args:
        sigma: noise level, ``>= 0`` and finite; float or tensor () or (B,).

    Shape:
        y: (m,) or (B, m); D: (m, k) or (B, m, k); z: (k,) or (B, k).
    """

    kind = "basis_pursuit_denoising"
    scalar_specs = (ScalarSpec("sigma"),)

    def __init__(self, sigma) -> None:
        super().__init__()
        self._store_scalar(self.scalar_specs[0], sigma)

    def objective_batched(self, z, y, D, params) -> torch.Tensor:
        return z.abs().sum(-1)

    def infeasibility(self, y, D, params) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (distance of y to range(D) (B,), bool mask where it exceeds sigma)."""
        distance = distance_to_range(y, D)
        slack = feasibility_tolerance(y.dtype) * torch.clamp(y.norm(dim=-1), min=1.0)
        return distance, distance > params["sigma"].detach() + slack

    def _dual(self, z, y, D) -> torch.Tensor:
        r = y - batched_matvec(D, z)
        scale = batched_rmatvec(D, r).abs().amax(-1)
        return torch.where(
            scale.unsqueeze(-1) > 0,
            r / scale.clamp(min=torch.finfo(z.dtype).tiny).unsqueeze(-1),
            torch.zeros_like(r),
        )

    def duality_gap_batched(self, z, y, D, params) -> torch.Tensor:
        """Return the relative gap with the dual point nu = r / ||D^T r||_inf."""
        sigma = params["sigma"]
        nu = self._dual(z, y, D)
        primal = z.abs().sum(-1)
        dual = (y * nu).sum(-1) - sigma * nu.norm(dim=-1)
        dual = torch.where(y.norm(dim=-1) <= sigma, torch.zeros_like(dual), dual)
        gap = (primal - dual).abs()
        scale = torch.maximum(primal, dual.abs())
        return torch.where(scale > 0, gap / scale.clamp(min=torch.finfo(z.dtype).tiny), gap)

    def residual_batched(self, z, y, D, params) -> torch.Tensor:
        """Return the worst of: constraint violation, slack at a nonzero code, sign mismatch.

        The first two are relative to ``||y||``; the sign mismatch is
        ``|d_j^T nu - sign(z_j)|`` on the support, with nu = r / ||D^T r||_inf.
        """
        sigma = params["sigma"]
        tiny = torch.finfo(z.dtype).tiny
        residual_norm = (batched_matvec(D, z) - y).norm(dim=-1)
        scale = y.norm(dim=-1).clamp(min=tiny)
        violation = (residual_norm - sigma).clamp(min=0) / scale
        nonzero = (z != 0).any(-1)
        slack = torch.where(nonzero, (sigma - residual_norm).clamp(min=0) / scale, 0.0)
        correlation = batched_rmatvec(D, self._dual(z, y, D))
        mismatch = torch.where(z != 0, (correlation - torch.sign(z)).abs(), 0.0).amax(-1)
        return torch.maximum(violation, torch.maximum(slack, mismatch))

    def cvxpy_formulation(self, m: int, k: int) -> CvxpyFormulation:
        D = cp.Parameter((m, k), name="D")
        y = cp.Parameter(m, name="y")
        sigma = cp.Parameter(nonneg=True, name="sigma")
        z = cp.Variable(k, name="z")
        problem = cp.Problem(cp.Minimize(cp.norm1(z)), [cp.norm(D @ z - y, 2) <= sigma])
        return CvxpyFormulation(
            problem, [D, y, sigma], z, lambda y, D, params: [D, y, params["sigma"]]
        )

    def rescale(self, params: dict, d_scale, y_scale) -> dict:
        return dict(params, sigma=params["sigma"] / y_scale)

    def lam_max_batched(self, y, D, params) -> torch.Tensor:
        raise ValueError(
            "basis pursuit denoising has no penalty weight, so lam_max is undefined for it."
        )
