"""Basis pursuit denoising."""

from __future__ import annotations

import cvxpy as cp
import torch

from .base import Problem, ScalarSpec, batched_matvec, batched_rmatvec
from .basis_pursuit import distance_to_range, feasibility_tolerance, support_dual
from .formulation import CvxpyFormulation

__all__ = ["BasisPursuitDenoising"]

# A residual ||D z - y|| below this fraction of ||y|| is at rounding level
# (about sqrt(eps)): its direction carries no dual information.
_ROUNDING_RESIDUAL = 1.5e-8


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

    def _dual(self, z, y, D, sigma) -> torch.Tensor:
        """Return a dual feasible point nu (``||D^T nu||_inf <= 1``), (B, m).

        It is ``r / ||D^T r||_inf`` with ``r = y - D z``. A residual at
        rounding level (``sigma = 0``, or a signal fitted exactly) has no
        reliable direction. There the certificate of basis pursuit on the
        support of ``z`` (``D_S^T nu = sign(z_S)``, scaled to be feasible)
        replaces it when its dual value is larger.
        """
        tiny = torch.finfo(z.dtype).tiny
        r = y - batched_matvec(D, z)
        scale = batched_rmatvec(D, r).abs().amax(-1)
        nu = torch.where(
            scale.unsqueeze(-1) > 0, r / scale.clamp(min=tiny).unsqueeze(-1), torch.zeros_like(r)
        )
        small = r.norm(dim=-1) <= _ROUNDING_RESIDUAL * y.norm(dim=-1)
        rows = (small & (z != 0).any(-1)).nonzero().flatten()
        if rows.numel() == 0:
            return nu
        D_rows = D if D.dim() == 2 else D[rows]
        certificate = support_dual(z[rows], D_rows)
        size = batched_rmatvec(D_rows, certificate).abs().amax(-1)
        certificate = certificate / size.clamp(min=1.0).unsqueeze(-1)

        def value(point):
            return (y[rows] * point).sum(-1) - sigma[rows] * point.norm(dim=-1)

        better = value(certificate) >= value(nu[rows])
        nu = nu.clone()
        nu[rows[better]] = certificate[better]
        return nu

    def duality_gap_batched(self, z, y, D, params) -> torch.Tensor:
        """Return the relative gap with the dual point of ``_dual`` (nu = r / ||D^T r||_inf)."""
        sigma = params["sigma"]
        nu = self._dual(z, y, D, sigma)
        primal = z.abs().sum(-1)
        dual = (y * nu).sum(-1) - sigma * nu.norm(dim=-1)
        dual = torch.where(y.norm(dim=-1) <= sigma, torch.zeros_like(dual), dual)
        gap = (primal - dual).abs()
        scale = torch.maximum(primal, dual.abs())
        return torch.where(scale > 0, gap / scale.clamp(min=torch.finfo(z.dtype).tiny), gap)

    def residual_batched(self, z, y, D, params) -> torch.Tensor:
        """Return the worst of: constraint violation, slack at a nonzero code, sign mismatch.

        The first two are relative to ``||y||``; the sign mismatch is
        ``|d_j^T nu - sign(z_j)|`` on the support, with the dual point of
        ``_dual`` (nu = r / ||D^T r||_inf unless r is at rounding level).
        """
        sigma = params["sigma"]
        tiny = torch.finfo(z.dtype).tiny
        residual_norm = (batched_matvec(D, z) - y).norm(dim=-1)
        scale = y.norm(dim=-1).clamp(min=tiny)
        violation = (residual_norm - sigma).clamp(min=0) / scale
        nonzero = (z != 0).any(-1)
        slack = torch.where(nonzero, (sigma - residual_norm).clamp(min=0) / scale, 0.0)
        correlation = batched_rmatvec(D, self._dual(z, y, D, sigma))
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

    def implicit_vjp(self, v, z, y, D, params, needs, dense_limit):
        r"""Return the VJPs of the solution map through its KKT system on the support.

        With the constraint active, the unknowns (z_S, mu) with mu the
        multiplier solve ``F1 = D_S^T (D_S z_S - y) + mu s = 0`` and
        ``F2 = (||D_S z_S - y||^2 - sigma^2) / 2 = 0``. The adjoint system
        ``[[G, -mu s], [s^T, 0]] [u; nu] = [v_S; 0]``, G = D_S^T D_S, gives
        ``u = a - (s^T a / s^T b) b`` and ``nu = -(s^T a) / (mu s^T b)`` with
        ``a = G^{-1} v_S`` and ``b = G^{-1} s``. Then dL/dy = D_S u - nu r,
        dL/dsigma = nu sigma and dL/dD_S = r u^T - (D_S u) z_S^T + nu r z_S^T,
        with r = y - D z. A zero code (||y|| <= sigma) has zero gradients.
        """
        from ..support import SupportDictionary, gather_atoms, support_of
        from .lasso import solve_support_system

        support = support_of(z != 0)
        real = support.mask.to(z.dtype)
        columns = SupportDictionary(D, support)
        z_S = gather_atoms(z, support)
        v_S = gather_atoms(v, support)
        signs = torch.sign(z_S)
        rhs = torch.stack([v_S, signs], -1)
        solution, singular = solve_support_system(columns, rhs, support.mask, None, None, dense_limit)
        a, b = solution[..., 0], solution[..., 1]

        # z is zero off the support, so D z = D_S z_S.
        r = y - columns.apply(z_S)
        correlation = columns.apply_transpose(r)
        count = real.sum(-1)
        nonzero = count > 0
        one = torch.ones_like(count)
        # On the support D_S^T r = mu s, so mu is the mean of s * D_S^T r.
        mu = (signs * correlation * real).sum(-1) / torch.where(nonzero, count, one)
        s_a = (signs * a).sum(-1)
        s_b = (signs * b).sum(-1)
        usable = nonzero & (s_b > 0) & (mu > 0)
        s_b = torch.where(usable, s_b, one)
        mu = torch.where(usable, mu, one)
        u = torch.where(usable.unsqueeze(-1), a - (s_a / s_b).unsqueeze(-1) * b, 0.0)
        nu = torch.where(usable, -s_a / (mu * s_b), 0.0)

        grads = {}
        Du = columns.apply(u)
        if "y" in needs:
            grads["y"] = Du - nu.unsqueeze(-1) * r
        if "sigma" in needs:
            grads["sigma"] = nu * params["sigma"]
        if "D" in needs:
            grads["D"] = columns.outer(r, u) + columns.outer(nu.unsqueeze(-1) * r - Du, z_S)
        return grads, singular | (nonzero & ~usable)

    def lam_max_batched(self, y, D, params) -> torch.Tensor:
        raise ValueError(
            "basis pursuit denoising has no penalty weight, so lam_max is undefined for it."
        )
