"""Reference solutions and gradients for the comparison, cached on disk.

Two ways to compute the reference codes, chosen by ``method``:

- ``"clarabel"`` (the default): each sample is solved with cvxpy and Clarabel
  at tolerances of 1e-12, on the problem's own cvxpy formulation with ``D``
  and ``y`` rescaled as the cvxpylayers backend does. Then every kind but the
  sparse group lasso is polished: the optimality equations on the support
  that Clarabel identified are solved in float64. They are a linear system
  for the lasso, the elastic net and basis pursuit, a closed-form scalar
  root for basis pursuit denoising, and Newton's method on the active groups
  for the group lasso. The polished point is kept when its optimality
  residual is no larger than Clarabel's.
- ``"implicit"``: the implicit backend at ``tol=1e-14``, with its own polish.

The reference gradient is the exact derivative of the solution map at the
reference point: the vector-Jacobian product of the problem's KKT system on
the reference support (``Problem.implicit_vjp``, in float64). It is the
derivative only where the point is not degenerate (no atom exactly at its
threshold).

This module is separate from the test oracle (``tests/reference.py``), which
shares no code with the package.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..inputs import prepare_inputs

__all__ = ["REFERENCE_METHODS", "Reference", "default_cache_dir", "reference_gradients", "reference_solutions"]

logger = logging.getLogger(__name__)

REFERENCE_METHODS = ("clarabel", "implicit")

# Bump when the computation changes, so that old cache entries are not reused.
_VERSION = "2"

# Clarabel far below its defaults (1e-8); when it cannot reach them it stops
# with "AlmostSolved" (cvxpy's optimal_inaccurate), which the polish repairs.
_CLARABEL_SETTINGS = {
    "tol_gap_abs": 1e-12,
    "tol_gap_rel": 1e-12,
    "tol_feas": 1e-12,
    "tol_ktratio": 1e-10,
    "max_iter": 500,
}
# An entry of a rescaled Clarabel code counts as nonzero above this fraction of
# the sample's largest entry.
_SUPPORT_THRESHOLD = 1e-7
_POLISHED_KINDS = ("lasso", "elastic_net", "group_lasso", "basis_pursuit", "basis_pursuit_denoising")
_NEWTON_STEPS = 30
# Support corrections of the lasso polish before it gives up on a sample.
_MAX_ROUNDS = 50


@dataclass
class Reference:
    """Reference codes of a batch, with how they were obtained.

    Attributes:
        z: codes (B, k), float64 on the CPU.
        gap: relative duality gap of each code (B,).
        residual: relative optimality residual of each code (B,).
        polished: bool (B,), the polish was kept.
        method: ``"clarabel"`` or ``"implicit"``.
        seconds: time the computation took (for a cache hit, that of the run
            that filled the cache).
        cache_hit: the codes were read from the cache.
        key: the cache key (a SHA-256 of the instance and the method).
    """

    z: torch.Tensor
    gap: torch.Tensor
    residual: torch.Tensor
    polished: torch.Tensor
    method: str
    seconds: float
    cache_hit: bool
    key: str

    def summary(self) -> dict:
        """Return JSON-ready facts about the reference: method, worst gap and residual, polish count."""
        return {
            "method": self.method,
            "description": _DESCRIPTIONS[self.method],
            "max_gap": float(self.gap.max()),
            "max_residual": float(self.residual.max()),
            "polished": int(self.polished.sum()),
            "samples": int(self.z.shape[0]),
            "seconds": self.seconds,
            "cache_hit": self.cache_hit,
            "key": self.key,
        }


_DESCRIPTIONS = {
    "clarabel": "cvxpy + Clarabel at 1e-12, polished on the support (every kind but the sparse "
    "group lasso, which keeps the Clarabel point)",
    "implicit": "the implicit backend at tol=1e-14 with its support polish",
}


def default_cache_dir() -> Path:
    """Return the default cache folder: ``$XDG_CACHE_HOME/implicit_basis/reference``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "implicit_basis" / "reference"


