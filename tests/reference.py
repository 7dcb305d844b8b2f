"""High-accuracy reference solutions of the sparse-coding problems (the test oracle).

Every test of ``implicit_basis`` checks its solvers against this module, so it
shares no code with the package: it uses numpy, scipy and cvxpy only, in
float64. One sample is solved per call, in three steps:

1. cvxpy with Clarabel at tight tolerances. Clarabel alone is not accurate
   enough for an oracle: its point differed from the polished one by up to
   1.5e-5 on random group lasso and basis pursuit denoising problems of
   64 x 256 to 128 x 512 (cvxpy 1.9.3).
2. A polish on the support identified from the Clarabel point (a relative
   magnitude threshold and the dual certificate): the optimality (KKT)
   equations restricted to the support are solved to machine precision. They
   are linear for the lasso and the elastic net, a Newton iteration for the
   group kinds, a least-squares system for basis pursuit and a closed-form
   scalar root for basis pursuit denoising.
3. A check of the polished point: signs consistent on the support, dual
   feasibility off the support, and the KKT residual below ``kkt_tol``. On
   failure the support is corrected (the most violating atom or group is
   added, sign-flipped ones are dropped) and the polish repeated. If that
   still fails, the Clarabel point is returned with ``polished=False``.

Problem kinds (atoms are the columns of ``D``, ``y ~ D z``):

- ``"lasso"``: ``1/2 ||D z - y||^2 + lam * sum_j w_j |z_j|``, optionally
  ``z >= 0``. ``w_j = 0`` leaves atom j unpenalised; ``w_j = inf`` forces
  ``z_j = 0``.
- ``"elastic_net"``: ``1/2 ||D z - y||^2 + lam ||z||_1 + l2/2 ||z||^2``.
- ``"group_lasso"``: ``1/2 ||D z - y||^2 + lam * sum_g w_g ||z_g||_2`` with
  default ``w_g = sqrt(|g|)``; ``w_g = 0`` unpenalised, ``inf`` forces
  ``z_g = 0``.
- ``"sparse_group_lasso"``: ``1/2 ||D z - y||^2 + lam * (a ||z||_1 +
  (1 - a) sum_g w_g ||z_g||_2)`` with ``a = l1_ratio``.
- ``"basis_pursuit"``: ``min ||z||_1`` subject to ``D z = y``.
- ``"basis_pursuit_denoising"``: ``min ||z||_1`` subject to
  ``||D z - y||_2 <= sigma``.

scikit-learn's ``Lasso(alpha)`` equals ``lam = n_samples * alpha`` here, and
``ElasticNet(alpha, l1_ratio)`` equals ``lam = n_samples * alpha * l1_ratio``,
``l2 = n_samples * alpha * (1 - l1_ratio)``.

Inputs are array-likes converted with ``np.asarray(..., dtype=float64)``:
pass torch tensors as ``t.detach().cpu().numpy()``.
"""

from __future__ import annotations

import logging
import numbers
import warnings
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import scipy.linalg

__all__ = [
    "KINDS",
    "RefBatch",
    "RefResult",
    "kkt_residual",
    "objective_value",
    "reference_batch",
    "reference_solve",
]

logger = logging.getLogger(__name__)

KINDS = (
    "lasso",
    "elastic_net",
    "group_lasso",
    "sparse_group_lasso",
    "basis_pursuit",
    "basis_pursuit_denoising",
)

# Parameters each kind accepts; (required, optional).
_PARAMETERS = {
    "lasso": (("lam",), ("weights", "nonneg")),
    "elastic_net": (("lam", "l2"), ()),
    "group_lasso": (("lam", "groups"), ("weights",)),
    "sparse_group_lasso": (("lam", "groups", "l1_ratio"), ("weights",)),
    "basis_pursuit": ((), ()),
    "basis_pursuit_denoising": (("sigma",), ()),
}

# Clarabel settings: far below the defaults (1e-8), which left errors of
# 3e-6 in the support values of a 40 x 30 lasso. When Clarabel cannot reach
# them it may stop with "AlmostSolved", and the polish supplies the accuracy.
_CLARABEL_SETTINGS = {
    "tol_gap_abs": 1e-12,
    "tol_gap_rel": 1e-12,
    "tol_feas": 1e-12,
    "tol_ktratio": 1e-10,
    "max_iter": 500,
}

# Support identification from the Clarabel point: a coordinate counts as
# nonzero above this fraction of max |z|, and as dual-tight when its
# subgradient reaches this fraction of its penalty.
_MAGNITUDE_THRESHOLD = 1e-6
_TIGHTNESS = 1.0 - 1e-4
_MAX_ROUNDS = 100
# An active group whose norm falls below this fraction of ||z|| during the
# Newton iteration leaves the support.
_COLLAPSED = 1e-10


@dataclass
class RefResult:
    """Reference solution of one sample.

    Attributes:
        z: the solution, shape (k,); exact zeros off the support.
        support: bool mask of the nonzero entries of ``z``, shape (k,).
        objective: objective value at ``z`` (``||z||_1`` for the two
            constrained kinds).
        polished: True when the polish reached ``kkt_tol``. False means ``z``
            is the Clarabel point with entries below 1e-6 max |z| set to zero
            (and negative ones under ``nonneg``), and ``message`` gives the
            reason.
        kkt_residual: relative KKT residual of ``z`` (``kkt_residual``
            defines it).
        clarabel_z: the Clarabel point before polishing, shape (k,).
        message: why the polish was rejected, or "" when it was accepted.
        mu: basis pursuit denoising only: the multiplier of
            ``||z||_1 + mu/2 (||D z - y||^2 - sigma^2)``, so that ``z`` also
            solves the lasso with ``lam = 1/mu``; 0 when ``||y|| <= sigma``.
        nu: basis pursuit only: a dual vector with ``D_S^T nu = sign(z_S)``
            and ``|D^T nu| <= 1``, shape (m,).
        rounds: number of support corrections the polish needed.
    """

    z: np.ndarray
    support: np.ndarray
    objective: float
    polished: bool
    kkt_residual: float
    clarabel_z: np.ndarray
    message: str = ""
    mu: float | None = None
    nu: np.ndarray | None = None
    rounds: int = 0


