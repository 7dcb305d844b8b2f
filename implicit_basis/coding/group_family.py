"""The base class and the oracles shared by the group lasso and the sparse group lasso.

Both are written on two thresholds: ``tau1 = lam * a`` (B,) on every atom
and ``tau_g = lam * (1 - a) * w_g`` (B, g) on every group, with ``a = 0``
for the group lasso. ``tau_g = +inf`` marks a group forced to zero.
"""

from __future__ import annotations

import cvxpy as cp
import torch

from .base import Problem, batched_matvec, batched_rmatvec
from .formulation import CvxpyFormulation
from .groups import Groups, group_norms
from .lasso import refit_unpenalised, relative_duality_gap, scaled_dual_value
from .prox import soft_threshold

__all__ = [
    "GroupFamilyProblem",
    "group_family_formulation",
    "group_family_gap",
    "group_family_lam_max",
    "group_family_objective",
    "group_family_residual",
    "group_thresholds",
]

# Bisection steps for the dual scaling of the sparse group lasso: 2^-60 of
# the unit interval is below float64 resolution.
_BISECTION_STEPS = 60


class GroupFamilyProblem(Problem):
    """Base class of the group lasso and the sparse group lasso.

    It stores the partition ``groups``, the scalar parameters of
    ``scalar_specs`` and the optional per-group ``weights``, and implements every
    oracle with the group-family functions of this module. Subclasses set
    ``kind`` and ``scalar_specs`` and implement ``prox`` and
    ``cvxpy_formulation``.
    """

    def __init__(self, groups, scalars: tuple, weights) -> None:
        super().__init__()
        self.groups = Groups(groups)
        for spec, value in zip(self.scalar_specs, scalars):
            self._store_scalar(spec, value)
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
        groups: Groups = self.groups
        index = groups.index(k, device=device)
        weights = self._resolve_weights("weights", B, groups.n_groups, "groups", dtype, device)
        if weights is None:
            weights = groups.default_weights(dtype, device).expand(B, groups.n_groups)
        params.update(
            group_index=index,
            n_groups=groups.n_groups,
            weights=weights,
            groups=groups,
        )
        # The group lasso is the sparse group lasso without its l1 part.
        params.setdefault("l1_ratio", None)
        return params

    def objective_batched(self, z, y, D, params) -> torch.Tensor:
        return group_family_objective(z, y, D, params)

    def duality_gap_batched(self, z, y, D, params) -> torch.Tensor:
        return group_family_gap(z, y, D, params)

    def residual_batched(self, z, y, D, params) -> torch.Tensor:
        return group_family_residual(z, y, D, params)

    def lam_max_batched(self, y, D, params) -> torch.Tensor:
        return group_family_lam_max(y, D, params)

    def implicit_vjp(self, v, z, y, D, params, needs, dense_limit):
        return group_family_vjp(v, z, y, D, params, needs, dense_limit)

    def cache_key(self) -> tuple:
        return (self.kind, self.groups.key())

    def rescale(self, params: dict, d_scale, y_scale) -> dict:
        return dict(params, lam=params["lam"] / (d_scale * y_scale))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, groups={self.groups!r}"


