"""The entry point of the forward solvers: dispatch on the problem kind, report outcomes."""

from __future__ import annotations

import torch

from ..info import SolveInfo
from .constrained import solve_constrained
from .operator import DictionaryOperator
from .penalised import solve_penalised
from .penalties import penalty_for
from .report import warn_unconverged
from .settings import default_settings

__all__ = ["solve"]

PENALISED_KINDS = ("lasso", "elastic_net", "group_lasso", "sparse_group_lasso")
CONSTRAINED_KINDS = ("basis_pursuit", "basis_pursuit_denoising")
# Kinds whose support factors the implicit backward can reuse.
FACTOR_KINDS = ("lasso", "elastic_net")


def solve(problem, y, D, params, *, tol=None, max_iter=None, init=None, return_factor=False, factor_limit=None):
    """Solve a batch of coding problems of a built-in kind; no autograd.

    Args:
        problem: the problem. Its ``kind`` selects the algorithm, and for
            basis pursuit (denoising) its ``infeasibility`` method finds the
            infeasible samples.
        y: signals, float32 or float64.
        D: dictionary with atoms as columns, shared or per sample, in ``y``'s dtype.
        params: ``problem.resolve(B, k, dtype, device)``, detached.
        tol: relative duality gap at which an unpolished code is accepted;
            default 1e-10 for float64 and 1e-6 for float32 (see ``settings``).
        max_iter: proximal-gradient iterations per sample (for the
            constrained kinds, per inner lasso solve); default 20000.
        init: optional warm start (B, k). It changes the time taken, never
            the solution.
        return_factor: also return the float64 Cholesky factors of the final
            support systems, for the implicit backward.
        factor_limit: with ``return_factor``, the largest support whose
            factor is kept; None keeps every size.

    Returns:
        ``(z, info)``: codes (B, k) in ``y``'s dtype with exact zeros off the
        support, and per-sample outcomes. ``info.iterations`` counts
        proximal-gradient iterations plus polish rounds. With
        ``return_factor``, ``(z, info, factor)``: ``factor`` is a
        ``linalg.SupportFactor`` for the lasso and the elastic net with a
        shared ``D`` (rows ``known`` where a polish produced the code), and
        None for the other kinds and for a per-sample ``D``.

    Raises:
        ValueError: an unknown problem kind, or a ``tol`` or ``max_iter`` out of range.
        InfeasibleProblemError: basis pursuit (denoising) without a feasible
            point on some samples, raised after the others are solved. The
            error carries every sample's result (NaN rows for the failures).

    Warns:
        ConvergenceWarning: samples stopped by ``max_iter`` before reaching
            ``tol`` (their ``info.converged`` is False).

    Shape:
        y: (B, m); D: (m, k) or (B, m, k); init: (B, k); z: (B, k).
    """
    kind = getattr(problem, "kind", None)
    if kind not in PENALISED_KINDS + CONSTRAINED_KINDS:
        known = ", ".join(PENALISED_KINDS + CONSTRAINED_KINDS)
        raise ValueError(f"problem kind {kind!r} has no forward solver; expected one of: {known}.")
    if tol is not None and not (0 < float(tol) < 1):
        raise ValueError(f"tol must be a relative duality gap in (0, 1); got {tol}. Leave it None for the default.")
    if max_iter is not None and int(max_iter) < 1:
        raise ValueError(f"max_iter must be a positive integer; got {max_iter}.")

    with torch.no_grad():
        y = y.detach()
        D = D.detach().to(y.dtype)
        if init is not None:
            init = init.detach().to(y.dtype)
        settings = default_settings(y.dtype, tol, max_iter)
        op = DictionaryOperator(D, y.shape[0])
        error = None
        factor = None
        if kind in PENALISED_KINDS:
            keep_factor = return_factor and kind in FACTOR_KINDS and op.shared
            result = solve_penalised(penalty_for(kind, params), y, op, settings, init, keep_factor, factor_limit)
            z, info, factor = result.z, _info(result, y.dtype), result.factor
        else:
            z, info, error = solve_constrained(problem, y, op, params, settings, init)
    warn_unconverged(info, settings.tol, kind)
    if error is not None:
        raise error
    if return_factor:
        return z, info, factor
    return z, info


def _info(result, dtype) -> SolveInfo:
    return SolveInfo(
        converged=result.converged,
        gap=result.gap.to(dtype),
        iterations=result.iterations,
        support=result.z != 0,
        degenerate=result.degenerate,
        backend="implicit",
    )