@dataclass
class RefBatch:
    """Reference solutions of a batch: the per-sample results, stacked.

    Shape:
        z, clarabel_z: (B, k); support: (B, k); objective, kkt_residual,
        polished: (B,).
    """

    results: list[RefResult] = field(default_factory=list)

    @property
    def z(self) -> np.ndarray:
        return np.stack([r.z for r in self.results])

    @property
    def support(self) -> np.ndarray:
        return np.stack([r.support for r in self.results])

    @property
    def objective(self) -> np.ndarray:
        return np.array([r.objective for r in self.results])

    @property
    def kkt_residual(self) -> np.ndarray:
        return np.array([r.kkt_residual for r in self.results])

    @property
    def polished(self) -> np.ndarray:
        return np.array([r.polished for r in self.results])

    @property
    def clarabel_z(self) -> np.ndarray:
        return np.stack([r.clarabel_z for r in self.results])


@dataclass
class _Problem:
    """A checked problem on the atoms that are not forced to zero.

    The penalised kinds are all written as
    ``1/2 ||D z - y||^2 + l2/2 ||z||^2 + sum_j c_j |z_j| + sum_g G_g ||z_g||``
    (with ``z >= 0`` when ``nonneg``); ``groups`` lists only the groups with
    ``G_g > 0``, as index arrays into the kept atoms.
    """

    kind: str
    D: np.ndarray
    y: np.ndarray
    keep: np.ndarray
    k: int
    c: np.ndarray
    groups: list[np.ndarray]
    G: np.ndarray
    l2: float = 0.0
    nonneg: bool = False
    sigma: float = 0.0

    @property
    def grouped(self) -> np.ndarray:
        mask = np.zeros(self.D.shape[1], dtype=bool)
        for idx in self.groups:
            mask[idx] = True
        return mask

    def embed(self, z_kept: np.ndarray) -> np.ndarray:
        z = np.zeros(self.k)
        z[self.keep] = z_kept
        return z


# ---------------------------------------------------------------------------
# Input checks


def _as_float_array(value, name: str, ndim: int) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be a real array-like; got {type(value).__name__} ({error}). "
            f"Pass a numpy array (torch tensors as {name}.detach().cpu().numpy())."
        ) from error
    if array.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimension(s); got shape {array.shape}. "
            f"Reshape {name} or use reference_batch for batches."
        )
    return array


def _check_finite(array: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(array)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(
            f"{name} contains non-finite values: {name}{list(bad)} = {array[bad]}. "
            f"Remove the NaN/inf entries of {name}."
        )


def _check_scalar(value, name: str, low: float, high: float = np.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.ndarray):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}.")
    array = np.asarray(value, dtype=np.float64)
    if array.size != 1:
        raise ValueError(f"{name} must be a scalar; got an array of shape {array.shape}.")
    value = float(array.reshape(()))
    if not (low <= value <= high) or not np.isfinite(value):
        upper = f"{high:g}]" if np.isfinite(high) else "inf)"
        raise ValueError(
            f"{name} must be a finite number in [{low:g}, {upper}; got {value!r}. "
            f"Pass a value in that range."
        )
    return value


def _parse_groups(groups, k: int) -> list[np.ndarray]:
    if isinstance(groups, np.ndarray | str) or not hasattr(groups, "__len__"):
        raise TypeError(
            f"groups must be a list of index lists or a list of group sizes; "
            f"got {type(groups).__name__}."
        )
    if all(isinstance(g, numbers.Integral) for g in groups):
        sizes = [int(g) for g in groups]
        if any(s < 0 for s in sizes) or sum(sizes) != k:
            raise ValueError(
                f"groups given as sizes must be nonnegative and sum to k = {k}; "
                f"got {sizes} (sum {sum(sizes)}). Fix the sizes or pass index lists."
            )
        bounds = np.cumsum([0, *sizes])
        return [np.arange(bounds[i], bounds[i + 1]) for i in range(len(sizes))]
    parsed = []
    for i, g in enumerate(groups):
        idx = np.asarray(g, dtype=np.int64).reshape(-1) if len(g) else np.zeros(0, np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= k):
            raise ValueError(
                f"groups[{i}] holds indices outside [0, {k}): {idx.tolist()}. "
                f"Groups index the columns of D."
            )
        parsed.append(idx)
    flat = np.concatenate(parsed) if parsed else np.zeros(0, np.int64)
    counts = np.bincount(flat, minlength=k)
    if np.any(counts != 1):
        repeated = np.flatnonzero(counts > 1).tolist()
        missing = np.flatnonzero(counts == 0).tolist()
        raise ValueError(
            f"groups must be a partition of the {k} atoms; repeated atoms: {repeated}, "
            f"missing atoms: {missing}. Put every atom in exactly one group."
        )
    return parsed


def _parse_weights(weights, n: int, what: str) -> np.ndarray:
    w = _as_float_array(weights, "weights", 1)
    if w.shape != (n,):
        raise ValueError(
            f"weights must have shape ({n},), one per {what}; got {w.shape}. "
            f"Pass one weight per {what}."
        )
    if np.any(np.isnan(w)) or np.any(w < 0):
        raise ValueError(
            f"weights must be >= 0 (inf allowed) and not NaN; got {w.tolist()}. "
            f"Use 0 for an unpenalised {what} and inf to force it to zero."
        )
    return w


