"""The cvxpylayers backend: each problem's cvxpy formulation as a ``CvxpyLayer``.

This is the general reference path. Its solve runs on the CPU in float64
(diffcp + SCS); inputs on another device or in float32 are moved there and
the results moved back, with autograd through the moves.
"""

from __future__ import annotations

import logging
import warnings

import torch

from ..coding.base import Problem, batched_rmatvec
from ..errors import InfeasibleProblemError, SolverFailedError
from ..info import SolveInfo
from ..inputs import Batch
from .base import Backend, register_backend

__all__ = ["CvxpyLayersBackend", "DEFAULT_SOLVER_ARGS"]

logger = logging.getLogger(__name__)

# SCS at eps 1e-10 with the dense derivative: with the cvxpylayers 1.2.0
# defaults (SCS eps 1e-4, LSQR derivative) gradients were off by 1e-5 to
# 1.5e-2 relative on small problems, and with LSQR at eps 1e-10 by 1e-6.
# NOTE: chosen on problems up to 40 x 300; the dense derivative costs
# O((n + m)^3) per sample, so large problems belong to the implicit backend.
DEFAULT_SOLVER_ARGS = {
    "solve_method": "SCS",
    "eps": 1e-10,
    "max_iters": 200_000,
    "mode": "dense",
    "n_jobs_forward": 1,
    "n_jobs_backward": 1,
}

# Entries below this fraction of the largest |z| in a sample are set to exact
# zeros; SCS at eps 1e-10 leaves off-support entries around 1e-10 relative.
_ZERO_THRESHOLD = 1e-7


@register_backend
class CvxpyLayersBackend(Backend):
    """Solve with cvxpylayers and differentiate with diffcp.

    Options (``sparse_code(..., solver_args=...)``): a dict merged over
    ``DEFAULT_SOLVER_ARGS`` and passed to diffcp. ``tol`` sets ``eps`` and
    ``max_iter`` sets ``max_iters``.

    Inputs are rescaled before the solve (``D`` by its largest column norm,
    ``y`` by its largest entry) so that the solver's absolute tolerances act
    relative to the data, and the code is scaled back.
    """

    name = "cvxpylayers"
    required = ("cvxpy_formulation", "rescale")

    def solve(self, problem, batch, *, tol, max_iter, init, solver_args=None, **options):
        if options:
            raise TypeError(
                f"unknown options for the cvxpylayers backend: {', '.join(sorted(options))}; "
                "it accepts solver_args (a dict for diffcp)."
            )
        settings = dict(DEFAULT_SOLVER_ARGS)
        if solver_args:
            settings.update(solver_args)
        if tol is not None:
            settings["eps"] = float(tol)
        if max_iter is not None:
            settings["max_iters"] = int(max_iter)

        infeasible, distances = _infeasible_samples(problem, batch)
        solvable = [b for b in range(batch.B) if b not in infeasible]
        z = torch.full((batch.B, batch.k), torch.nan, dtype=batch.y.dtype, device=batch.y.device)
        failures: dict[int, str] = {}
        if solvable:
            rows = torch.tensor(solvable, device=batch.y.device)
            sub = _select(batch, rows) if len(solvable) < batch.B else batch
            z_sub, failures_sub = _solve_isolated(problem, sub, settings)
            failures = {solvable[i]: reason for i, reason in failures_sub.items()}
            z = z.index_copy(0, rows, z_sub) if len(solvable) < batch.B else z_sub

        info = _info(problem, batch, z, failures, infeasible)
        if infeasible:
            listing = ", ".join(f"{b} (distance {distances[b]:.3g})" for b in infeasible)
            raise InfeasibleProblemError(
                f"{type(problem).__name__} is infeasible for samples {listing}: y is not within "
                f"reach of range(D). The other samples were solved (see the error's z and info).",
                samples=infeasible,
                distances=[distances[b] for b in infeasible],
                z=z,
                info=info,
            )
        if failures:
            listing = "; ".join(f"sample {b}: {reason}" for b, reason in sorted(failures.items()))
            raise SolverFailedError(
                f"the cvxpylayers solve failed on {len(failures)} sample(s): {listing}. "
                "Loosen solver_args['eps'] or raise max_iter; the other samples were solved.",
                samples=sorted(failures),
                reasons=[failures[b] for b in sorted(failures)],
                z=z,
                info=info,
            )
        return z, info


def _infeasible_samples(problem: Problem, batch: Batch) -> tuple[list[int], dict[int, float]]:
    check = getattr(problem, "infeasibility", None)
    if check is None:
        return [], {}
    distance, bad = check(batch.y, batch.D, batch.params)
    samples = [int(b) for b in bad.nonzero().flatten().tolist()]
    return samples, {b: float(distance[b]) for b in samples}


def _select(batch: Batch, rows: torch.Tensor) -> Batch:
    """Return the sub-batch of the given sample rows."""
    B = batch.B

    def pick(value):
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == B:
            return value.index_select(0, rows)
        return value

    params = {name: pick(value) for name, value in batch.params.items()}
    # Group indices are per atom, not per sample: keep them whole.
    for name in ("group_index",):
        if name in batch.params:
            params[name] = batch.params[name]
    D = batch.D if batch.D.dim() == 2 else batch.D.index_select(0, rows)
    return Batch(
        y=batch.y.index_select(0, rows), D=D, params=params, batched=True, out_dtype=batch.out_dtype
    )


