"""The cvxpylayers backend: each problem's cvxpy formulation as a ``CvxpyLayer``.

This is the general reference path. The solve runs on the CPU in float64
(diffcp with SCS or Clarabel). Inputs on another device or in float32 are
moved there and the results moved back, with autograd through the moves, so
codes and gradients come back in the input's dtype and device.

What this module adds to a bare ``CvxpyLayer``:

- solver settings tight enough for the gradients to be right
  (``DEFAULT_SOLVER_ARGS``);
- rescaling of ``D``, ``y`` and the penalties before the solve, so that the
  solver's absolute tolerances act relative to the data;
- exact zeros off the support, recovered from the solver's output;
- normalisation of the incoming gradient, because diffcp's adjoint returns
  a zero gradient when every entry of the incoming gradient is below 1e-8;
- per-sample failures: an infeasible sample, a solver error, an inaccurate
  solve or a large duality gap is reported by sample index, and the other
  samples keep their codes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings

import torch

from ..coding.base import Problem
from ..errors import InfeasibleProblemError, SolverFailedError
from ..info import SolveInfo
from ..inputs import Batch
from .base import Backend, register_backend

__all__ = ["CvxpyLayersBackend", "DEFAULT_SOLVER_ARGS"]

logger = logging.getLogger(__name__)

# SCS at eps 1e-10 with the dense derivative and one thread. The measurements
# behind this choice (gradient errors and times of every candidate on the
# coherent lasso, the hypergradient, lam near 0 and basis pursuit denoising)
# are in docs/cvxpylayers-settings.md, with the script that produced them.
# The dense derivative costs O((n + m)^3) per sample in the size of the conic
# form, so problems with hundreds of atoms belong to the implicit backend.
DEFAULT_SOLVER_ARGS = {
    "solve_method": "SCS",
    "eps": 1e-10,
    "max_iters": 200_000,
    "mode": "dense",
    "n_jobs_forward": 1,
    "n_jobs_backward": 1,
}

# Settings that belong to diffcp itself rather than to one conic solver; they
# are kept when a caller switches solve_method.
_DIFFCP_ARGS = ("mode", "n_jobs_forward", "n_jobs_backward")
_SOLVERS = ("SCS", "Clarabel")

# Exact zeros: an entry of the solver's code (in rescaled units, where the
# columns of D have norm <= 1 and |y| <= 1) is set to zero when it is below
# either bound. At eps 1e-10, on the 10 x 16 instances of every kind in the
# tests, SCS left off-support entries up to 3e-9 relative to the largest
# entry (elastic net; 1e-10 for the others), and all-zero codes (lam >=
# lam_max) with noise up to 4e-10 in absolute terms. The absolute floor is
# what keeps an all-zero code exact: the relative bound alone would keep its
# largest noise entry.
_ZERO_RELATIVE = 1e-7
_ZERO_ABSOLUTE = 1e-8

# A sample whose relative duality gap after the solve exceeds the larger of
# these two values (the second times the solver's tolerance) is reported as
# failed. diffcp does not check Clarabel's status, so without this check an
# infeasible or unfinished Clarabel solve returns a silent, meaningless point.
# At eps 1e-4, SCS leaves gaps up to 2.3e-3 on lasso problems of 20 x 50.
_GAP_FAILURE = 1e-3
_GAP_FAILURE_PER_TOL = 1e3

# Below this ratio lam / lam_max, the multipliers of the penalty are at the
# level of the solver's residuals (SCS eps 1e-10) and diffcp's derivative
# with respect to lam is wrong: on a 30 x 10 least-squares lasso it was
# correct to 3.5e-8 at lam / lam_max = 9.3e-9 and wrong by 42% at 9.3e-10
# (docs/cvxpylayers-settings.md).
_SMALL_LAM = 1e-8


@register_backend
class CvxpyLayersBackend(Backend):
    """Solve with cvxpylayers and differentiate with diffcp.

    Options: ``solver_args``, a dict passed to diffcp. It is merged over
    ``DEFAULT_SOLVER_ARGS``; with another ``solve_method`` ("Clarabel"), only
    the diffcp settings ``mode``, ``n_jobs_forward`` and ``n_jobs_backward``
    are kept from the defaults. ``tol`` sets SCS's ``eps`` (Clarabel's
    ``tol_gap_abs``, ``tol_gap_rel`` and ``tol_feas``), and ``max_iter`` sets
    SCS's ``max_iters`` (Clarabel's ``max_iter``).

    Inputs are rescaled before the solve (``D`` by its largest column norm,
    ``y`` by its largest entry, the penalties accordingly) and the code is
    scaled back. Entries below ``1e-7`` of the sample's largest entry (or
    below ``1e-8`` in rescaled units) become exact zeros, with zero gradient.

    The returned ``info.gap`` is the problem's relative duality gap at the
    returned code; ``info.iterations`` is -1 (diffcp does not report it).

    Raises:
        InfeasibleProblemError: basis pursuit (denoising) samples with no
            feasible point, found before the solve from the distance of ``y``
            to range(D).
        SolverFailedError: samples on which the solver raised, stopped
            inaccurate, or returned a point with a relative duality gap above
            max(1e-3, 1000 * the solver's tolerance).

    NOTE: the gradient with respect to ``lam`` is unreliable below
    ``lam = 1e-8 * lam_max`` (a warning is logged); the implicit backend
    has no such limit.
    """

    name = "cvxpylayers"
    required = ("cvxpy_formulation", "rescale", "duality_gap_batched")

    def solve(self, problem, batch, *, tol, max_iter, init, solver_args=None, **options):
        if options:
            raise TypeError(
                f"unknown options for the cvxpylayers backend: {', '.join(sorted(options))}; "
                "it accepts solver_args (a dict of diffcp settings)."
            )
        settings = solver_settings(solver_args, tol, max_iter)
        _log_small_lam(problem, batch)

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

        gap = _gaps(problem, batch, z, set(failures) | set(infeasible))
        limit = _gap_limit(settings)
        for b in solvable:
            if b not in failures and not float(gap[b]) <= limit:
                failures[b] = (
                    f"the solver returned a point with relative duality gap {float(gap[b]):.3g} "
                    f"(limit {limit:g})"
                )
        info = _info(batch, z, gap, failures, infeasible)
        _raise_failures(problem, batch, z, info, infeasible, distances, failures)
        return z, info


def solver_settings(solver_args, tol, max_iter) -> dict:
    """Return the diffcp settings of one solve: defaults, ``solver_args``, ``tol``, ``max_iter``."""
    if solver_args is None:
        solver_args = {}
    if not isinstance(solver_args, dict):
        raise TypeError(
            f"solver_args must be a dict of diffcp settings; got {type(solver_args).__name__}."
        )
    method = solver_args.get("solve_method", DEFAULT_SOLVER_ARGS["solve_method"])
    matched = [name for name in _SOLVERS if isinstance(method, str) and name.lower() == method.lower()]
    if not matched:
        raise ValueError(
            f"solver_args['solve_method'] must be one of {', '.join(_SOLVERS)}; got {method!r}."
        )
    method = matched[0]
    if method == DEFAULT_SOLVER_ARGS["solve_method"]:
        settings = dict(DEFAULT_SOLVER_ARGS)
    else:
        settings = {name: DEFAULT_SOLVER_ARGS[name] for name in _DIFFCP_ARGS}
    settings.update(solver_args)
    settings["solve_method"] = method

    if tol is not None:
        tol = float(tol)
        if not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"tol must be a positive finite float; got {tol}.")
        if method == "SCS":
            settings["eps"] = tol
        else:
            settings.update(tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol)
    if max_iter is not None:
        if isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer; got {max_iter!r}.")
        settings["max_iters" if method == "SCS" else "max_iter"] = int(max_iter)
    return settings


def _gap_limit(settings: dict) -> float:
    """Return the relative duality gap above which a solved sample counts as failed."""
    if settings["solve_method"] == "SCS":
        tol = settings.get("eps", settings.get("eps_rel", 1e-4))
    else:
        tol = settings.get("tol_gap_rel", 1e-8)
    return max(_GAP_FAILURE, _GAP_FAILURE_PER_TOL * float(tol))


def _log_small_lam(problem: Problem, batch: Batch) -> None:
    """Log a warning when lam requires grad but is too small for diffcp's derivative in lam."""
    lam = batch.params.get("lam")
    if not (isinstance(lam, torch.Tensor) and lam.requires_grad):
        return
    lam_max_batched = getattr(problem, "lam_max_batched", None)
    if lam_max_batched is None:
        return
    with torch.no_grad():
        scale = lam_max_batched(batch.y.detach(), batch.D.detach(), _detached(batch.params))
        small = (lam.detach() < _SMALL_LAM * scale).nonzero().flatten().tolist()
    if small:
        logger.warning(
            "lam is below %g * lam_max on samples %s: the cvxpylayers gradient with respect "
            "to lam is unreliable there (gradients in y and D are not affected); use the "
            "implicit backend for lam near 0.",
            _SMALL_LAM,
            small[:10],
        )


# -----------------------------------------------------------------------------
# Failures


def _infeasible_samples(problem: Problem, batch: Batch) -> tuple[list[int], dict[int, float]]:
    check = getattr(problem, "infeasibility", None)
    if check is None:
        return [], {}
    distance, bad = check(batch.y, batch.D, batch.params)
    samples = [int(b) for b in bad.nonzero().flatten().tolist()]
    return samples, {b: float(distance[b]) for b in samples}


def _raise_failures(problem, batch, z, info, infeasible, distances, failures) -> None:
    """Raise the error naming every failing sample, carrying the whole batch's results."""
    z = z.to(batch.out_dtype)
    if infeasible:
        sigma = batch.params.get("sigma")
        parts = []
        for b in infeasible:
            text = f"sample {b} (distance of y to range(D) {distances[b]:.6g}"
            if sigma is not None:
                text += f" > sigma = {float(sigma[b].detach()):.6g}"
            parts.append(text + ")")
        others = ""
        if failures:
            others = " Solver failures on other samples: " + _listing(failures) + "."
        raise InfeasibleProblemError(
            f"{type(problem).__name__} has no feasible point for {'; '.join(parts)}: "
            "y is not within reach of range(D). Project y onto range(D), raise sigma, or "
            "use a Lasso. The other samples were solved (see the error's z and info)." + others,
            samples=infeasible,
            distances=[distances[b] for b in infeasible],
            z=z,
            info=info,
        )
    if failures:
        raise SolverFailedError(
            f"the cvxpylayers solve failed on {len(failures)} sample(s): {_listing(failures)}. "
            "Raise max_iter or loosen tol (solver_args['eps'] for SCS), or use the implicit "
            "backend; the other samples were solved (see the error's z and info).",
            samples=sorted(failures),
            reasons=[failures[b] for b in sorted(failures)],
            z=z,
            info=info,
        )


def _listing(failures: dict[int, str]) -> str:
    return "; ".join(f"sample {b}: {reason}" for b, reason in sorted(failures.items()))


class _SampleFailure(Exception):
    """A solve of a (sub-)batch failed; the message gives the reason."""


# -----------------------------------------------------------------------------
# Batches and the layer cache


def _select(batch: Batch, rows: torch.Tensor) -> Batch:
    """Return the sub-batch of the given sample rows."""
    B = batch.B

    def pick(value):
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == B:
            return value.index_select(0, rows)
        return value

    params = {name: pick(value) for name, value in batch.params.items()}
    # The group index is per atom, not per sample, even when k equals B.
    if "group_index" in batch.params:
        params["group_index"] = batch.params["group_index"]
    D = batch.D if batch.D.dim() == 2 else batch.D.index_select(0, rows)
    return Batch(
        y=batch.y.index_select(0, rows), D=D, params=params, batched=True, out_dtype=batch.out_dtype
    )


def _layer(problem: Problem, m: int, k: int, shared_D: bool):
    """Return the cached ``(CvxpyLayer, CvxpyFormulation)`` of this structure and size.

    The cache lives on the problem instance (``problem._cache``). It is keyed
    by the problem's structure (kind, groups, ``nonneg``), ``m``, ``k`` and
    whether ``D`` is shared. Copies and pickles of the problem start with an
    empty cache.
    """
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


# -----------------------------------------------------------------------------
# The solve


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
            return batch.y.new_full((1, batch.k), torch.nan), {0: str(error)}
        logger.info("batched cvxpylayers solve failed (%s); retrying per sample", error)

    z_rows, failures = [], {}
    for b in range(batch.B):
        rows = torch.tensor([b], device=batch.y.device)
        try:
            z_rows.append(_solve_scaled(problem, _select(batch, rows), settings))
        except _SampleFailure as error:
            failures[b] = str(error)
            z_rows.append(batch.y.new_full((1, batch.k), torch.nan))
    return torch.cat(z_rows, 0), failures


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
    shapes = [tuple(p.shape) for p in formulation.parameters]
    values = [
        _to_solver(value, shape, batch.B)
        for value, shape in zip(formulation.values(y, D, params), shapes)
    ]

    solver_args = dict(settings)
    needs_grad = torch.is_grad_enabled() and any(v.requires_grad for v in values)
    if not needs_grad:
        # diffcp's solve-only path passes unknown settings on to the solver.
        for name in ("mode", "n_jobs_backward"):
            solver_args.pop(name, None)

    with _solver_warnings() as caught:
        try:
            if needs_grad:
                call = _LayerCall(layer, solver_args, formulation)
                z = _DifferentiableLayer.apply(call, *values)
            else:
                (z,) = layer(*values, solver_args=solver_args)
        except diffcp.SolverError as error:
            raise _SampleFailure(str(error)) from error
        except (ValueError, ArithmeticError, RuntimeError) as error:
            raise _SampleFailure(f"{type(error).__name__}: {error}") from error
    if any("Inaccurate" in str(w.message) for w in caught):
        limit = solver_args.get("max_iters", solver_args.get("max_iter"))
        raise _SampleFailure(
            f"{settings['solve_method']} stopped inaccurate (iteration limit {limit} reached)"
        )

    if z.dim() == 1:
        z = z.unsqueeze(0)
    z = _recover_zeros(z)
    if needs_grad:
        call.support = z.detach() != 0
    z = z.to(dtype=batch.y.dtype, device=batch.y.device)
    z = z * (y_scale / d_scale).unsqueeze(-1)
    return _polish_on_support(problem, batch, z)


@contextlib.contextmanager
def _solver_warnings():
    """Record the warnings of cvxpylayers and diffcp; pass on the ones a caller can act on.

    diffcp reports an inaccurate solve only as a "Solved/Inaccurate." warning,
    which the forward turns into a failure, so it is not passed on.
    cvxpylayers 1.2.0 converts tensors with ``np.array(tensor)``, which numpy 2
    flags with a DeprecationWarning on every solve and every backward. Those
    are logged at debug level only.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    for w in caught:
        if "Inaccurate" in str(w.message):
            continue
        if issubclass(w.category, (DeprecationWarning, FutureWarning)):
            logger.debug("cvxpylayers warned: %s", w.message)
            continue
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _to_solver(value: torch.Tensor, shape: tuple, B: int) -> torch.Tensor:
    """Return a parameter value as a float64 CPU tensor with a leading batch dimension."""
    value = value.to(device="cpu", dtype=torch.float64)
    if value.dim() == len(shape):
        value = value.unsqueeze(0)
    return value.expand(B, *shape)


def _recover_zeros(z: torch.Tensor) -> torch.Tensor:
    """Set the solver's off-support noise to exact zeros (rescaled units, (B, k)).

    The kept entries carry diffcp's gradient; the zeroed ones get gradient 0,
    the support-restricted element of the generalised Jacobian.
    """
    magnitude = z.detach().abs()
    bound = (_ZERO_RELATIVE * magnitude.amax(-1, keepdim=True)).clamp(min=_ZERO_ABSOLUTE)
    return torch.where(magnitude > bound, z, torch.zeros_like(z))


def _polish_on_support(problem: Problem, batch: Batch, z: torch.Tensor) -> torch.Tensor:
    """Return the codes to pass on: today ``z`` itself ((B, k), the batch's units and dtype).

    NOTE: this is the hook for a support polish, which is not written yet.
    The polished value ``p`` solves the optimality equations of ``problem``
    (on ``batch.y``, ``batch.D`` and ``batch.params``) on the support of
    ``z`` to machine precision, with zeros off it. It would enter
    straight-through, as ``z + (p - z).detach()``, so that the value is the
    polished one and the gradient stays diffcp's. Until then the codes carry
    the solver's error, about 1e-10 at the default settings.
    """
    return z


# -----------------------------------------------------------------------------
# The differentiable layer call
#
# diffcp's adjoint_derivative (diffcp 1.1.9) returns a zero gradient when
# np.allclose(dz, 0) holds for the incoming gradient dz, i.e. when all its
# entries are below 1e-8: a loss scaled by 1e-12 gets no gradient at all. The
# adjoint is linear in dz, so the backward below divides each sample's
# incoming gradient by its largest entry before diffcp and multiplies that
# sample's parameter gradients by the same factor after it.
#
# The backward also applies the support convention to the per-atom
# parameters (the columns of D and the thresholds tau): an atom off the
# support gets exactly zero gradient, where diffcp leaves noise at the
# solver's tolerance. On a nondegenerate solution that is the true
# derivative (the code on the support does not depend on the other atoms),
# and at a tie it is the support-restricted element of the generalised
# Jacobian.

# Names of the cvxpy parameters whose last dimension runs over the atoms.
_PER_ATOM_PARAMETERS = ("D", "tau")


class _LayerCall:
    """One differentiable call of a ``CvxpyLayer``: its settings and its inner graph.

    Attributes:
        support: bool (B, k), the atoms kept by ``_recover_zeros``; set after
            the forward, read by the backward.
        inputs, z: the detached parameter values and the layer's output, which
            carry cvxpylayers' own autograd graph.
    """

    def __init__(self, layer, solver_args: dict, formulation) -> None:
        self.layer = layer
        self.solver_args = solver_args
        self.per_atom = [p.name() in _PER_ATOM_PARAMETERS for p in formulation.parameters]
        self.support: torch.Tensor | None = None
        self.inputs: list[torch.Tensor] = []
        self.z: torch.Tensor | None = None


class _DifferentiableLayer(torch.autograd.Function):
    """Codes (B, k) of a ``CvxpyLayer`` from batched parameter values (each (B, ...)).

    The forward runs the layer on detached copies of the values, keeping
    cvxpylayers' graph in the ``_LayerCall``. The backward normalises the
    incoming gradient per sample, runs diffcp's adjoint through that graph
    (filtering its warnings), rescales the result and zeroes the per-atom
    gradients off the support. Double backward is not supported (diffcp's
    adjoint is not differentiable).
    """

    @staticmethod
    def forward(call, *values):
        call.inputs = [value.detach().requires_grad_(value.requires_grad) for value in values]
        with torch.enable_grad():
            (call.z,) = call.layer(*call.inputs, solver_args=call.solver_args)
        return call.z.detach()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.call = inputs[0]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        call = ctx.call
        rows = grad if grad.dim() == 2 else grad.unsqueeze(0)
        factors = rows.abs().amax(-1)
        usable = (factors > 0) & torch.isfinite(factors)
        factors = torch.where(usable, factors, torch.ones_like(factors))
        normalised = (rows / factors.unsqueeze(-1)).reshape(grad.shape)

        with_grad = [value for value in call.inputs if value.requires_grad]
        with _solver_warnings():
            found = torch.autograd.grad(
                call.z, with_grad, normalised, retain_graph=True, allow_unused=True
            )
        found = iter(found)
        grads = []
        for value, per_atom in zip(call.inputs, call.per_atom):
            if not value.requires_grad:
                grads.append(None)
                continue
            g = next(found)
            if g is None:
                g = torch.zeros_like(value)
            g = g * factors.view(-1, *([1] * (g.dim() - 1)))
            if per_atom and call.support is not None:
                mask = call.support.to(g.dtype)
                g = g * (mask.unsqueeze(1) if g.dim() == 3 else mask)
            grads.append(g)
        return (None, *grads)


# -----------------------------------------------------------------------------
# Info


def _gaps(problem: Problem, batch: Batch, z: torch.Tensor, bad: set[int]) -> torch.Tensor:
    """Return the relative duality gap per sample, NaN on the failed ones."""
    mask = torch.zeros(batch.B, dtype=torch.bool, device=z.device)
    for b in bad:
        mask[b] = True
    with torch.no_grad():
        z_clean = torch.where(mask.unsqueeze(-1), torch.zeros_like(z), z.detach())
        z_clean = torch.nan_to_num(z_clean, nan=0.0)
        gap = problem.duality_gap_batched(
            z_clean, batch.y.detach(), batch.D.detach(), _detached(batch.params)
        )
    return torch.where(mask, torch.full_like(gap, torch.nan), gap)


def _info(batch: Batch, z: torch.Tensor, gap: torch.Tensor, failures, infeasible) -> SolveInfo:
    bad = torch.zeros(batch.B, dtype=torch.bool, device=z.device)
    for b in list(failures) + list(infeasible):
        bad[b] = True
    support = (z.detach() != 0) & ~torch.isnan(z.detach()) & ~bad.unsqueeze(-1)
    return SolveInfo(
        converged=~bad,
        gap=gap,
        iterations=torch.full((batch.B,), -1, dtype=torch.int64, device=z.device),
        support=support,
        degenerate=torch.zeros(batch.B, dtype=torch.bool, device=z.device),
        backend="cvxpylayers",
    )


def _detached(params: dict) -> dict:
    return {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in params.items()}