def _parse(kind, y, D, **params) -> _Problem:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")
    required, optional = _PARAMETERS[kind]
    given = {name for name, value in params.items() if value is not None and value is not False}
    unused = sorted(given - set(required) - set(optional))
    if unused:
        name = unused[0]
        raise ValueError(
            f"{kind} does not take {name}; it takes {required + optional}. "
            f"Remove {name}={params[name]!r}."
        )
    for name in required:
        if params.get(name) is None:
            raise ValueError(f"{kind} requires {name}; got None. Pass {name}=...")

    y = _as_float_array(y, "y", 1)
    D = _as_float_array(D, "D", 2)
    if D.shape[0] != y.shape[0]:
        raise ValueError(
            f"D must have shape (m, k) with m = len(y) = {y.shape[0]}; got {D.shape}. "
            f"Atoms are the columns of D: pass D.T if atoms are rows."
        )
    _check_finite(y, "y")
    _check_finite(D, "D")
    k = D.shape[1]

    lam = _check_scalar(params["lam"], "lam", 0.0) if "lam" in required else 0.0
    c = np.zeros(k)
    forced = np.zeros(k, dtype=bool)
    groups: list[np.ndarray] = []
    group_penalty: list[float] = []
    l2, sigma = 0.0, 0.0

    if kind == "lasso":
        w = np.ones(k)
        if params["weights"] is not None:
            w = _parse_weights(params["weights"], k, "atom")
        forced = np.isinf(w)
        c = lam * np.where(forced, 0.0, w)
    elif kind == "elastic_net":
        c = np.full(k, lam)
        l2 = _check_scalar(params["l2"], "l2", 0.0)
    elif kind in ("group_lasso", "sparse_group_lasso"):
        parsed = _parse_groups(params["groups"], k)
        if params["weights"] is None:
            w = np.sqrt([idx.size for idx in parsed])
        else:
            w = _parse_weights(params["weights"], len(parsed), "group")
        a = 0.0
        if kind == "sparse_group_lasso":
            a = _check_scalar(params["l1_ratio"], "l1_ratio", 0.0, 1.0)
        c = np.full(k, lam * a)
        for idx, wg in zip(parsed, w):
            if np.isinf(wg):
                forced[idx] = True
            elif idx.size and lam * (1.0 - a) * wg > 0:
                groups.append(idx)
                group_penalty.append(lam * (1.0 - a) * wg)
    elif kind == "basis_pursuit_denoising":
        sigma = _check_scalar(params["sigma"], "sigma", 0.0)

    keep = np.flatnonzero(~forced)
    remap = np.full(k, -1)
    remap[keep] = np.arange(keep.size)
    return _Problem(
        kind=kind,
        D=D[:, keep],
        y=y,
        keep=keep,
        k=k,
        c=c[keep],
        groups=[remap[idx] for idx in groups],
        G=np.asarray(group_penalty, dtype=np.float64),
        l2=l2,
        nonneg=bool(params.get("nonneg")),
        sigma=sigma,
    )


# ---------------------------------------------------------------------------
# Objective and KKT residual


def _penalised_objective(P: _Problem, z: np.ndarray) -> float:
    r = P.D @ z - P.y
    value = 0.5 * r @ r + 0.5 * P.l2 * (z @ z) + P.c @ np.abs(z)
    for idx, G in zip(P.groups, P.G):
        value += G * np.linalg.norm(z[idx])
    return float(value)


def _gradient(P: _Problem, z: np.ndarray) -> np.ndarray:
    """Gradient of the smooth part ``1/2 ||D z - y||^2 + l2/2 ||z||^2``."""
    return P.D.T @ (P.D @ z - P.y) + P.l2 * z


def _scale(P: _Problem) -> float:
    """Size of the gradient at z = 0, the unit of the relative residuals."""
    correlation = P.D.T @ P.y
    scale = np.abs(correlation).max(initial=0.0)
    for idx in P.groups:
        scale = max(scale, np.linalg.norm(correlation[idx]))
    return scale if scale > 0 else 1.0


def _coordinate_violation(g, z, c, nonneg: bool) -> np.ndarray:
    """Distance of ``-g_j`` to the subdifferential of ``c_j |z_j|`` (+ ``z_j >= 0``)."""
    on = z != 0
    if nonneg:
        off_violation = np.maximum(-g - c, 0.0)
        on_violation = np.where(z > 0, np.abs(g + c), np.inf)
    else:
        off_violation = np.maximum(np.abs(g) - c, 0.0)
        on_violation = np.abs(g + c * np.sign(z))
    return np.where(on, on_violation, off_violation)


def _group_violation(g, z, c, G: float) -> float:
    """Distance of ``-g_g`` to the subdifferential of ``sum c_j |z_j| + G ||z_g||``."""
    norm = np.linalg.norm(z)
    if norm == 0:
        soft = np.sign(g) * np.maximum(np.abs(g) - c, 0.0)
        return max(np.linalg.norm(soft) - G, 0.0)
    return float(np.linalg.norm(_coordinate_violation(g + G * z / norm, z, c, False)))


def _violations(P: _Problem, z: np.ndarray, c: np.ndarray | None = None):
    """Per-coordinate violations of the ungrouped atoms and per-group violations."""
    c = P.c if c is None else c
    g = _gradient(P, z)
    grouped = P.grouped
    coordinate = np.zeros(z.size)
    free = ~grouped
    coordinate[free] = _coordinate_violation(g[free], z[free], c[free], P.nonneg)
    group = np.array([_group_violation(g[idx], z[idx], c[idx], G) for idx, G in zip(P.groups, P.G)])
    return coordinate, group, g


def _penalised_residual(P: _Problem, z: np.ndarray, c: np.ndarray | None = None) -> float:
    coordinate, group, _ = _violations(P, z, c)
    worst = max(coordinate.max(initial=0.0), group.max(initial=0.0))
    return float(worst / _scale(P))


def _bp_residual(P: _Problem, z: np.ndarray, nu: np.ndarray) -> float:
    """Largest of the relative primal residual, dual violations and duality gap."""
    y_norm = max(np.linalg.norm(P.y), np.finfo(float).tiny)
    primal = np.linalg.norm(P.D @ z - P.y) / y_norm
    correlation = P.D.T @ nu
    dual = _coordinate_violation(-correlation, z, np.ones(z.size), False).max(initial=0.0)
    l1 = np.abs(z).sum()
    gap = abs(l1 - P.y @ nu) / max(l1, np.finfo(float).tiny) if l1 > 0 else abs(P.y @ nu) / y_norm
    return float(max(primal, dual, gap))


