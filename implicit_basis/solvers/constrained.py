r"""Basis pursuit and basis pursuit denoising, through the lasso path.

Both are points of the lasso path ``z(lam)``, which is piecewise linear in
``lam``: basis pursuit, ``min ||z||_1 s.t. D z = y``, is its end as ``lam ->
0``, and basis pursuit denoising, ``min ||z||_1 s.t. ||D z - y|| <= sigma``,
is the lasso at the weight ``lam*`` where the residual norm equals
``sigma``. The path is followed exactly (``homotopy``), and its end point
is verified: feasibility, signs and the dual certificate (``nu = D z_b`` of
the last piece for basis pursuit, ``r / lam*`` for denoising). Samples the
path cannot certify (simultaneous breakpoints, rounding at a square support)
are solved again by a second method, verified the same way:

- Basis pursuit by Bregman iteration: solve the lasso with a fixed weight
  ``lam`` on ``y_t``, add the residual back, ``y_{t+1} = y_t + (y - D
  z_t)``, repeat. This is the augmented Lagrangian method with ``y_t - y``
  as the scaled multiplier. With exact lasso solves it reached ``D z = y``
  exactly in 27 to 107 steps on random problems up to 64 x 256. Most steps
  are cheap, because the warm start is already optimal. Steps that leave the
  lasso code unchanged are taken together (``_bregman_steps``). After every
  step ``D_S w = y`` is solved by least squares on the support ``S`` of the
  lasso code. ``w`` is accepted when it is exactly feasible with the lasso's
  signs, and the lasso's dual point ``nu = (y_t - D z_t) / lam`` then
  certifies it: ``D_S^T nu = sign(w_S)`` and ``|D^T nu| <= 1``.
- Basis pursuit denoising by a root-find on ``lam``. On a fixed support and
  signs the lasso code is ``z_S(lam) = G^{-1} (c_S - lam s)`` (``G = D_S^T
  D_S``, ``c = D^T y``) and its residual ``r0 + lam v``, with ``r0 = y - D_S
  G^{-1} c_S`` orthogonal to ``v = D_S G^{-1} s``, so ``||r(lam)|| = sigma``
  has the root ``lam = sqrt((sigma^2 - ||r0||^2) / ||v||^2)``. Each step
  solves the lasso at the current weight and moves to that root on its
  support (a Newton step on ``lam -> ||r(lam)||``), until the code at the
  root keeps its signs and no atom off the support exceeds the root. A
  bracket on ``lam`` guards the steps.
"""

from __future__ import annotations

import logging

import torch

from ..errors import InfeasibleProblemError
from ..info import SolveInfo
from .continuation import path_steps
from .homotopy import follow_lasso_path
from .linalg import gather_support, pack_support, scatter_support, solve_psd
from .operator import DictionaryOperator
from .penalised import solve_penalised
from .penalties import L1Penalty
from .settings import Settings

__all__ = ["solve_constrained"]

logger = logging.getLogger(__name__)

# Lasso weight of the Bregman iteration, relative to ||D^T y||_inf. Smaller
# weights need fewer Bregman steps but harder lasso solves. Of 0.3, 0.1, 0.03
# and 0.01, 0.1 was the fastest (or within 30% of it) on random problems of
# sizes 20 x 50 to 64 x 256.
BREGMAN_WEIGHT = 0.1
MAX_BREGMAN = 500
# Largest number of stalled Bregman steps taken at once.
_MAX_JUMP = 1e6

MAX_ROOT_STEPS = 60

# The linear-program fallback runs HiGHS' dual simplex at feasibility
# tolerances of 1e-10. At its default 1e-7, entries of order 1e-8 came out
# with signs that contradict its own dual point. Its dual point is then
# accepted within _LP_DUAL_RTOL.
_LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
_LP_DUAL_RTOL = 1e-9
# Largest entry of y handed to the linear program.
_LP_SCALE = 1e4

# Relative residual ||D w - y|| / ||y|| at which a basis pursuit code counts
# as feasible, and the relative mismatch of ||D z - y|| to sigma accepted for
# basis pursuit denoising: rounding leaves about 1e-15.
FEASIBILITY_RTOL = 1e-10