def group_thresholds(params: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (tau1 (B,), tau_g (B, g)) from resolved parameters."""
    lam = params["lam"]
    ratio = params.get("l1_ratio")
    weights = params["weights"]
    if ratio is None:
        tau1 = torch.zeros_like(lam)
        group_lam = lam
    else:
        tau1 = lam * ratio
        group_lam = lam * (1 - ratio)
    # Finite stand-ins for infinite weights keep NaN out of the backward in lam
    # (inf * 0 where torch.where discards the product).
    forced = torch.isinf(weights)
    finite = torch.where(forced, torch.zeros_like(weights), weights)
    tau_g = group_lam.unsqueeze(-1) * finite
    tau_g = torch.where(forced, torch.full_like(tau_g, torch.inf), tau_g)
    return tau1, tau_g


def _penalty(z, params) -> torch.Tensor:
    tau1, tau_g = group_thresholds(params)
    norms = group_norms(z, params["group_index"], params["n_groups"])
    terms = torch.where(norms == 0, torch.zeros_like(norms), tau_g * norms)
    return tau1 * z.abs().sum(-1) + terms.sum(-1)


def group_family_objective(z, y, D, params) -> torch.Tensor:
    r = batched_matvec(D, z) - y
    return 0.5 * (r * r).sum(-1) + _penalty(z, params)


def _unpenalised_atoms(params) -> torch.Tensor:
    tau1, tau_g = group_thresholds(params)
    free_groups = (tau_g == 0) & (tau1.unsqueeze(-1) == 0)
    return free_groups[:, params["group_index"]]


def _shrunk_group_norms(v, tau1, params) -> torch.Tensor:
    """Return ||soft(v_g, tau1)||_2 per group, (B, g)."""
    shrunk = soft_threshold(v, tau1.unsqueeze(-1))
    return group_norms(shrunk, params["group_index"], params["n_groups"])


def _dual_scaling(v, params) -> torch.Tensor:
    """Return the largest alpha in [0, 1] with alpha * v dual feasible, per sample.

    Feasibility is ||soft(alpha v_g, tau1)||_2 <= tau_g for every group that is
    not forced to zero; it is monotone in alpha, so bisection finds the bound.
    """
    tau1, tau_g = group_thresholds(params)
    # Forced groups have no dual constraint; unpenalised groups were projected out.
    unpenalised = (tau_g == 0) & (tau1.unsqueeze(-1) == 0)
    constrained = torch.isfinite(tau_g) & ~unpenalised

    def feasible(alpha):
        norms = _shrunk_group_norms(alpha.unsqueeze(-1) * v, tau1, params)
        slack = torch.where(constrained, tau_g - norms, torch.ones_like(norms))
        return (slack >= 0).all(-1)

    if bool((tau1 == 0).all()):
        norms = group_norms(v, params["group_index"], params["n_groups"])
        ratios = torch.where(
            constrained & (norms > 0),
            tau_g / norms.clamp(min=torch.finfo(v.dtype).tiny),
            torch.full_like(norms, torch.inf),
        )
        return ratios.amin(-1).clamp(max=1.0)

    ones = torch.ones(v.shape[0], dtype=v.dtype, device=v.device)
    low, high = torch.zeros_like(ones), ones.clone()
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        ok = feasible(middle)
        low = torch.where(ok, middle, low)
        high = torch.where(ok, high, middle)
    return torch.where(feasible(ones), ones, low)


def group_family_gap(z, y, D, params) -> torch.Tensor:
    """Return the relative duality gap per sample (see ``lasso_family_gap``)."""
    r = y - batched_matvec(D, z)
    r, _ = refit_unpenalised(r, D, (~_unpenalised_atoms(params)).to(r.dtype))
    alpha = _dual_scaling(batched_rmatvec(D, r), params)
    primal = group_family_objective(z, y, D, params)
    # A forced-zero group that is nonzero makes the objective +inf, and the gap too.
    return relative_duality_gap(primal, scaled_dual_value(y, r, alpha), y)


def group_family_residual(z, y, D, params) -> torch.Tensor:
    r"""Return the KKT stationarity violation per sample, relative to ``||D^T y||_inf``.

    With ``g = D^T (y - D z)``: in an active group, ``|g_j - tau1 s_j - tau_g
    z_j / ||z_g||``| on nonzero atoms and ``max(0, |g_j| - tau1)`` on zero
    atoms; for a zero group, ``max(0, ||soft(g_g, tau1)|| - tau_g)``; a forced
    group that is not zero counts as +inf.
    """
    index, n_groups = params["group_index"], params["n_groups"]
    tau1, tau_g = group_thresholds(params)
    g = batched_rmatvec(D, y - batched_matvec(D, z))
    norms = group_norms(z, index, n_groups)
    active = norms > 0
    finite_tau_g = torch.where(torch.isinf(tau_g), torch.zeros_like(tau_g), tau_g)

    atom_norm = norms[:, index]
    atom_tau_g = finite_tau_g[:, index]
    direction = torch.where(atom_norm > 0, z / atom_norm.clamp(min=torch.finfo(z.dtype).tiny), z)
    on_support = (g - tau1.unsqueeze(-1) * torch.sign(z) - atom_tau_g * direction).abs()
    off_support = (g.abs() - tau1.unsqueeze(-1)).clamp(min=0)
    atom_violation = torch.where(z != 0, on_support, off_support)
    atom_violation = torch.where(active[:, index], atom_violation, torch.zeros_like(g))

    inactive_violation = (_shrunk_group_norms(g, tau1, params) - finite_tau_g).clamp(min=0)
    inactive_violation = torch.where(
        active | torch.isinf(tau_g), torch.zeros_like(norms), inactive_violation
    )
    forced = torch.isinf(tau_g) & active
    inactive_violation = torch.where(
        forced, torch.full_like(norms, torch.inf), inactive_violation
    )
    worst = torch.maximum(atom_violation.amax(-1), inactive_violation.amax(-1))
    scale = batched_rmatvec(D, y).abs().amax(-1)
    return torch.where(scale > 0, worst / scale.clamp(min=torch.finfo(z.dtype).tiny), worst)


def group_family_lam_max(y, D, params) -> torch.Tensor:
    """Return the smallest lam with a zero code, per sample.

    For each group, the root in lam of ||soft(v_g, lam a)|| = lam (1 - a) w_g
    with ``v = D^T r``; the root is found by bisection (it is closed-form
    ``||v_g|| / w_g`` for the group lasso).
    """
    index, n_groups = params["group_index"], params["n_groups"]
    ratio = params.get("l1_ratio")
    a = torch.zeros_like(y[:, 0]) if ratio is None else ratio
    weights = params["weights"]
    unit = dict(params, lam=torch.ones_like(a))
    r, _ = refit_unpenalised(y, D, (~_unpenalised_atoms(unit)).to(y.dtype))
    v = batched_rmatvec(D, r)
    penalised = torch.isfinite(weights) & ((weights > 0) | (a.unsqueeze(-1) > 0))
    if bool((a == 0).all()):
        norms = group_norms(v, index, n_groups)
        ratios = torch.where(penalised, norms / weights.clamp(min=torch.finfo(y.dtype).tiny), 0.0)
        return ratios.amax(-1)

    # Upper bound: at lam >= max|v| / a every group's shrunk norm is 0.
    high = v.abs().amax(-1) / a.clamp(min=torch.finfo(y.dtype).tiny)
    norms_two = group_norms(v, index, n_groups)
    group_weight = (1 - a).unsqueeze(-1) * weights
    bound_group = torch.where(
        penalised & (group_weight > 0),
        norms_two / group_weight.clamp(min=torch.finfo(y.dtype).tiny),
        torch.full_like(norms_two, torch.inf),
    ).amax(-1, keepdim=False)
    high = torch.minimum(high, torch.where(torch.isfinite(bound_group), bound_group, high))
    low = torch.zeros_like(high)

    def zero_code(lam):
        shrunk = _shrunk_group_norms(v, lam * a, params)
        limit = lam.unsqueeze(-1) * group_weight
        ok = torch.where(penalised, shrunk <= limit, torch.ones_like(shrunk, dtype=torch.bool))
        return ok.all(-1)

    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        ok = zero_code(middle)
        high = torch.where(ok, middle, high)
        low = torch.where(ok, low, middle)
    return high


def group_family_formulation(m: int, k: int, members: list[list[int]], with_l1: bool) -> CvxpyFormulation:
    """Build the DPP cvxpy problem of the group family.

    Parameters, in order: ``D`` (m, k), ``y`` (m,), ``tau_g`` (g,) and, for the
    sparse group lasso, ``tau1`` (). Forced-zero groups enter with their
    columns of ``D`` zeroed and tau_g = 1, which pins them to zero.
    """
    D = cp.Parameter((m, k), name="D")
    y = cp.Parameter(m, name="y")
    tau_g = cp.Parameter(len(members), nonneg=True, name="tau_g")
    z = cp.Variable(k, name="z")
    penalty = sum(tau_g[i] * cp.norm(z[group], 2) for i, group in enumerate(members))
    parameters = [D, y, tau_g]
    if with_l1:
        tau1 = cp.Parameter(nonneg=True, name="tau1")
        penalty = penalty + tau1 * cp.norm1(z)
        parameters.append(tau1)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(D @ z - y) + penalty))
    return CvxpyFormulation(problem, parameters, z, group_family_values)


def group_family_values(y, D, params) -> list[torch.Tensor]:
    """Return the cvxpy parameter values (D, y, tau_g[, tau1]) for one batch."""
    tau1, tau_g = group_thresholds(params)
    forced = torch.isinf(tau_g)
    if bool(forced.any()):
        forced_atoms = forced[:, params["group_index"]]
        keep = (~forced_atoms).to(D.dtype)
        D = (D if D.dim() == 3 else D.expand(y.shape[0], -1, -1)) * keep.unsqueeze(1)
        tau_g = torch.where(forced, torch.ones_like(tau_g), tau_g)
    values = [D, y, tau_g]
    if params.get("l1_ratio") is not None:
        values.append(tau1)
    return values


def group_family_vjp(v, z, y, D, params, needs: frozenset, dense_limit: int):
    r"""Return the vector-Jacobian products of the group-family solution map.

    The active set S is every atom of a nonzero group for the group lasso, and
    the nonzero atoms for the sparse group lasso (a zero atom inside an active
    group sits strictly inside its l1 threshold). On S the stationarity
    ``D_S^T (D_S z_S - y) + tau1 s_S + tau_g z_g / ||z_g|| = 0`` has the
    Jacobian ``H = D_S^T D_S + blockdiag_g (tau_g / ||z_g||)(I - zhat_g zhat_g^T)``
    with ``zhat_g = z_g / ||z_g||``. Zero groups are not in S, so no norm is
    divided by zero. With ``u = H^{-1} v_S``: dL/dy = D_S u; dL/dD_S =
    r u^T - (D_S u) z_S^T; dL/dlam = -u^T (a s + (1 - a) w zhat);
    dL/da = -lam u^T (s - w zhat); dL/dw_g = -lam (1 - a) u_g^T zhat_g.

    Shape:
        v, z: (B, k); y: (B, m); D: (m, k) or (B, m, k).
    """
    from ..support import SupportDictionary, gather_atoms, support_of
    from .lasso import solve_support_system

    index, n_groups = params["group_index"], params["n_groups"]
    ratio = params.get("l1_ratio")
    tau1, tau_g = group_thresholds(params)
    norms = group_norms(z, index, n_groups)
    if ratio is None:
        active = norms[:, index] > 0
    else:
        active = z != 0
    support = support_of(active)
    mask = support.mask
    real = mask.to(z.dtype)

    columns = SupportDictionary(D, support)
    z_S = gather_atoms(z, support)
    v_S = gather_atoms(v, support)
    group_S = index[support.index]
    norm_S = torch.gather(norms, 1, group_S)
    safe_norm = torch.where(mask & (norm_S > 0), norm_S, torch.ones_like(norm_S))
    zhat = z_S / safe_norm * real
    finite_tau_g = torch.where(torch.isinf(tau_g), torch.zeros_like(tau_g), tau_g)
    tau_S = torch.gather(finite_tau_g, 1, group_S) * real

    same = (group_S.unsqueeze(-1) == group_S.unsqueeze(-2)) & mask.unsqueeze(-1) & mask.unsqueeze(-2)
    eye = torch.eye(support.size, dtype=z.dtype, device=z.device)
    projector = eye - zhat.unsqueeze(-1) * zhat.unsqueeze(-2)
    curvature = same.to(z.dtype) * (tau_S / safe_norm).unsqueeze(-1) * projector
    u, singular = solve_support_system(columns, v_S, mask, None, curvature, dense_limit)

    grads = {}
    Du = columns.apply(u)
    if "y" in needs:
        grads["y"] = Du
    if "D" in needs:
        # z is zero off the support, so D z = D_S z_S.
        r = y - columns.apply(z_S)
        grads["D"] = columns.outer(r, u) - columns.outer(Du, z_S)

    weights = params["weights"]
    finite_weights = torch.where(torch.isinf(weights), torch.zeros_like(weights), weights)
    w_S = torch.gather(finite_weights, 1, group_S) * real
    signs = torch.sign(z_S)
    a = torch.zeros_like(tau1) if ratio is None else ratio
    lam = params["lam"]
    if "lam" in needs:
        direction = a.unsqueeze(-1) * signs + (1 - a).unsqueeze(-1) * w_S * zhat
        grads["lam"] = -(u * direction).sum(-1)
    if "l1_ratio" in needs and ratio is not None:
        grads["l1_ratio"] = -(lam.unsqueeze(-1) * u * (signs - w_S * zhat)).sum(-1)
    if "weights" in needs:
        per_atom = -(lam * (1 - a)).unsqueeze(-1) * u * zhat * real
        out = per_atom.new_zeros(per_atom.shape[0], n_groups)
        grads["weights"] = out.scatter_add(1, group_S, per_atom)
    return grads, singular