def _bpdn_residual(P: _Problem, z: np.ndarray, mu: float) -> float:
    """Relative stationarity of the lasso with ``lam = 1/mu`` and constraint slack."""
    y_norm = np.linalg.norm(P.y)
    if y_norm <= P.sigma:
        return float(np.abs(z).max(initial=0.0) / max(y_norm, np.finfo(float).tiny))
    if not mu > 0:
        return np.inf
    lam = 1.0 / mu
    stationarity = _penalised_residual(P, z, np.full(z.size, lam))
    stationarity = stationarity * _scale(P) / max(lam, np.finfo(float).tiny)
    slack = abs(np.linalg.norm(P.D @ z - P.y) - P.sigma) / P.sigma
    return float(max(stationarity, slack))


def _reduce(P: _Problem, z) -> np.ndarray | None:
    z = _as_float_array(z, "z", 1)
    if z.shape != (P.k,):
        raise ValueError(f"z must have shape ({P.k},); got {z.shape}.")
    dropped = np.setdiff1d(np.arange(P.k), P.keep)
    if np.any(z[dropped] != 0):
        return None
    return z[P.keep]


def kkt_residual(
    kind, z, y, D, *, lam=None, weights=None, nonneg=False, l2=None, groups=None,
    l1_ratio=None, sigma=None, mu=None, nu=None,
) -> float:
    """Compute the relative KKT residual of a candidate solution ``z``.

    Penalised kinds: the largest distance of ``-grad`` (the gradient of the
    smooth part) to the subdifferential of the penalty, per atom (per group
    for the group kinds), divided by ``max_j |d_j^T y|`` (group norms
    included). Basis pursuit: the largest of ``||D z - y|| / ||y||``, the dual
    violations of ``nu`` and the relative duality gap ``|(||z||_1 - y^T nu)|
    / ||z||_1``; ``nu`` is required. Basis pursuit denoising: the stationarity
    of the lasso with ``lam = 1/mu`` relative to ``lam``, and
    ``| ||D z - y|| - sigma | / sigma``; ``mu`` is required. Returns inf when
    ``z`` is infeasible (a negative entry under ``nonneg``, a nonzero entry
    where the weight is inf).

    Shape:
        z: (k,); y: (m,); D: (m, k); nu: (m,).
    """
    P = _parse(kind, y, D, lam=lam, weights=weights, nonneg=nonneg, l2=l2, groups=groups,
               l1_ratio=l1_ratio, sigma=sigma)
    z_kept = _reduce(P, z)
    if z_kept is None:
        return np.inf
    if kind == "basis_pursuit":
        if nu is None:
            raise ValueError(
                "basis_pursuit needs the dual vector nu to measure the KKT residual; "
                "pass nu=result.nu."
            )
        return _bp_residual(P, z_kept, _as_float_array(nu, "nu", 1))
    if kind == "basis_pursuit_denoising":
        if mu is None:
            raise ValueError(
                "basis_pursuit_denoising needs the multiplier mu to measure the KKT residual; "
                "pass mu=result.mu."
            )
        return _bpdn_residual(P, z_kept, float(mu))
    return _penalised_residual(P, z_kept)


def objective_value(
    kind, z, y, D, *, lam=None, weights=None, nonneg=False, l2=None, groups=None,
    l1_ratio=None, sigma=None,
) -> float:
    """Evaluate the objective of ``kind`` at ``z`` (``||z||_1`` for the constrained kinds).

    Returns inf when ``z`` has a nonzero entry whose weight is inf, or a
    negative entry under ``nonneg``. Constraints of the constrained kinds are
    not checked.

    Shape:
        z: (k,); y: (m,); D: (m, k).
    """
    P = _parse(kind, y, D, lam=lam, weights=weights, nonneg=nonneg, l2=l2, groups=groups,
               l1_ratio=l1_ratio, sigma=sigma)
    z_kept = _reduce(P, z)
    if z_kept is None or (P.nonneg and np.any(z_kept < 0)):
        return np.inf
    if kind in ("basis_pursuit", "basis_pursuit_denoising"):
        return float(np.abs(z_kept).sum())
    return _penalised_objective(P, z_kept)


# ---------------------------------------------------------------------------
# Clarabel


def _solve_cvxpy(problem: cp.Problem, kind: str) -> None:
    # Clarabel may stop with "AlmostSolved" at these tolerances, which cvxpy
    # reports with a warning. The polish restores the accuracy, so it is muted.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        try:
            problem.solve(solver=cp.CLARABEL, **_CLARABEL_SETTINGS)
        except cp.error.SolverError as error:
            raise RuntimeError(
                f"Clarabel failed on the {kind} problem: {error}. "
                "Check the scale and conditioning of D and y."
            ) from error
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise RuntimeError(
            f"Clarabel returned status {problem.status!r} on the {kind} problem. "
            "Check the scale and conditioning of D and y."
        )
    if problem.status == cp.OPTIMAL_INACCURATE:
        logger.info("reference %s: Clarabel stopped at %s", kind, problem.status)


def _clarabel_penalised(P: _Problem) -> np.ndarray:
    k = P.D.shape[1]
    if k == 0:
        return np.zeros(0)
    # Scale y to unit norm so that Clarabel's absolute tolerances are relative.
    alpha = np.linalg.norm(P.y)
    if alpha == 0:
        return np.zeros(k)
    z = cp.Variable(k, nonneg=P.nonneg)
    terms = [0.5 * cp.sum_squares(P.D @ z - P.y / alpha)]
    if P.l2 > 0:
        terms.append(0.5 * P.l2 * cp.sum_squares(z))
    if np.any(P.c > 0):
        terms.append((P.c / alpha) @ cp.abs(z))
    for idx, G in zip(P.groups, P.G):
        terms.append((G / alpha) * cp.norm(z[idx], 2))
    problem = cp.Problem(cp.Minimize(sum(terms[1:], terms[0])))
    _solve_cvxpy(problem, P.kind)
    return alpha * np.asarray(z.value, dtype=np.float64)