def reference_solutions(y, D, problem, *, method: str = "clarabel", cache_dir=None) -> Reference:
    """Return the reference codes of a batch, from the cache when present.

    Args:
        y: signals (B, m); D: dictionary (m, k) or (B, m, k). Any float dtype
            and device: the reference is computed in float64 on the CPU.
        problem: the coding problem.
        method: ``"clarabel"`` or ``"implicit"`` (see the module docstring).
        cache_dir: folder of the cache, or None for no cache.

    Raises:
        ValueError: an unknown ``method``.
    """
    if method not in REFERENCE_METHODS:
        raise ValueError(f"method must be one of {', '.join(REFERENCE_METHODS)}; got {method!r}.")
    batch = prepare_inputs(y.detach().double().cpu(), D.detach().double().cpu(), problem)
    key = _cache_key(batch, problem, method)
    path = Path(cache_dir) / f"{key}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path) as data:
                logger.info("reference read from the cache %s", path)
                return Reference(
                    z=torch.from_numpy(data["z"]),
                    gap=torch.from_numpy(data["gap"]),
                    residual=torch.from_numpy(data["residual"]),
                    polished=torch.from_numpy(data["polished"]),
                    method=method,
                    seconds=float(data["seconds"]),
                    cache_hit=True,
                    key=key,
                )
        except (OSError, KeyError, ValueError) as error:
            logger.warning("ignoring the unreadable cache entry %s: %s", path, error)

    start = time.perf_counter()
    if method == "clarabel":
        z, polished = _clarabel(batch, problem)
    else:
        z, polished = _implicit(batch, problem)
    seconds = time.perf_counter() - start
    gap = problem.duality_gap_batched(z, batch.y, batch.D, batch.params)
    residual = problem.residual_batched(z, batch.y, batch.D, batch.params)
    result = Reference(z, gap, residual, polished, method, seconds, False, key)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.npz")
        np.savez(
            temporary, z=z.numpy(), gap=gap.numpy(), residual=residual.numpy(),
            polished=polished.numpy(), seconds=np.float64(seconds),
        )
        os.replace(temporary, path)
    return result


def reference_gradients(y, D, problem, z_ref: torch.Tensor, weights: torch.Tensor):
    """Return the gradients of ``sum(weights * z)`` at the reference codes, in y and in D.

    The gradients are the KKT vector-Jacobian products at ``z_ref``
    (``Problem.implicit_vjp``), computed in float64 on the CPU.

    Returns:
        (grad_y (B, m), grad_D like ``D``), float64 on the CPU, or
        (None, None) when the problem kind has no ``implicit_vjp``.
    """
    from ..diff.implicit import DENSE_SUPPORT_LIMIT, attach_implicit_gradient

    if not callable(getattr(problem, "implicit_vjp", None)):
        return None, None
    y64 = y.detach().double().cpu().requires_grad_(True)
    D64 = D.detach().double().cpu().requires_grad_(True)
    batch = prepare_inputs(y64, D64, problem)
    z = attach_implicit_gradient(problem, batch, z_ref.double(), DENSE_SUPPORT_LIMIT)
    (z * weights.double().cpu()).sum().backward()
    return y64.grad, D64.grad


# -----------------------------------------------------------------------------