def _layer(problem: Problem, m: int, k: int, shared_D: bool):
    """Return the cached ``CvxpyLayer`` of this problem structure and size."""
    from cvxpylayers.torch import CvxpyLayer

    key = ("cvxpylayers", problem.cache_key(), m, k, shared_D)
    cached = problem._cache.get(key)
    if cached is None:
        formulation = problem.cvxpy_formulation(m, k)
        layer = CvxpyLayer(
            formulation.problem, parameters=formulation.parameters, variables=[formulation.variable]
        )
        cached = (layer, formulation)
        problem._cache[key] = cached
        logger.debug("built a CvxpyLayer for %s with m=%d, k=%d", problem.kind, m, k)
    return cached


def _scales(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Return per-sample scales of D (largest column norm) and y (largest |entry|), (B,)."""
    column_norms = batch.D.detach().norm(dim=-2).amax(-1)
    d_scale = column_norms.expand(batch.B) if batch.D.dim() == 2 else column_norms
    y_scale = batch.y.detach().abs().amax(-1)
    one = torch.ones_like(y_scale)
    return torch.where(d_scale > 0, d_scale, one), torch.where(y_scale > 0, y_scale, one)


def _solve_isolated(problem: Problem, batch: Batch, settings: dict):
    """Solve the batch; if the solver fails, re-solve sample by sample to isolate failures."""
    try:
        return _solve_scaled(problem, batch, settings), {}
    except _SampleFailure as error:
        if batch.B == 1:
            return None, {0: str(error)}
        logger.info("batched cvxpylayers solve failed (%s); retrying per sample", error)

    z_rows, failures = [], {}
    for b in range(batch.B):
        rows = torch.tensor([b], device=batch.y.device)
        try:
            z_rows.append(_solve_scaled(problem, _select(batch, rows), settings))
        except _SampleFailure as error:
            failures[b] = str(error)
            z_rows.append(torch.full((1, batch.k), torch.nan, dtype=batch.y.dtype, device=batch.y.device))
    return torch.cat(z_rows, 0), failures


class _SampleFailure(Exception):
    pass


def _solve_scaled(problem: Problem, batch: Batch, settings: dict) -> torch.Tensor:
    """Solve one (sub-)batch through the cached layer, with rescaling and zero recovery."""
    import diffcp

    d_scale, y_scale = _scales(batch)
    if batch.D.dim() == 2:
        D = batch.D / d_scale[0]  # a shared D has one scale for every sample
    else:
        D = batch.D / d_scale.view(-1, 1, 1)
    y = batch.y / y_scale.unsqueeze(-1)
    params = problem.rescale(batch.params, d_scale, y_scale)
    layer, formulation = _layer(problem, batch.m, batch.k, batch.D.dim() == 2)
    values = formulation.values(y, D, params)
    values = [_to_solver(v) for v in values]

    solver_args = dict(settings)
    if not (torch.is_grad_enabled() and any(v.requires_grad for v in values)):
        # diffcp's solve-only path takes no derivative settings.
        solver_args.pop("mode", None)
        solver_args.pop("n_jobs_backward", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            (z,) = layer(*values, solver_args=solver_args)
        except diffcp.SolverError as error:
            raise _SampleFailure(str(error)) from error
        except (ValueError, ArithmeticError) as error:
            raise _SampleFailure(f"{type(error).__name__}: {error}") from error
    inaccurate = [str(w.message) for w in caught if "Inaccurate" in str(w.message)]
    if inaccurate:
        raise _SampleFailure("SCS stopped inaccurate (max_iters reached)")

    z = z.to(dtype=batch.y.dtype, device=batch.y.device)
    if z.dim() == 1:
        z = z.unsqueeze(0)
    keep = z.detach().abs() > _ZERO_THRESHOLD * z.detach().abs().amax(-1, keepdim=True)
    z = z * keep.to(z.dtype)
    return z * (y_scale / d_scale).unsqueeze(-1)


def _to_solver(value: torch.Tensor) -> torch.Tensor:
    return value.to(device="cpu", dtype=torch.float64)


def _info(problem: Problem, batch: Batch, z: torch.Tensor, failures, infeasible) -> SolveInfo:
    bad = torch.zeros(batch.B, dtype=torch.bool, device=z.device)
    for b in list(failures) + list(infeasible):
        bad[b] = True
    with torch.no_grad():
        z_clean = torch.where(bad.unsqueeze(-1), torch.zeros_like(z), z.detach())
        gap = problem.duality_gap_batched(z_clean, batch.y.detach(), batch.D.detach(), _detached(batch.params))
    gap = torch.where(bad, torch.full_like(gap, torch.nan), gap)
    return SolveInfo(
        converged=~bad,
        gap=gap,
        iterations=torch.full((batch.B,), -1, dtype=torch.int64, device=z.device),
        support=(z_clean != 0) & ~bad.unsqueeze(-1),
        degenerate=torch.zeros(batch.B, dtype=torch.bool, device=z.device),
        backend="cvxpylayers",
    )


def _detached(params: dict) -> dict:
    return {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in params.items()}