# Residual that basis pursuit allows on float32 or half data, in units of
# the dtype's machine epsilon times ||y||; see _rounding_budget.
ROUNDING_BUDGET = 8.0


def solve_constrained(problem, y, op: DictionaryOperator, params, settings: Settings, init):
    """Solve basis pursuit or basis pursuit denoising per sample; see the module docstring.

    Returns ``(z, info, error)``. Infeasible samples get NaN codes, and
    ``error`` is the ``InfeasibleProblemError`` naming them (None when every
    sample is feasible), for the caller to raise after its other reports.
    """
    B, k = y.shape[0], op.k
    distances, infeasible = problem.infeasibility(y, op.D, params)
    z = torch.full((B, k), torch.nan, dtype=y.dtype, device=y.device)
    converged = torch.zeros(B, dtype=torch.bool, device=y.device)
    gap = torch.full((B,), torch.nan, dtype=y.dtype, device=y.device)
    iterations = torch.zeros(B, dtype=torch.int64, device=y.device)
    degenerate = torch.zeros(B, dtype=torch.bool, device=y.device)

    rows = (~infeasible).nonzero().squeeze(-1)
    if rows.numel():
        y_rows, off_range = _project_to_range(y[rows], op.rows(rows))
        start = None if init is None else init[rows]
        if problem.kind == "basis_pursuit":
            sigma = _rounding_budget(y_rows, y.dtype)
        else:
            # ||D z - y||^2 = ||D z - P y||^2 + dist^2, so the projected signal
            # has the budget sqrt(sigma^2 - dist^2).
            sigma = params["sigma"][rows].to(torch.float64)
            sigma = torch.sqrt(torch.clamp(sigma**2 - off_range**2, min=0))
        result = _solve_rows(y_rows, op.rows(rows), sigma, settings, start)
        if problem.kind == "basis_pursuit":
            result = _exact_where_unconverged(result, y_rows, op.rows(rows), sigma, settings, start)
        z[rows] = result[0].to(y.dtype)
        converged[rows], iterations[rows], degenerate[rows] = result[1], result[3], result[4]
        gap[rows] = result[2].to(y.dtype)
        if problem.kind == "basis_pursuit":
            # A generic y needs rank(D) atoms. Fewer put y on a face of the
            # feasible set, where moving y off span(D_S) changes the support,
            # so the code is not differentiable in every direction there.
            rank = torch.linalg.matrix_rank(op.rows(rows).D.to(torch.float64))
            degenerate[rows] |= (result[0] != 0).sum(-1) < rank

    info = SolveInfo(
        converged=converged,
        gap=gap,
        iterations=iterations,
        support=(z != 0) & ~torch.isnan(z),
        degenerate=degenerate,
        backend="implicit",
    )
    error = None
    if bool(infeasible.any()):
        bad = infeasible.nonzero().squeeze(-1).tolist()
        listing = ", ".join(f"{b} (distance {float(distances[b]):.3g})" for b in bad)
        reach = "range(D)" if problem.kind == "basis_pursuit" else "sigma of range(D)"
        error = InfeasibleProblemError(
            f"{type(problem).__name__} is infeasible for samples {listing}: y is not within {reach}. "
            "The other samples were solved (see the error's z and info); use BasisPursuitDenoising "
            "with a larger sigma, or a Lasso, for the failing samples.",
            samples=bad,
            distances=[float(distances[b]) for b in bad],
            z=z,
            info=info,
        )
    return z, info, error


def _exact_where_unconverged(result, y, op: DictionaryOperator, sigma, settings: Settings, init):
    """Solve exact basis pursuit for samples whose rounding-budget solve did not converge.

    The denoising path and root-find can miss a breakpoint at weights near
    the rounding budget. Exact equality (``sigma = 0``) has the linear
    program as a fallback. Its code may carry more atoms of rounding size,
    but it is certified.
    """
    retry = (~result[1] & (sigma > 0)).nonzero().squeeze(-1)
    if retry.numel() == 0:
        return result
    start = None if init is None else init[retry]
    exact = _solve_rows(y[retry], op.rows(retry), torch.zeros_like(sigma[retry]), settings, start)
    better = exact[1]
    z, converged, gap, iterations, degenerate = (value.clone() for value in result)
    take = retry[better]
    z[take], converged[take], gap[take] = exact[0][better], exact[1][better], exact[2][better]
    degenerate[take] = exact[4][better]
    iterations[retry] += exact[3]
    return z, converged, gap, iterations, degenerate