def _cache_key(batch, problem, method: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"{_VERSION}|{method}|{problem.cache_key()!r}".encode())
    for name in ("y", "D"):
        tensor = getattr(batch, name).contiguous()
        digest.update(f"|{name}{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    for name in sorted(batch.params):
        value = batch.params[name]
        digest.update(f"|{name}".encode())
        if isinstance(value, torch.Tensor):
            digest.update(repr(tuple(value.shape)).encode())
            digest.update(value.detach().double().contiguous().numpy().tobytes())
        elif name != "groups":
            digest.update(repr(value).encode())
    return digest.hexdigest()


def _implicit(batch, problem):
    from ..layer import sparse_code

    z = sparse_code(batch.y, batch.D, problem, backend="implicit", tol=1e-14)
    return z.double(), torch.ones(batch.B, dtype=torch.bool)


def _clarabel(batch, problem):
    import cvxpy as cp

    d_scale, y_scale = _scales(batch)
    D = batch.D / (d_scale[0] if batch.D.dim() == 2 else d_scale.view(-1, 1, 1))
    y = batch.y / y_scale.unsqueeze(-1)
    params = problem.rescale(batch.params, d_scale, y_scale)
    formulation = problem.cvxpy_formulation(batch.m, batch.k)
    values = formulation.values(y, D, params)

    z = torch.full((batch.B, batch.k), math.nan, dtype=torch.float64)
    for b in range(batch.B):
        for parameter, value in zip(formulation.parameters, values):
            value = value.detach()
            if value.dim() > len(parameter.shape):
                value = value[b]
            parameter.value = value.numpy()
        try:
            # cvxpy warns "Solution may be inaccurate" on AlmostSolved; the
            # status check below and the polish handle that case.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                formulation.problem.solve(solver=cp.CLARABEL, **_CLARABEL_SETTINGS)
        except cp.error.SolverError as error:
            logger.warning("Clarabel failed on sample %d: %s", b, error)
            continue
        if formulation.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            logger.warning("Clarabel returned status %s on sample %d", formulation.problem.status, b)
            continue
        z[b] = torch.from_numpy(np.asarray(formulation.variable.value, dtype=np.float64))

    magnitude = z.abs()
    z = torch.where(magnitude > _SUPPORT_THRESHOLD * magnitude.amax(-1, keepdim=True), z, 0.0)
    polished = torch.zeros(batch.B, dtype=torch.bool)
    if problem.kind in _POLISHED_KINDS:
        z, polished = _polish(problem, y, D, params, z)
    return z * (y_scale / d_scale).unsqueeze(-1), polished


def _scales(batch):
    """Return per-sample scales of D (largest column norm) and y (largest |entry|), (B,)."""
    norms = batch.D.norm(dim=-2).amax(-1)
    d_scale = norms.expand(batch.B) if batch.D.dim() == 2 else norms
    y_scale = batch.y.abs().amax(-1)
    one = torch.ones_like(y_scale)
    return torch.where(d_scale > 0, d_scale, one), torch.where(y_scale > 0, y_scale, one)


def _polish(problem, y, D, params, z):
    """Solve the optimality equations on each sample's support; keep what lowers the residual."""
    from ..coding.lasso import atom_thresholds

    before = problem.residual_batched(z, y, D, params)
    polished_z = z.clone()
    kept = torch.zeros(z.shape[0], dtype=torch.bool)
    kind = problem.kind
    tau = atom_thresholds(params).expand_as(z) if kind in ("lasso", "elastic_net") else None
    for b in range(z.shape[0]):
        if not bool(torch.isfinite(z[b]).all()):
            continue
        D_b = D if D.dim() == 2 else D[b]
        if kind in ("lasso", "elastic_net"):
            l2 = params["l2"][b] if params.get("l2") is not None else 0.0
            try:
                trial = _lasso_active_set(D_b, y[b], tau[b], l2, bool(params.get("nonneg")), z[b])
            except RuntimeError:
                continue
            if trial is not None:
                polished_z[b] = trial
                kept[b] = True
            continue
        support = (z[b] != 0).nonzero().flatten()
        if support.numel() == 0:
            continue
        D_S = D_b[:, support]
        signs = torch.sign(z[b, support])
        G = D_S.T @ D_S
        rhs = D_S.T @ y[b]
        try:
            if kind == "group_lasso":
                candidate = _group_newton(D_S, y[b], z[b, support], support, params, b)
                signs = torch.sign(candidate)
            elif kind == "basis_pursuit":
                candidate = torch.linalg.lstsq(D_S, y[b].unsqueeze(-1)).solution.squeeze(-1)
            else:
                candidate = _bpdn_root(D_S, y[b], G, rhs, signs, params["sigma"][b])
        except RuntimeError:
            continue
        if candidate is None or not bool(torch.isfinite(candidate).all()):
            continue
        if not bool((torch.sign(candidate) == signs).all()):
            continue
        trial = torch.zeros_like(z[b])
        trial[support] = candidate
        polished_z[b] = trial
        kept[b] = True

    after = problem.residual_batched(polished_z, y, D, params)
    kept = kept & (after <= before)
    return torch.where(kept.unsqueeze(-1), polished_z, z), kept


def _lasso_active_set(D, y, tau, l2, nonneg: bool, z):
    """Return the lasso (elastic net) code solved exactly on a corrected support, or None.

    Starting from the support and signs of ``z``, each round solves
    ``(D_S^T D_S + l2 I) z_S = D_S^T y - tau_S s_S``. Atoms whose sign flips
    leave the support; otherwise the most violating atom off the support,
    ``|d_j^T r| - tau_j`` above ``1e-12 ||D^T y||_inf``, joins it with the sign of
    its correlation. Returns None when the rounds run out.

    Shape:
        D: (m, k); y: (m,); tau: (k,) or (1,), +inf for atoms forced to zero; z: (k,).
    """
    k = D.shape[-1]
    tau = tau.expand(k)
    support = z != 0
    signs = torch.sign(z)
    tolerance = 1e-12 * float((D.T @ y).abs().max().clamp(min=torch.finfo(y.dtype).tiny))
    for _ in range(_MAX_ROUNDS):
        active = support.nonzero().flatten()
        candidate = torch.zeros_like(z)
        if active.numel():
            D_S = D[:, active]
            G = D_S.T @ D_S + l2 * torch.eye(active.numel(), dtype=D.dtype)
            values = torch.linalg.solve(G, D_S.T @ y - tau[active] * signs[active])
            flipped = torch.sign(values) != signs[active]
            if bool(flipped.any()):
                support[active[flipped]] = False
                continue
            candidate[active] = values
        correlation = D.T @ (y - D @ candidate) - l2 * candidate
        excess = (correlation if nonneg else correlation.abs()) - tau
        excess = torch.where(support | torch.isinf(tau), torch.full_like(excess, -torch.inf), excess)
        worst = int(excess.argmax())
        if not float(excess[worst]) > tolerance:
            return candidate
        support[worst] = True
        signs[worst] = 1.0 if nonneg else torch.sign(correlation[worst])
    return None


def _group_newton(D_S, y, z_S, support, params, b):
    """Return z_S solving D_S^T (D_S z_S - y) + lam w_g z_g / ||z_g|| = 0 by Newton's method.

    The Jacobian is D_S^T D_S plus, per active group, lam w_g / ||z_g|| (I - u u^T)
    with u = z_g / ||z_g||. Returns None when a group collapses to zero.
    """
    index = params["group_index"][support]
    n_groups = params["n_groups"]
    scale = params["lam"][b] * params["weights"][b][index]
    G = D_S.T @ D_S
    rhs = D_S.T @ y
    for _ in range(_NEWTON_STEPS):
        squared = torch.zeros(n_groups, dtype=z_S.dtype).index_add(0, index, z_S * z_S)
        norms = squared.sqrt()[index]
        if not bool((norms > 0).all()):
            return None
        u = z_S / norms
        F = G @ z_S - rhs + scale * u
        same = index.unsqueeze(0) == index.unsqueeze(1)
        curvature = torch.where(same, torch.eye(len(index), dtype=z_S.dtype) - u.unsqueeze(0) * u.unsqueeze(1), 0.0)
        J = G + (scale / norms).unsqueeze(-1) * curvature
        step = torch.linalg.solve(J, F)
        z_S = z_S - step
        if float(step.norm()) <= 1e-15 * float(z_S.norm()):
            break
    return z_S


def _bpdn_root(D_S, y, G, rhs, signs, sigma):
    """Return z_S = a - lam b with ||D_S z_S - y|| = sigma, a = G^-1 D_S^T y, b = G^-1 s.

    The residual y - D_S a is orthogonal to range(D_S), so
    ||r(lam)||^2 = ||y - D_S a||^2 + lam^2 ||D_S b||^2 and lam has a closed form.
    """
    a = torch.linalg.solve(G, rhs)
    b = torch.linalg.solve(G, signs)
    base = (y - D_S @ a).norm() ** 2
    slope = (D_S @ b).norm() ** 2
    if not bool(slope > 0) or not bool(sigma**2 >= base):
        return None
    lam = torch.sqrt((sigma**2 - base) / slope)
    return a - lam * b