def _range_basis(D: np.ndarray) -> np.ndarray:
    """Orthonormal basis of range(D) from the SVD, shape (m, rank)."""
    U, s, _ = np.linalg.svd(D, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return U[:, :0]
    rank = int(np.sum(s > max(D.shape) * np.finfo(float).eps * s[0]))
    return U[:, :rank]


def _clarabel_bp(P: _Problem, Q: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    # The constraint is written as Q^T D z = Q^T y, which has full row rank
    # and is equivalent once y is known to lie in range(D).
    z = cp.Variable(P.D.shape[1])
    constraint = (Q.T @ P.D) @ z == Q.T @ P.y / alpha
    problem = cp.Problem(cp.Minimize(cp.norm1(z)), [constraint])
    _solve_cvxpy(problem, P.kind)
    nu = Q @ np.asarray(constraint.dual_value, dtype=np.float64).reshape(-1)
    return alpha * np.asarray(z.value, dtype=np.float64), nu


def _clarabel_bpdn(P: _Problem, alpha: float) -> tuple[np.ndarray, float]:
    z = cp.Variable(P.D.shape[1])
    sigma = P.sigma / alpha
    constraint = cp.norm(P.D @ z - P.y / alpha, 2) <= sigma
    problem = cp.Problem(cp.Minimize(cp.norm1(z)), [constraint])
    _solve_cvxpy(problem, P.kind)
    # The multiplier eta of ||r|| <= sigma gives mu = eta / sigma in the
    # scaled problem; mu scales as 1/alpha.
    eta = float(np.asarray(constraint.dual_value).reshape(-1)[0])
    return alpha * np.asarray(z.value, dtype=np.float64), eta / sigma / alpha


def _clean(z0: np.ndarray, nonneg: bool = False) -> np.ndarray:
    """The Clarabel point with entries below the magnitude threshold set to zero.

    Returned when the polish is rejected: Clarabel leaves entries of 1e-12 to
    1e-11 where the solution is zero, and the sign of such an entry would
    dominate the KKT residual.
    """
    top = np.abs(z0).max(initial=0.0)
    small = np.abs(z0) <= _MAGNITUDE_THRESHOLD * top
    if nonneg:
        small |= z0 < 0
    return np.where(small, 0.0, z0)


# ---------------------------------------------------------------------------
# Polish of the penalised kinds


@dataclass
class _Support:
    """Active coordinates ``S`` (sorted) and their signs ``s`` (full length)."""

    S: np.ndarray
    s: np.ndarray

    def key(self) -> tuple:
        return tuple(self.S.tolist()), tuple(self.s[self.S].tolist())


def _unpenalised(P: _Problem, c: np.ndarray) -> np.ndarray:
    """Coordinates with no penalty at all, which are in every support (unless nonneg)."""
    return (c == 0) & ~P.grouped


def _identify(P: _Problem, z0: np.ndarray, c: np.ndarray) -> _Support:
    g = _gradient(P, z0)
    top = np.abs(z0).max(initial=0.0)
    large = np.abs(z0) > _MAGNITUDE_THRESHOLD * top
    tight = np.abs(g) >= _TIGHTNESS * c
    active = large & tight & ~P.grouped
    for idx, G in zip(P.groups, P.G):
        soft = np.maximum(np.abs(g[idx]) - c[idx], 0.0)
        large_group = np.linalg.norm(z0[idx]) > _MAGNITUDE_THRESHOLD * top
        if large_group and np.linalg.norm(soft) >= _TIGHTNESS * G:
            # Coordinates without their own l1 penalty join with the group.
            active[idx] = large[idx] | (c[idx] == 0)
    if not P.nonneg:
        active |= _unpenalised(P, c)
    s = np.where(z0 > 0, 1.0, np.where(z0 < 0, -1.0, -np.sign(g)))
    if P.nonneg:
        s = np.ones_like(s)
    return _Support(np.flatnonzero(active), s)


def _newton_on_support(P: _Problem, support: _Support, c: np.ndarray, x: np.ndarray):
    """Solve the stationarity equations of the smooth problem restricted to ``S``.

    On ``S`` the objective is ``f(x) = 1/2 ||D_S x - y||^2 + l2/2 ||x||^2 +
    (c s)_S^T x + sum_g G_g ||x_g||``, smooth while no active group is zero.
    Returns ``(x, message)``; the message is "" on success.
    """
    S = support.S
    D_S = P.D[:, S]
    n = S.size
    if n == 0:
        return np.zeros(0), ""
    b = c[S] * support.s[S]
    position = np.full(P.D.shape[1], -1)
    position[S] = np.arange(n)
    blocks = [(position[idx][position[idx] >= 0], G) for idx, G in zip(P.groups, P.G)]
    blocks = [(pos, G) for pos, G in blocks if pos.size]

    def gradient(v):
        grad = D_S.T @ (D_S @ v - P.y) + P.l2 * v + b
        for pos, G in blocks:
            grad[pos] += G * v[pos] / np.linalg.norm(v[pos])
        return grad

    if not blocks:
        return _linear_on_support(P, D_S, b, gradient)

    # With active groups the Hessian gains the curvature of the group norms,
    # so it can be nonsingular even with more atoms than rows.
    gram = D_S.T @ D_S + P.l2 * np.eye(n)
    v = x.copy()
    for pos, G in blocks:
        if np.linalg.norm(v[pos]) == 0:
            return v, "an active group starts at zero"
    merit = np.linalg.norm(gradient(v))
    for _ in range(100):
        H = gram.copy()
        for pos, G in blocks:
            norm = np.linalg.norm(v[pos])
            u = v[pos] / norm
            H[np.ix_(pos, pos)] += G / norm * (np.eye(pos.size) - np.outer(u, u))
        try:
            step = -np.linalg.solve(H, gradient(v))
        except np.linalg.LinAlgError:
            return v, "the Hessian on the support is singular"
        t = 1.0
        while t > 1e-12:
            trial = v + t * step
            if all(np.linalg.norm(trial[pos]) > 0 for pos, _ in blocks):
                trial_merit = np.linalg.norm(gradient(trial))
                if trial_merit < merit or (t == 1.0 and trial_merit <= merit):
                    break
            t *= 0.5
        else:
            break
        converged = np.linalg.norm(t * step) <= 4 * np.finfo(float).eps * np.linalg.norm(v)
        v, merit = trial, trial_merit
        if converged or merit == 0:
            break
    # A group that should leave the support shrinks towards zero without
    # converging, and its curvature blows up; the caller drops it.
    collapsing = any(np.linalg.norm(v[pos]) <= _COLLAPSED * np.linalg.norm(v) for pos, _ in blocks)
    if not collapsing and np.linalg.cond(H) > 1e12:
        return v, "the Hessian on the support is singular, so the solution is not unique"
    return v, ""


def _linear_on_support(P: _Problem, D_S: np.ndarray, b: np.ndarray, gradient):
    """Solve ``(D_S^T D_S + l2 I) x = D_S^T y - b``; returns ``(x, message)``.

    The solve goes through a QR factorisation of ``[D_S; sqrt(l2) I]``,
    whose accuracy depends on cond(D_S) rather than its square.
    """
    n = D_S.shape[1]
    A = np.vstack([D_S, np.sqrt(P.l2) * np.eye(n)]) if P.l2 > 0 else D_S
    if n > A.shape[0]:
        rows = A.shape[0]
        message = f"the support has {n} atoms but D has {rows} rows, so the solution is not unique"
        return np.zeros(n), message
    Q, R = np.linalg.qr(A)
    diag = np.abs(np.diag(R))
    if diag.min() <= 1e-12 * diag.max():
        return np.zeros(n), "D_S is rank deficient, so the solution is not unique"

    def solve_gram(rhs):
        return scipy.linalg.solve_triangular(R, scipy.linalg.solve_triangular(R, rhs, trans="T"))

    rhs = Q.T @ np.concatenate([P.y, np.zeros(A.shape[0] - P.y.size)])
    v = scipy.linalg.solve_triangular(R, rhs - scipy.linalg.solve_triangular(R, b, trans="T"))
    # One step of iterative refinement on the normal equations.
    return v - solve_gram(gradient(v)), ""


def _most_violating(P: _Problem, z: np.ndarray, c: np.ndarray, support: _Support):
    """Return the indices to add for the worst off-support violation and its size."""
    coordinate, group, g = _violations(P, z, c)
    in_S = np.zeros(z.size, dtype=bool)
    in_S[support.S] = True
    candidates = []
    free_off = ~P.grouped & ~in_S
    if np.any(free_off):
        j = np.flatnonzero(free_off)[np.argmax(coordinate[free_off])]
        candidates.append((coordinate[j], np.array([j])))
    for idx, G, violation in zip(P.groups, P.G, group):
        off = idx[~in_S[idx]]
        if off.size == 0 or violation == 0:
            continue
        if np.any(in_S[idx]):
            # An active group: a zero coordinate whose |g_j| exceeds c_j.
            excess = np.abs(g[off]) - c[off]
            candidates.append((excess.max(), off[[np.argmax(excess)]]))
        else:
            candidates.append((violation, off[(np.abs(g[off]) > c[off])]))
    if not candidates:
        return 0.0, np.zeros(0, dtype=np.int64), g
    violation, add = max(candidates, key=lambda item: item[0])
    return float(violation), add, g


def _polish_penalised(P: _Problem, z0: np.ndarray, kkt_tol: float, c: np.ndarray | None = None):
    """Polish ``z0``; returns ``(z, residual, message, rounds)``, message "" on success.

    NOTE: the corrections are greedy (add the worst violator, drop sign flips),
    so they repair small support errors near the Clarabel point. From a far
    start they can grow the support past m atoms and reject the polish.
    """
    c = P.c if c is None else c
    k = P.D.shape[1]
    support = _identify(P, z0, c)
    z = z0.copy()
    seen = set()
    for rounds in range(_MAX_ROUNDS):
        if support.key() in seen:
            return z0, None, "the support corrections cycled", rounds
        seen.add(support.key())
        x, message = _newton_on_support(P, support, c, z[support.S])
        if message:
            return z0, None, message, rounds
        z = np.zeros(k)
        z[support.S] = x

        signed = (c[support.S] > 0) | P.nonneg
        flipped = support.S[signed & (x * support.s[support.S] <= 0)]
        for idx in P.groups:
            if np.linalg.norm(z[idx]) <= _COLLAPSED * np.linalg.norm(z):
                flipped = np.union1d(flipped, np.intersect1d(idx, support.S))
        if flipped.size:
            support = _Support(np.setdiff1d(support.S, flipped), support.s)
            continue

        residual = _penalised_residual(P, z, c)
        if residual <= kkt_tol:
            return z, residual, "", rounds
        violation, add, g = _most_violating(P, z, c, support)
        if violation / _scale(P) <= kkt_tol or add.size == 0:
            return z0, None, f"the KKT residual on the support stayed at {residual:.3g}", rounds
        s = support.s.copy()
        s[add] = -np.sign(g[add]) if not P.nonneg else 1.0
        # A group entering the support starts along its descent direction.
        z[add] = s[add] * np.maximum(np.abs(g[add]) - c[add], np.finfo(float).eps) * 1e-3
        support = _Support(np.union1d(support.S, add), s)
    return z0, None, f"no consistent support after {_MAX_ROUNDS} corrections", _MAX_ROUNDS


# ---------------------------------------------------------------------------
# Polish of basis pursuit and basis pursuit denoising


def _polish_bp(P: _Problem, z0: np.ndarray, nu0: np.ndarray, kkt_tol: float):
    """Solve ``D_S z_S = y`` on the support and correct the dual to ``D_S^T nu = s``."""
    top = np.abs(z0).max(initial=0.0)
    last = "the Clarabel point has no support"
    tried = set()
    for threshold in (_MAGNITUDE_THRESHOLD, 1e-8, 1e-4, 1e-3):
        S = np.flatnonzero(np.abs(z0) > threshold * top)
        if tuple(S) in tried:
            continue
        tried.add(tuple(S))
        D_S = P.D[:, S]
        if S.size and np.linalg.matrix_rank(D_S) < S.size:
            last = "D_S is rank deficient, so the solution is not unique"
            continue
        x = np.linalg.lstsq(D_S, P.y, rcond=None)[0]
        if np.any(np.sign(x) != np.sign(z0[S])):
            last = "a sign flipped when solving D_S z_S = y"
            continue
        z = np.zeros(z0.size)
        z[S] = x
        s = np.sign(x)
        # The dual closest to Clarabel's with D_S^T nu = s exactly.
        nu = nu0 + np.linalg.lstsq(D_S.T, s - D_S.T @ nu0, rcond=None)[0] if S.size else nu0
        residual = _bp_residual(P, z, nu)
        if residual <= kkt_tol:
            return z, nu, residual, ""
        last = f"the KKT residual on the support stayed at {residual:.3g}"
    return z0, nu0, None, last


def _bpdn_on_support(P: _Problem, support: _Support):
    """Return ``(x, lam)`` on ``S`` with ``||D_S x - y|| = sigma``, or ``(None, None)``.

    With ``D_S = Q R``, ``x(lam) = R^{-1}(Q^T y - lam R^{-T} s)`` and the
    residual splits into orthogonal parts, ``||D_S x - y||^2 = ||a||^2 +
    lam^2 ||R^{-T} s||^2`` with ``a = y - Q Q^T y``, so the root is explicit.
    """
    D_S = P.D[:, support.S]
    if support.S.size == 0 or support.S.size > D_S.shape[0]:
        return None, None
    Q, R = np.linalg.qr(D_S)
    diag = np.abs(np.diag(R))
    if diag.min() <= 1e-12 * diag.max():
        return None, None
    qy = Q.T @ P.y
    outside = P.y - Q @ qy
    h = scipy.linalg.solve_triangular(R, support.s[support.S], trans="T")
    slack = P.sigma**2 - outside @ outside
    if slack <= 0:
        return None, None
    lam = np.sqrt(slack) / np.linalg.norm(h)
    return scipy.linalg.solve_triangular(R, qy - lam * h), lam


def _polish_bpdn(P: _Problem, z0: np.ndarray, mu0: float, kkt_tol: float):
    k = P.D.shape[1]
    c = np.full(k, 1.0 / mu0 if mu0 > 0 else np.abs(_gradient(P, z0)).max())
    support = _identify(P, z0, c)
    seen = set()
    for rounds in range(_MAX_ROUNDS):
        if support.key() in seen:
            return z0, None, None, "the support corrections cycled", rounds
        seen.add(support.key())
        x, lam = _bpdn_on_support(P, support)
        if x is None:
            return z0, None, None, "the support cannot reach ||D z - y|| = sigma", rounds
        z = np.zeros(k)
        z[support.S] = x
        flipped = support.S[x * support.s[support.S] <= 0]
        if flipped.size:
            support = _Support(np.setdiff1d(support.S, flipped), support.s)
            continue
        c = np.full(k, lam)
        residual = _bpdn_residual(P, z, 1.0 / lam)
        if residual <= kkt_tol:
            return z, 1.0 / lam, residual, "", rounds
        violation, add, g = _most_violating(P, z, c, support)
        if violation / lam <= kkt_tol or add.size == 0:
            message = f"the KKT residual on the support stayed at {residual:.3g}"
            return z0, None, None, message, rounds
        s = support.s.copy()
        s[add] = -np.sign(g[add])
        support = _Support(np.union1d(support.S, add), s)
    return z0, None, None, f"no consistent support after {_MAX_ROUNDS} corrections", _MAX_ROUNDS


# ---------------------------------------------------------------------------
# Entry points


def _finish(P: _Problem, z_kept, clarabel_kept, polished, residual, message, rounds, **extra):
    z = P.embed(z_kept)
    if message:
        logger.warning("reference %s: polish rejected (%s), returning the Clarabel point",
                       P.kind, message)
    if P.kind in ("basis_pursuit", "basis_pursuit_denoising"):
        objective = float(np.abs(z).sum())
    else:
        objective = _penalised_objective(P, z_kept)
    return RefResult(
        z=z,
        support=z != 0,
        objective=objective,
        polished=polished,
        kkt_residual=float(residual),
        clarabel_z=P.embed(clarabel_kept),
        message=message,
        rounds=rounds,
        **extra,
    )


def _solve_bp(P: _Problem, kkt_tol: float) -> RefResult:
    Q = _range_basis(P.D)
    y_norm = np.linalg.norm(P.y)
    distance = np.linalg.norm(P.y - Q @ (Q.T @ P.y))
    if distance > 1e-10 * max(y_norm, np.finfo(float).tiny):
        raise ValueError(
            f"basis_pursuit is infeasible: y is not in range(D), its distance to range(D) is "
            f"{distance:.6g} (||y|| = {y_norm:.6g}). Use basis_pursuit_denoising with "
            f"sigma >= {distance:.6g}, or a dictionary D whose columns span y."
        )
    k = P.D.shape[1]
    if y_norm == 0:
        return _finish(P, np.zeros(k), np.zeros(k), True, 0.0, "", 0, nu=np.zeros(P.y.size))
    z0, nu0 = _clarabel_bp(P, Q, y_norm)
    # Clarabel's equality multiplier may carry either sign convention.
    if S0 := np.flatnonzero(np.abs(z0) > _MAGNITUDE_THRESHOLD * np.abs(z0).max()).tolist():
        if np.sign(P.D[:, S0].T @ nu0) @ np.sign(z0[S0]) < 0:
            nu0 = -nu0
    z, nu, residual, message = _polish_bp(P, z0, nu0, kkt_tol)
    if message:
        z = _clean(z0)
        residual = _bp_residual(P, z, nu0)
    return _finish(P, z, z0, not message, residual, message, 0, nu=nu)


def _solve_bpdn(P: _Problem, kkt_tol: float) -> RefResult:
    k = P.D.shape[1]
    y_norm = np.linalg.norm(P.y)
    if y_norm <= P.sigma:
        return _finish(P, np.zeros(k), np.zeros(k), True, 0.0, "", 0, mu=0.0)
    Q = _range_basis(P.D)
    distance = np.linalg.norm(P.y - Q @ (Q.T @ P.y))
    if distance >= P.sigma:
        raise ValueError(
            f"basis_pursuit_denoising is infeasible or has an empty interior: the distance of y "
            f"to range(D) is {distance:.6g} >= sigma = {P.sigma:.6g}. Increase sigma above "
            f"{distance:.6g}."
        )
    z0, mu0 = _clarabel_bpdn(P, y_norm)
    z, mu, residual, message, rounds = _polish_bpdn(P, z0, mu0, kkt_tol)
    if message:
        mu = mu0
        z = _clean(z0)
        residual = _bpdn_residual(P, z, mu0)
    return _finish(P, z, z0, not message, residual, message, rounds, mu=mu)


def reference_solve(
    kind, y, D, *, lam=None, weights=None, nonneg=False, l2=None, groups=None,
    l1_ratio=None, sigma=None, kkt_tol=1e-10,
) -> RefResult:
    """Solve one sparse-coding problem to machine precision (Clarabel, then a KKT polish).

    Args:
        kind: one of ``KINDS`` (the module docstring gives each objective).
        y: the signal.
        D: the dictionary, atoms as columns.
        lam: penalty weight (lasso, elastic net, group kinds), >= 0.
        weights: per-atom weights (lasso) or per-group weights (group kinds),
            >= 0; 0 leaves the atom or group unpenalised and inf forces it to
            zero. Default 1 per atom, ``sqrt(|g|)`` per group.
        nonneg: lasso only, constrain ``z >= 0``.
        l2: elastic net ridge weight, >= 0.
        groups: a partition of the atoms, as a list of index lists (empty
            groups allowed) or a list of contiguous group sizes.
        l1_ratio: sparse group lasso mixing ``a`` in [0, 1].
        sigma: basis pursuit denoising noise level, >= 0.
        kkt_tol: the relative KKT residual (``kkt_residual``) the polish must
            reach to be accepted.

    Returns:
        A ``RefResult``; check ``polished`` before relying on machine precision.

    Raises:
        ValueError: invalid input, basis pursuit with ``y`` outside range(D)
            (the message gives the distance), or basis pursuit denoising with
            the distance of ``y`` to range(D) at least ``sigma``.
        RuntimeError: Clarabel failed.

    Shape:
        y: (m,); D: (m, k); weights: (k,) or (number of groups,); result z: (k,).
    """
    P = _parse(kind, y, D, lam=lam, weights=weights, nonneg=nonneg, l2=l2, groups=groups,
               l1_ratio=l1_ratio, sigma=sigma)
    if kind == "basis_pursuit":
        return _solve_bp(P, kkt_tol)
    if kind == "basis_pursuit_denoising":
        return _solve_bpdn(P, kkt_tol)
    z0 = _clarabel_penalised(P)
    z, residual, message, rounds = _polish_penalised(P, z0, kkt_tol)
    if message:
        z = _clean(z0, P.nonneg)
        residual = _penalised_residual(P, z)
    return _finish(P, z, z0, not message, residual, message, rounds)


def _sample_value(value, b: int, batch: int, name: str, per_sample_ndim: int):
    """Pick sample ``b`` of a parameter that is shared or given per sample."""
    if value is None or per_sample_ndim < 0:
        return value
    array = np.asarray(value)
    if array.ndim == per_sample_ndim + 1:
        if array.shape[0] != batch:
            raise ValueError(
                f"{name} given per sample must have {batch} rows (one per row of Y); "
                f"got shape {array.shape}."
            )
        return array[b]
    return value


def reference_batch(kind, Y, D, **params) -> RefBatch:
    """Solve each row of ``Y`` with ``reference_solve``.

    ``D`` is shared (m, k) or per sample (B, m, k). The scalars ``lam``,
    ``l2``, ``l1_ratio`` and ``sigma`` may be shared or per sample (B,), and
    ``weights`` shared (k,) / (number of groups,) or per sample (B, ...).
    Other keyword arguments go to ``reference_solve`` unchanged.

    Shape:
        Y: (B, m); D: (m, k) or (B, m, k); result z: (B, k).
    """
    Y = _as_float_array(Y, "Y", 2)
    D = np.asarray(D, dtype=np.float64)
    batch = Y.shape[0]
    if D.ndim not in (2, 3) or (D.ndim == 3 and D.shape[0] != batch):
        raise ValueError(
            f"D must have shape (m, k) or ({batch}, m, k) for Y of shape {Y.shape}; "
            f"got {D.shape}. Pass one shared dictionary or one per row of Y."
        )
    ndims = {"lam": 0, "l2": 0, "l1_ratio": 0, "sigma": 0, "weights": 1}
    results = []
    for b in range(batch):
        sample = {
            name: _sample_value(value, b, batch, name, ndims.get(name, -1))
            for name, value in params.items()
        }
        results.append(reference_solve(kind, Y[b], D[b] if D.ndim == 3 else D, **sample))
    return RefBatch(results)