def _rounding_budget(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Return the residual norm that basis pursuit allows on data given in ``dtype``, (B,).

    Float64 data gets 0: ``D z = y`` exactly. Data rounded to float32 lies
    about ``eps * ||y||`` off the span of its true support, and exact
    equality would then fit that rounding with up to m atoms instead of the
    sparse code. Within ``ROUNDING_BUDGET * eps * ||y||`` (about 1e-6
    relative in float32) the constraint is met to the data's own precision,
    so the solve is basis pursuit denoising with that sigma.
    """
    if dtype == torch.float64:
        return torch.zeros_like(y[:, 0])
    return ROUNDING_BUDGET * torch.finfo(dtype).eps * y.norm(dim=-1)


def _project_to_range(y: torch.Tensor, op: DictionaryOperator) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the projection of ``y`` on range(D) and the distance to it, in float64.

    The rank cutoff is the one of ``distance_to_range``; a dictionary of full
    row rank returns ``y`` itself and zero distances.
    """
    y64 = y.to(torch.float64)
    D = op.D.to(torch.float64)
    U, s, _ = torch.linalg.svd(D, full_matrices=False)
    cutoff = max(op.m, op.k) * torch.finfo(torch.float64).eps * s.amax(-1, keepdim=True)
    keep = s > cutoff
    if bool(keep.sum(-1).min() >= op.m):
        return y64, torch.zeros_like(y64[:, 0])
    U = U * keep.unsqueeze(-2).to(U.dtype)
    if op.shared:
        projected = (y64 @ U) @ U.T
    else:
        projected = torch.bmm(U, torch.bmm(U.transpose(1, 2), y64.unsqueeze(-1))).squeeze(-1)
    return projected, (y64 - projected).norm(dim=-1)


def _solve_rows(y, op: DictionaryOperator, sigma, settings: Settings, init):
    """Solve feasible samples: basis pursuit where ``sigma`` is 0 or not above dist(y, range(D))."""
    B, k = y.shape[0], op.k
    op64 = op.to(torch.float64)
    z = torch.zeros(B, k, dtype=torch.float64, device=y.device)
    converged = torch.zeros(B, dtype=torch.bool, device=y.device)
    gap = torch.zeros(B, dtype=torch.float64, device=y.device)
    iterations = torch.zeros(B, dtype=torch.int64, device=y.device)
    degenerate = torch.zeros(B, dtype=torch.bool, device=y.device)

    norms = y.norm(dim=-1)
    zero = norms <= sigma
    converged[zero] = True
    degenerate[zero] = (norms[zero] == sigma[zero]) & (sigma[zero] > 0)
    # y already lies in range(D), so sigma > 0 leaves room for a denoised code.
    pursuit = ~zero & (sigma == 0)
    denoise = ~zero & (sigma > 0)
    for mask, method in ((pursuit, _basis_pursuit), (denoise, _denoise)):
        rows = mask.nonzero().squeeze(-1)
        if rows.numel() == 0:
            continue
        start = None if init is None else init[rows].to(torch.float64)
        out = method(y[rows], op64.rows(rows), sigma[rows], settings, start)
        z[rows], converged[rows], gap[rows], iterations[rows], degenerate[rows] = out
    return z, converged, gap, iterations, degenerate


def _basis_pursuit(y, op: DictionaryOperator, sigma, settings: Settings, init):
    """Follow the lasso path to its end; samples it cannot certify go to Bregman iteration."""
    B, k = y.shape[0], op.k
    penalty = L1Penalty(torch.ones(B, 1, dtype=y.dtype, device=y.device), None, False)
    path = follow_lasso_path(penalty, y, op, op.rmatvec(y), max_steps=path_steps(k), target=torch.zeros_like(sigma))

    z, tie = _drop_small(path.z, settings.tie_rtol)
    nu = path.direction
    correlation = op.rmatvec(nu).abs()
    feasible = (op.matvec(z) - y).norm(dim=-1) <= FEASIBILITY_RTOL * y.norm(dim=-1)
    certified = correlation.amax(-1) <= 1 + settings.kkt_rtol
    on_support = torch.where(z != 0, (op.rmatvec(nu) - torch.sign(z)).abs(), 0.0).amax(-1) <= settings.kkt_rtol
    ok = path.finished & feasible & certified & on_support

    converged = ok.clone()
    iterations = path.steps.clone()
    tie = tie | path.degenerate | ((z == 0) & (correlation >= 1 - settings.tie_rtol)).any(-1)
    gap = torch.where(ok, _certificate_gap(y, op, z, nu), torch.full_like(sigma, torch.inf))

    rows = (~ok).nonzero().squeeze(-1)
    if rows.numel():
        logger.debug("basis pursuit: %d samples left to the linear program", rows.numel())
    # The two methods fail on different samples near their tolerance.
    for method in ("highs-ds", "highs-ipm"):
        if rows.numel() == 0:
            break
        lp_z, lp_ok, lp_tie, lp_nu = _linear_program(y[rows], op.rows(rows), settings, method)
        solved = rows[lp_ok]
        z[solved] = lp_z[lp_ok]
        converged[solved] = True
        tie[solved] = lp_tie[lp_ok]
        gap[solved] = _certificate_gap(y[solved], op.rows(solved), lp_z[lp_ok], lp_nu[lp_ok])
        rows = rows[~lp_ok]
    if rows.numel():
        logger.debug("basis pursuit: %d samples left to Bregman iteration", rows.numel())
        start = None if init is None else init[rows]
        sub_op = op.rows(rows)
        out = _bregman(y[rows], sub_op, settings, start)
        # Where neither method converged, keep the code with the smaller relative residual.
        path_gap = (sub_op.matvec(z[rows]) - y[rows]).norm(dim=-1) / y[rows].norm(dim=-1)
        keep_path = ~out[1] & (path_gap < out[2])
        z[rows] = torch.where(keep_path.unsqueeze(-1), z[rows], out[0])
        gap[rows] = torch.where(keep_path, path_gap, out[2])
        converged[rows] = out[1]
        iterations[rows] += out[3]
        tie[rows] = out[4]
    return z, converged, gap, iterations, tie


def _denoise(y, op: DictionaryOperator, sigma, settings: Settings, init):
    """Follow the lasso path until the residual norm is sigma; unverified samples go to the root-find."""
    B, k = y.shape[0], op.k
    c = op.rmatvec(y)
    penalty = L1Penalty(torch.ones(B, 1, dtype=y.dtype, device=y.device), None, False)
    path = follow_lasso_path(
        penalty, y, op, c, max_steps=path_steps(k), target=torch.zeros_like(sigma), sigma=sigma
    )

    z, small = _drop_small(path.z, settings.tie_rtol)
    weight = path.factor.unsqueeze(-1)
    g = op.rmatvec(y - op.matvec(z))
    scale = c.abs().amax(-1, keepdim=True).clamp(min=torch.finfo(y.dtype).tiny)
    violation, tie = L1Penalty(weight, None, False).kkt(z, g, scale, settings.tie_rtol)
    residual = (y - op.matvec(z)).norm(dim=-1)
    matches = (residual - sigma).abs() <= FEASIBILITY_RTOL * y.norm(dim=-1)
    ok = path.finished & (violation <= settings.kkt_rtol) & matches & (path.factor > 0)

    converged = ok.clone()
    iterations = path.steps.clone()
    degenerate = small | tie | path.degenerate

    rows = (~ok).nonzero().squeeze(-1)
    if rows.numel():
        logger.debug("basis pursuit denoising: %d samples left to the root-find", rows.numel())
        start = None if init is None else init[rows]
        sub_op = op.rows(rows)
        out = _root_find(y[rows], sub_op, sigma[rows], settings, start)
        # Where neither method converged, keep the code with the smaller gap.
        path_gap = _denoising_gap(y[rows], sub_op, z[rows], sigma[rows], torch.zeros_like(out[1]))
        keep_path = ~out[1] & (path_gap < out[2])
        z[rows] = torch.where(keep_path.unsqueeze(-1), z[rows], out[0])
        converged[rows] = out[1]
        iterations[rows] += out[3]
        degenerate[rows] = out[4]
    return z, converged, _denoising_gap(y, op, z, sigma, converged), iterations, degenerate


def _drop_small(z, tie_rtol: float):
    """Zero the entries below ``tie_rtol`` of the largest (ties count as inactive); return them too."""
    small = (z != 0) & (z.abs() <= tie_rtol * z.abs().amax(-1, keepdim=True))
    return torch.where(small, torch.zeros_like(z), z), small.any(-1)


def _lasso(y, op, lam, settings: Settings, init):
    penalty = L1Penalty(lam.unsqueeze(-1), None, False)
    return solve_penalised(penalty, y, op, settings, init)


def _bregman(y, op: DictionaryOperator, settings: Settings, init):
    """Solve basis pursuit by Bregman iteration on exact lasso solves; see the module docstring."""
    B, k = y.shape[0], op.k
    lam = BREGMAN_WEIGHT * op.rmatvec(y).abs().amax(-1)
    z = torch.zeros(B, k, dtype=y.dtype, device=y.device)
    done = torch.zeros(B, dtype=torch.bool, device=y.device)
    converged = torch.zeros_like(done)
    degenerate = torch.zeros_like(done)
    gap = torch.full((B,), torch.inf, dtype=y.dtype, device=y.device)
    iterations = torch.zeros(B, dtype=torch.int64, device=y.device)

    target = y.clone()
    current = previous = init
    rows = torch.arange(B, device=y.device)
    for step in range(MAX_BREGMAN):
        sub_op = op.rows(rows)
        lasso = _lasso(target[rows], sub_op, lam[rows], settings, current)
        iterations[rows] += lasso.iterations
        codes = lasso.z

        w, feasible, tie = _least_squares_on_support(y[rows], sub_op, codes, settings.tie_rtol)
        nu = (target[rows] - sub_op.matvec(codes)) / lam[rows].unsqueeze(-1)
        accept = feasible & lasso.polished
        finished = rows[accept]
        z[finished] = w[accept]
        converged[finished] = True
        degenerate[finished] = (lasso.degenerate | tie)[accept]
        gap[finished] = _certificate_gap(y[finished], op.rows(finished), w[accept], nu[accept])

        failed = ~lasso.converged
        z[rows[failed]] = codes[failed]
        keep = ~accept & ~failed
        logger.debug("basis pursuit: Bregman step %d, %d samples left", step + 1, int(keep.sum()))
        unchanged = torch.zeros_like(keep) if previous is None else (codes == previous).all(-1)
        rows, current, unchanged = rows[keep], codes[keep], unchanged[keep]
        if rows.numel() == 0:
            break

        sub_op = op.rows(rows)
        residual = y[rows] - sub_op.matvec(current)
        steps = _bregman_steps(target[rows], sub_op, lam[rows], current, residual, unchanged)
        target[rows] = target[rows] + steps.unsqueeze(-1) * residual
        previous = current

    if rows.numel():
        z[rows] = current
    open_rows = ~converged
    if bool(open_rows.any()):
        r = op.rows(open_rows.nonzero().squeeze(-1))
        gap[open_rows] = (r.matvec(z[open_rows]) - y[open_rows]).norm(dim=-1) / y[open_rows].norm(dim=-1)
    return z, converged, gap, iterations, degenerate


def _bregman_steps(target, op: DictionaryOperator, lam, codes, residual, unchanged):
    """Return how many Bregman steps to take at once, per sample (1 unless the code stalled).

    A step that left the lasso code unchanged had a residual orthogonal to
    the support atoms. The next steps then add the same residual, which only
    moves the off-support correlations ``g + t D^T r`` towards ``+-lam``. All
    steps up to the first that makes an atom cross its threshold are taken
    at once: the iterates are the same as one step at a time.
    """
    steps = torch.ones_like(lam)
    if not bool(unchanged.any()):
        return steps
    g = op.rmatvec(target - op.matvec(codes))
    slope = op.rmatvec(residual)
    room = torch.where(slope > 0, lam.unsqueeze(-1) - g, -lam.unsqueeze(-1) - g) / slope
    room = torch.where((codes == 0) & (slope != 0) & (room > 0), room, torch.full_like(room, torch.inf))
    reach = torch.ceil(room.amin(-1))
    jump = unchanged & torch.isfinite(reach) & (reach > 1)
    return torch.where(jump, reach.clamp(max=_MAX_JUMP), steps)


def _linear_program(y, op: DictionaryOperator, settings: Settings, method: str = "highs-ds"):
    """Solve basis pursuit as a linear program per sample, then polish and certify it.

    ``min 1^T (u + v)`` s.t. ``D (u - v) = y``, ``u, v >= 0``, by scipy's
    HiGHS (``method``, dual simplex or interior point with crossover) on the
    CPU in float64. The support of its solution is polished by least
    squares (``D_S w = y``) and accepted when ``w`` is exactly feasible with
    the same signs and the dual point ``nu`` of the equality constraints
    certifies it (``D_S^T nu = sign(w_S)``, ``|D^T nu| <= 1``). The path
    fails where breakpoints crowd at tiny weights (y a little off the span
    of a sparse support). The certificate rejects a wrong basis.

    NOTE: HiGHS' tolerances are absolute (1e-10 here). y is scaled to a
    largest entry of 1e4 for it, but codes that need entries below about
    1e-14 of the largest can still fail both methods. Such samples go on to
    Bregman iteration and are reported unconverged if it fails too.

    Returns ``(w, ok, tie, nu)``, (B, k), (B,), (B,), (B, m).
    """
    import numpy as np
    from scipy.optimize import linprog

    B, k = y.shape[0], op.k
    D = op.D.to(torch.float64)
    z = torch.zeros(B, k, dtype=torch.float64)
    nu = torch.zeros(B, op.m, dtype=torch.float64)
    solved = torch.zeros(B, dtype=torch.bool)
    y_host = y.detach().cpu().to(torch.float64).numpy()
    for b in range(B):
        D_b = (D if op.shared else D[b]).detach().cpu().numpy()
        # The solution scales with y and the dual point does not. HiGHS'
        # tolerances are absolute, so a large y keeps entries far below the
        # largest above them.
        scale = _LP_SCALE / max(float(np.abs(y_host[b]).max()), np.finfo(np.float64).tiny)
        result = linprog(
            np.ones(2 * k),
            A_eq=np.hstack([D_b, -D_b]),
            b_eq=scale * y_host[b],
            bounds=(0, None),
            method=method,
            options=_LP_OPTIONS,
        )
        if result.status != 0:
            logger.debug("basis pursuit: the linear program failed on sample %d: %s", b, result.message)
            continue
        z[b] = torch.from_numpy((result.x[:k] - result.x[k:]) / scale)
        # HiGHS reports d(objective)/d(b_eq), which is the dual point nu.
        nu[b] = torch.from_numpy(np.asarray(result.eqlin.marginals))
        solved[b] = True

    z, nu, solved = z.to(y.device), nu.to(y.device), solved.to(y.device)
    # The simplex returns exact zeros off its basis. Entries far below the
    # largest are kept: fitting y exactly can need them, as when y lies a
    # little off the span of a sparse support.
    w, feasible, tie = _least_squares_on_support(y, op, z, settings.tie_rtol, drop_small=False)
    nu = _refine_dual(op, w, nu)
    correlation = op.rmatvec(nu)
    certified = correlation.abs().amax(-1) <= 1 + _LP_DUAL_RTOL
    on_support = torch.where(w != 0, (correlation - torch.sign(w)).abs(), 0.0).amax(-1) <= _LP_DUAL_RTOL
    ok = solved & feasible & certified & on_support
    tie = tie | ((w == 0) & (correlation.abs() >= 1 - _LP_DUAL_RTOL)).any(-1)
    return w.to(y.dtype), ok, tie, nu.to(y.dtype)


def _refine_dual(op: DictionaryOperator, w, nu):
    """Return ``nu + D_S u`` with ``D_S^T (nu + D_S u) = sign(w_S)`` solved exactly.

    HiGHS meets its dual equations to about 1e-9 on large problems. This
    least-squares correction makes them hold to rounding on the support, so
    only the off-support bound ``|D^T nu| <= 1`` is left to check.
    """
    index, valid = pack_support(w != 0)
    A = op.gram_block(index, valid)
    rhs = gather_support(torch.sign(w) - op.rmatvec(nu), index, valid)
    u, _ = solve_psd(A, rhs)
    return nu + op.matvec(scatter_support(u, index, w.shape[-1]))


def _least_squares_on_support(y, op: DictionaryOperator, codes, tie_rtol: float, drop_small: bool = True):
    """Solve ``D_S w = y`` on the support of ``codes``.

    Returns ``(w, ok, tie)``. ``ok`` marks where ``w`` is exactly feasible
    and keeps the signs of ``codes``. ``tie`` marks where the system was
    singular or an entry of ``w`` was at rounding level. With ``drop_small``
    such an entry is set to an exact zero, because a tie counts as inactive.
    """
    k = op.k
    support = codes != 0
    index, valid = pack_support(support)
    A = op.gram_block(index, valid)
    b = gather_support(op.rmatvec(y), index, valid)
    x, singular = solve_psd(A, b)
    w = scatter_support(x, index, k)
    small = (w != 0) & (w.abs() <= tie_rtol * w.abs().amax(-1, keepdim=True))
    if drop_small:
        w = torch.where(small, torch.zeros_like(w), w)
    residual = (op.matvec(w) - y).norm(dim=-1)
    exact = residual <= FEASIBILITY_RTOL * y.norm(dim=-1)
    same_signs = ((torch.sign(w) == torch.sign(codes)) | (w == 0)).all(-1)
    return w, exact & same_signs, small.any(-1) | singular


def _certificate_gap(y, op: DictionaryOperator, z, nu):
    """Return the relative gap of ``||z||_1`` and ``y^T nu`` with nu scaled to ``|D^T nu| <= 1``."""
    dual_norm = op.rmatvec(nu).abs().amax(-1).clamp(min=1.0)
    primal = z.abs().sum(-1)
    dual = (y * nu).sum(-1) / dual_norm
    scale = torch.maximum(primal, dual.abs()).clamp(min=torch.finfo(z.dtype).tiny)
    return (primal - dual).abs() / scale


def _root_find(y, op: DictionaryOperator, sigma, settings: Settings, init):
    """Solve basis pursuit denoising by a root-find on the lasso weight; see the module docstring."""
    B, k = y.shape[0], op.k
    c = op.rmatvec(y)
    lam_max = c.abs().amax(-1)
    low = torch.zeros_like(lam_max)
    high = lam_max.clone()
    lam = (sigma * lam_max / y.norm(dim=-1)).clamp(max=lam_max)
    z = torch.zeros(B, k, dtype=y.dtype, device=y.device) if init is None else init.clone()
    converged = torch.zeros(B, dtype=torch.bool, device=y.device)
    degenerate = torch.zeros_like(converged)
    iterations = torch.zeros(B, dtype=torch.int64, device=y.device)
    rows = torch.arange(B, device=y.device)
    for step in range(MAX_ROOT_STEPS):
        sub_op = op.rows(rows)
        lasso = _lasso(y[rows], sub_op, lam[rows], settings, z[rows])
        iterations[rows] += lasso.iterations
        z[rows] = lasso.z
        residual = (sub_op.matvec(lasso.z) - y[rows]).norm(dim=-1)
        above = residual > sigma[rows]
        high[rows] = torch.where(above, torch.minimum(high[rows], lam[rows]), high[rows])
        low[rows] = torch.where(~above, torch.maximum(low[rows], lam[rows]), low[rows])

        root, z_root, ok, tie = _root_on_support(y[rows], sub_op, c[rows], lasso.z, sigma[rows], settings)
        accept = ok
        finished = rows[accept]
        z[finished] = z_root[accept]
        converged[finished] = True
        degenerate[finished] = tie[accept]
        # Next weight: the root on this support if it lies inside the bracket, else bisection.
        inside = torch.isfinite(root) & (root > low[rows]) & (root < high[rows])
        middle = torch.where(low[rows] > 0, torch.sqrt(low[rows] * high[rows]), 0.5 * high[rows])
        lam[rows] = torch.where(inside, root, middle)
        keep = ~accept & lasso.converged
        logger.debug("basis pursuit denoising: root step %d, %d samples left", step + 1, int(keep.sum()))
        rows = rows[keep]
        if rows.numel() == 0:
            break
    return z, converged, _denoising_gap(y, op, z, sigma, converged), iterations, degenerate


def _denoising_gap(y, op: DictionaryOperator, z, sigma, converged):
    """Return the relative gap with the dual point ``r / ||D^T r||_inf`` (and the violation where not converged)."""
    residual = y - op.matvec(z)
    nu_scale = op.rmatvec(residual).abs().amax(-1).clamp(min=torch.finfo(y.dtype).tiny)
    nu = residual / nu_scale.unsqueeze(-1)
    primal = z.abs().sum(-1)
    dual = (y * nu).sum(-1) - sigma * nu.norm(dim=-1)
    gap = (primal - dual).abs() / torch.maximum(primal, dual.abs()).clamp(min=torch.finfo(y.dtype).tiny)
    violation = (residual.norm(dim=-1) - sigma).clamp(min=0) / y.norm(dim=-1)
    return torch.where(converged, gap, torch.maximum(gap, violation))


def _root_on_support(y, op: DictionaryOperator, c, codes, sigma, settings: Settings):
    """Return the weight with ``||r|| = sigma`` on the support of ``codes``, the code there, and its check.

    Returns ``(root, z, ok, tie)``. ``root`` is +inf where the support cannot
    reach ``sigma``, because its least-squares residual is above it or the
    signs have no component in range(D_S). ``ok`` marks codes whose signs and
    off-support atoms are consistent at the root and whose residual norm
    matches ``sigma``.
    """
    k = op.k
    support = codes != 0
    index, valid = pack_support(support)
    A = op.gram_block(index, valid)
    signs = gather_support(torch.sign(codes), index, valid)
    rhs = torch.stack([gather_support(c, index, valid), signs], dim=-1)
    solution, singular = solve_psd(A, rhs)
    fit = scatter_support(solution[..., 0], index, k)
    slope = scatter_support(solution[..., 1], index, k)
    r0 = y - op.matvec(fit)
    v = op.matvec(slope)
    numerator = sigma**2 - (r0 * r0).sum(-1)
    denominator = (v * v).sum(-1)
    reachable = (numerator >= 0) & (denominator > 0)
    root = torch.where(
        reachable,
        torch.sqrt(numerator.clamp(min=0) / denominator.clamp(min=torch.finfo(y.dtype).tiny)),
        torch.full_like(sigma, torch.inf),
    )
    safe_root = torch.where(reachable, root, torch.zeros_like(root))
    z = fit - safe_root.unsqueeze(-1) * slope
    penalty = L1Penalty(safe_root.unsqueeze(-1), None, False)
    g = op.rmatvec(y - op.matvec(z))
    scale = c.abs().amax(-1, keepdim=True).clamp(min=torch.finfo(y.dtype).tiny)
    violation, tie = penalty.kkt(z, g, scale, settings.tie_rtol)
    residual = (y - op.matvec(z)).norm(dim=-1)
    matches = (residual - sigma).abs() <= FEASIBILITY_RTOL * y.norm(dim=-1)
    ok = reachable & (violation <= settings.kkt_rtol) & matches & (safe_root > 0)
    return root, z, ok, tie | singular
