"""Basis pursuit, and the range checks shared with basis pursuit denoising."""

from __future__ import annotations

import cvxpy as cp
import torch

from .base import Problem, batched_matvec, batched_rmatvec
from .formulation import CvxpyFormulation

__all__ = ["BasisPursuit", "distance_to_range", "feasibility_tolerance"]


def feasibility_tolerance(dtype: torch.dtype) -> float:
    """Return the relative distance to range(D) below which ``y`` counts as in it.

    Data given in float32 carries a relative rounding error of about 6e-8 per
    entry, which products like ``y = D x`` amplify; 1e-5 leaves room for that.
    Float64 data is held to 1e-9.
    """
    return 1e-5 if dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-9


def distance_to_range(y: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Return ||y - P y|| per sample, P the orthogonal projector onto range(D).

    Computed in float64 from an SVD of D, keeping singular values above
    ``max(m, k) * eps * s_max``.

    Shape:
        y: (B, m); D: (m, k) or (B, m, k); result (B,).
    """
    y64, D64 = y.detach().double(), D.detach().double()
    U, s, _ = torch.linalg.svd(D64, full_matrices=False)
    cutoff = max(D.shape[-2], D.shape[-1]) * torch.finfo(torch.float64).eps
    keep = s > cutoff * s.amax(-1, keepdim=True).clamp(min=torch.finfo(torch.float64).tiny)
    U = U * keep.unsqueeze(-2).to(U.dtype)
    if D.dim() == 2:
        projected = (y64 @ U) @ U.T
    else:
        coefficients = torch.bmm(U.transpose(1, 2), y64.unsqueeze(-1))
        projected = torch.bmm(U, coefficients).squeeze(-1)
    return (y64 - projected).norm(dim=-1).to(y.dtype)


def support_dual(z: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Return a dual certificate nu with D_S^T nu = sign(z_S) on the support S, (B, m).

    The min-norm solution is tried first. When it violates ``|d_j^T nu| <= 1``
    off the support, which can happen with |S| < m although a valid
    certificate exists, the free part of nu (in the null space of D_S^T) is
    chosen by a linear program minimising ``max_j |d_j^T nu|`` off the support
    (scipy's HiGHS, on the CPU in float64).
    """
    support = (z != 0).to(z.dtype)
    D_batched = D if D.dim() == 3 else D.expand(z.shape[0], -1, -1)
    D_support = D_batched * support.unsqueeze(1)
    nu = (torch.linalg.pinv(D_support.transpose(1, 2)) @ torch.sign(z).unsqueeze(-1)).squeeze(-1)
    correlation = batched_rmatvec(D, nu).abs().amax(-1) if z.shape[-1] else nu.new_zeros(z.shape[0])
    violating = (correlation > 1 + 1e-9).nonzero().flatten().tolist()
    for b in violating:
        refined = _certificate_by_lp(D_batched[b], z[b], nu[b])
        if refined is not None:
            nu[b] = refined
    return nu


def _certificate_by_lp(D: torch.Tensor, z: torch.Tensor, nu0: torch.Tensor):
    """Return nu0 + N w minimising the largest off-support |d_j^T nu|, or None on failure."""
    import numpy as np
    from scipy.linalg import null_space
    from scipy.optimize import linprog

    D64 = D.detach().cpu().double().numpy()
    support = (z != 0).cpu().numpy()
    N = null_space(D64[:, support].T) if support.any() else np.eye(D64.shape[0])
    off = D64[:, ~support].T
    if N.shape[1] == 0 or off.shape[0] == 0:
        return None
    base = off @ nu0.detach().cpu().double().numpy()
    A = off @ N
    n_free = N.shape[1]
    # Variables (w, t): minimise t subject to -t <= base + A w <= t.
    cost = np.zeros(n_free + 1)
    cost[-1] = 1.0
    ones = np.ones((A.shape[0], 1))
    bounds_matrix = np.vstack([np.hstack([A, -ones]), np.hstack([-A, -ones])])
    bounds_vector = np.concatenate([-base, base])
    result = linprog(
        cost, A_ub=bounds_matrix, b_ub=bounds_vector,
        bounds=[(None, None)] * (n_free + 1), method="highs",
    )
    if not result.success:
        return None
    nu = nu0.detach().cpu().double().numpy() + N @ result.x[:-1]
    return torch.as_tensor(nu, dtype=nu0.dtype, device=nu0.device)


class BasisPursuit(Problem):
    r"""Basis pursuit.

    Solves, per sample,

    .. math::

        \min_z \ \|z\|_1 \quad \text{s.t.} \quad D z = y

    A sample whose ``y`` is farther from range(D) than
    ``feasibility_tolerance`` (relative to ``||y||``) raises
    ``InfeasibleProblemError`` naming the sample and the distance; within the
    tolerance, the solve fits the projection of ``y`` onto range(D). For a
    relaxed problem use ``BasisPursuitDenoising`` (explicit ``sigma``) or a
    small-``lam`` ``Lasso``.

    NOTE: with float32 (or half) inputs the implicit backend holds the
    constraint to the data's rounding, ``||D z - y|| <= 8 eps ||y||`` (about
    1e-6 relative) for the float64 code, and returns that denoising solution
    rounded to the input dtype (the rounding can add a few percent to the
    residual). Where that solve does not converge, exact equality is solved
    instead. Rounded data lies
    off the span of its true support, and exact equality would fit the
    rounding with up to m atoms. The cvxpylayers backend solves exact
    equality on the rounded data. Pass float64 data for exact equality.

    Only the component of the gradient in ``y`` that lies in range(D) is
    defined, because moving ``y`` off range(D) makes the problem infeasible.
    The implicit backend returns that component (the minimum-norm gradient).
    The cvxpylayers backend may add an arbitrary component in null(D^T), so
    project its gradient onto range(D) before using or comparing it.

    A code with fewer nonzeros than rank(D), as in compressed sensing
    (``y = D x`` with ``x`` sparse), is not differentiable in every direction
    of ``y``: moving ``y`` off span(D_S) changes the support. The implicit
    backend flags it in ``info.degenerate`` and returns the derivative of the
    fit on the support, ``dz_S = D_S^+ (dy - dD_S z_S)``, which is exact for
    perturbations that keep ``y`` in span(D_S).

    Shape:
        y: (m,) or (B, m); D: (m, k) or (B, m, k); z: (k,) or (B, k).
    """

    kind = "basis_pursuit"
    scalar_specs = ()

    def objective_batched(self, z, y, D, params) -> torch.Tensor:
        return z.abs().sum(-1)

    def infeasibility(self, y, D, params) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (distance of y to range(D) (B,), bool mask of infeasible samples (B,))."""
        distance = distance_to_range(y, D)
        scale = y.norm(dim=-1)
        limit = feasibility_tolerance(y.dtype) * torch.clamp(scale, min=1.0)
        return distance, distance > limit

    def duality_gap_batched(self, z, y, D, params) -> torch.Tensor:
        """Return the relative gap of the dual certificate built on the support of ``z``."""
        nu = support_dual(z, D)
        dual_norm = batched_rmatvec(D, nu).abs().amax(-1)
        nu = nu / dual_norm.clamp(min=1.0).unsqueeze(-1)
        primal = z.abs().sum(-1)
        dual = (y * nu).sum(-1)
        gap = (primal - dual).abs()
        scale = torch.maximum(primal, dual.abs())
        return torch.where(scale > 0, gap / scale.clamp(min=torch.finfo(z.dtype).tiny), gap)

    def residual_batched(self, z, y, D, params) -> torch.Tensor:
        """Return max(relative ||D z - y||, dual infeasibility of the support certificate)."""
        feasibility = (batched_matvec(D, z) - y).norm(dim=-1)
        scale = y.norm(dim=-1)
        feasibility = torch.where(
            scale > 0, feasibility / scale.clamp(min=torch.finfo(z.dtype).tiny), feasibility
        )
        nu = support_dual(z, D)
        correlation = batched_rmatvec(D, nu)
        support = z != 0
        on_support = torch.where(support, (correlation - torch.sign(z)).abs(), 0.0).amax(-1)
        off_support = (correlation.abs() - 1).clamp(min=0).amax(-1)
        return torch.maximum(feasibility, torch.maximum(on_support, off_support))

    def cvxpy_formulation(self, m: int, k: int) -> CvxpyFormulation:
        D = cp.Parameter((m, k), name="D")
        y = cp.Parameter(m, name="y")
        z = cp.Variable(k, name="z")
        problem = cp.Problem(cp.Minimize(cp.norm1(z)), [D @ z == y])
        return CvxpyFormulation(problem, [D, y], z, lambda y, D, params: [D, y])

    def rescale(self, params: dict, d_scale, y_scale) -> dict:
        return dict(params)

    def implicit_vjp(self, v, z, y, D, params, needs, dense_limit):
        r"""Return the VJPs of the solution map on the support: ``D_S z_S = y``.

        Differentiating gives ``dz_S = D_S^+ (dy - dD_S z_S)``, the lasso
        formula with zero penalty and zero residual. The gradient in ``y`` is
        ``D_S u`` with ``u = (D_S^T D_S)^{-1} v_S``; it lies in range(D_S), so
        it is the minimum-norm one: components of ``dy`` outside range(D)
        would make the problem infeasible and have no derivative.
        """
        from .lasso import lasso_family_vjp

        zero = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
        lasso_params = {"lam": zero, "weights": None, "l2": None}
        return lasso_family_vjp(v, z, y, D, lasso_params, needs & {"y", "D"}, dense_limit)

    def lam_max_batched(self, y, D, params) -> torch.Tensor:
        raise ValueError("basis pursuit has no penalty weight, so lam_max is undefined for it.")
