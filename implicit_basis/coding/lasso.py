"""The lasso: weighted and non-negative forms, and ``lam_max``."""

from __future__ import annotations

import logging

import cvxpy as cp
import torch

from .base import Problem, ScalarSpec, batched_matvec, batched_rmatvec
from .formulation import CvxpyFormulation
from .prox import prox_l1

__all__ = ["Lasso", "LassoFamilyProblem", "lam_max", "relative_duality_gap", "scaled_dual_value"]

logger = logging.getLogger(__name__)


class LassoFamilyProblem(Problem):
    """Base class of the lasso and the elastic net.

    It stores the scalar parameters of ``scalar_specs``, the optional
    per-atom ``weights`` and the ``nonneg`` constraint, and implements every
    oracle with the lasso-family functions of this module. Subclasses set
    ``kind`` and ``scalar_specs`` and implement ``prox`` and
    ``cvxpy_formulation``.
    """

    def __init__(self, scalars: tuple, weights, nonneg: bool) -> None:
        super().__init__()
        if not isinstance(nonneg, bool):
            raise TypeError(f"nonneg must be a bool; got {type(nonneg).__name__}.")
        for spec, value in zip(self.scalar_specs, scalars):
            self._store_scalar(spec, value)
        self._store_weights("weights", weights, "atoms")
        self.nonneg = nonneg

    def weight_names(self) -> tuple[str, ...]:
        return ("weights",)

    def resolve(self, B, k, dtype, device) -> dict:
        params = super().resolve(B, k, dtype, device)
        params["weights"] = self._resolve_weights("weights", B, k, "atoms", dtype, device)
        # The lasso is the elastic net without its ridge.
        params.setdefault("l2", None)
        params["nonneg"] = self.nonneg
        return params

    # Batched oracles -------------------------------------------------------

    def objective_batched(self, z, y, D, params) -> torch.Tensor:
        return lasso_family_objective(z, y, D, params)

    def duality_gap_batched(self, z, y, D, params) -> torch.Tensor:
        return lasso_family_gap(z, y, D, params)

    def residual_batched(self, z, y, D, params) -> torch.Tensor:
        return lasso_family_residual(z, y, D, params)

    def cache_key(self) -> tuple:
        return (self.kind, self.nonneg)

    def rescale(self, params: dict, d_scale, y_scale) -> dict:
        return lasso_family_rescale(params, d_scale, y_scale)

    def lam_max_batched(self, y, D, params) -> torch.Tensor:
        return lasso_family_lam_max(y, D, params)

    def implicit_vjp(self, v, z, y, D, params, needs, dense_limit, factor=None):
        return lasso_family_vjp(v, z, y, D, params, needs, dense_limit, factor)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self._value("weights") is not None:
            text += ", weights=..."
        if self.nonneg:
            text += ", nonneg=True"
        return text


class Lasso(LassoFamilyProblem):
    r"""The lasso, optionally weighted and non-negative.

    Solves, per sample,

    .. math::

        \min_z \ \tfrac12 \|D z - y\|_2^2 + \lambda \sum_j w_j |z_j|
        \qquad (\text{and } z \ge 0 \text{ if } \texttt{nonneg})

    scikit-learn: ``sklearn.linear_model.Lasso(alpha)`` scales the data term
    by ``1 / (2 n_samples)``, so it equals ``lam = n_samples * alpha`` here
    (``n_samples`` is the number of rows of ``D``); ``sparse_encode(alpha)``
    and ``SparseCoder`` with ``lasso_cd``/``lasso_lars`` equal ``lam = alpha``.

    Args:
        lam: penalty weight, ``>= 0`` and finite; a float or a tensor of
            shape () or (B,) (per sample). May require grad.
        weights: optional per-atom weights, shape (k,) or (B, k). ``0`` leaves
            an atom unpenalised; ``+inf`` forces it to zero (the atom is
            removed before the solve, and its code and gradients are exactly 0).
        nonneg: constrain the code to be non-negative.

    Edge cases: for ``lam >= lam_max(y, D, problem)`` the code is exactly
    zero on the penalised atoms, and so are its gradients. At ``lam = lam_max`` exactly, the derivative in ``lam``
    is one-sided, and the returned gradient is the right derivative, 0 (the
    atom at the threshold counts as inactive; the implicit backend flags the
    sample in ``info.degenerate``). With ``lam = 0`` and more atoms than the
    rank of ``D``, the least-squares solutions form an affine set; the
    implicit backend returns the minimum-norm one and flags it in
    ``info.degenerate``, while cvxpylayers returns the conic solver's point.

    Shape:
        y: (m,) or (B, m); D: (m, k) or (B, m, k); z: (k,) or (B, k).
    """

    kind = "lasso"
    scalar_specs = (ScalarSpec("lam"),)

    def __init__(self, lam, weights=None, nonneg: bool = False) -> None:
        super().__init__((lam,), weights, nonneg)

    def cvxpy_formulation(self, m: int, k: int) -> CvxpyFormulation:
        return lasso_family_formulation(m, k, self.nonneg, with_l2=False)

    def prox(self, v, step, params) -> torch.Tensor:
        """Return the proximal step ``prox_{step * penalty}(v)``; step is (B, 1)."""
        return prox_l1(v, step * atom_thresholds(params), self.nonneg)


# -----------------------------------------------------------------------------
# The lasso family (lasso, weighted, non-negative, elastic net) shares one
# set of oracles written on the per-atom thresholds tau_j = lam * w_j.


def atom_thresholds(params: dict) -> torch.Tensor:
    """Return tau = lam * w per sample and atom, (B, k); +inf marks forced zeros.

    With no weights the result is the (B, 1) column ``lam`` that broadcasts.
    """
    lam = params["lam"].unsqueeze(-1)
    weights = params.get("weights")
    if weights is None:
        return lam
    # 0 * inf would be NaN: a zero lam with an infinite weight still forces zero.
    # The product uses finite stand-ins for the infinite weights, because the
    # backward of lam * inf is inf * 0 = NaN in lam even where torch.where
    # discards the product.
    forced = torch.isinf(weights)
    finite = torch.where(forced, torch.zeros_like(weights), weights)
    return torch.where(forced, torch.full_like(weights, torch.inf), lam * finite)


def weighted_l1(z: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Return sum_j tau_j |z_j| per sample, with 0 * inf = 0.

    Infinite thresholds enter through finite stand-ins, so that the
    gradient in ``z`` at a forced-zero atom is 0 rather than inf * 0 = NaN.
    """
    finite = torch.isfinite(tau)
    terms = torch.where(finite, tau, torch.zeros_like(tau)) * z.abs()
    return torch.where(~finite & (z != 0), torch.full_like(terms, torch.inf), terms).sum(-1)


def lasso_family_objective(z, y, D, params) -> torch.Tensor:
    r = batched_matvec(D, z) - y
    value = 0.5 * (r * r).sum(-1) + weighted_l1(z, atom_thresholds(params))
    l2 = params.get("l2")
    if l2 is not None:
        value = value + 0.5 * l2 * (z * z).sum(-1)
    if params.get("nonneg"):
        infeasible = (z < 0).any(-1)
        value = torch.where(infeasible, torch.full_like(value, torch.inf), value)
    return value


def refit_unpenalised(r, D, tau, z=None, l2=None, subset=None):
    """Refit the unpenalised atoms so that the dual point is orthogonal to them.

    The dual of the lasso requires ``d_j^T theta = 0`` for atoms with
    ``tau_j = 0``, which a plain rescaling of the residual does not give away
    from the optimum. In the augmented form of the elastic net (``[D; sqrt(l2)
    I]``, ``[y; 0]``) the dual point is ``(r, -sqrt(l2) z)``, so the refit
    ``c = (D_F^T D_F + l2 I)^+ (D_F^T r - l2 z_F)`` on the free atoms F moves
    both: ``r - D_F c`` and ``z + c``. Returns ``(r, z)`` after the refit (``z``
    is None when it was). ``subset`` (B, k) bool, if given, restricts F to
    those atoms.
    """
    from ..support import gather_atoms, gather_columns, scatter_atoms, solve_symmetric, support_of

    free = (tau == 0).expand(r.shape[0], -1)
    if subset is not None:
        free = free & subset
    if not bool(free.any()):
        return r, z
    support = support_of(free)
    D_F = gather_columns(D, support)
    rhs = (D_F.transpose(1, 2) @ r.unsqueeze(-1)).squeeze(-1)
    G = D_F.transpose(1, 2) @ D_F
    if l2 is not None and z is not None:
        rhs = rhs - l2.unsqueeze(-1) * gather_atoms(z, support)
        G = G + l2.view(-1, 1, 1) * torch.eye(support.size, dtype=G.dtype, device=G.device)
    coefficients, _ = solve_symmetric(G, rhs, support.mask)
    r = r - (D_F @ coefficients.unsqueeze(-1)).squeeze(-1)
    if z is not None:
        z = z + scatter_atoms(coefficients, support)
    return r, z


def lasso_family_gap(z, y, D, params) -> torch.Tensor:
    r"""Return the relative duality gap per sample.

    The dual point is the residual ``r = y - D z``, with the unpenalised atoms'
    span projected out, scaled to be feasible. For the elastic net the dual is
    that of the lasso on ``[D; sqrt(l2) I]`` and ``[y; 0]``. The gap is divided
    by ``max(P(0), P(z))`` so that it is scale-invariant; 0 when both are 0,
    +inf when ``z`` is infeasible.
    """
    tau = atom_thresholds(params)
    l2 = params.get("l2")
    r = y - batched_matvec(D, z)
    if params.get("nonneg"):
        r, z_dual = _refit_unpenalised_nonneg(r, D, tau, z, l2)
    else:
        r, z_dual = refit_unpenalised(r, D, tau, z, l2)
    correlation = batched_rmatvec(D, r)
    if l2 is not None:
        correlation = correlation - l2.unsqueeze(-1) * z_dual
    if params.get("nonneg"):
        correlation = correlation.clamp(min=0)
    else:
        correlation = correlation.abs()
    # alpha = min(1, min_j tau_j / |d_j^T r|), skipping atoms with no correlation.
    # Unpenalised atoms were projected out above: they constrain nothing.
    ratios = torch.where(
        (correlation > 0) & (tau > 0),
        tau / correlation.clamp(min=torch.finfo(r.dtype).tiny),
        torch.full_like(correlation, torch.inf),
    )
    alpha = ratios.amin(-1).clamp(max=1.0)
    primal = lasso_family_objective(z, y, D, params)
    dual = scaled_dual_value(y, r, alpha)
    if l2 is not None:
        dual = dual - 0.5 * alpha**2 * l2 * (z_dual * z_dual).sum(-1)
    # An infeasible code (a forced-zero atom that is nonzero, a negative entry
    # of a non-negative code) has an infinite objective, so its gap is +inf.
    return relative_duality_gap(primal, dual, y)


def scaled_dual_value(y: torch.Tensor, r: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Compute the dual objective ``1/2 ||y||^2 - 1/2 ||y - alpha r||^2`` per sample.

    Shape:
        y, r: (B, m); alpha: (B,); result (B,).
    """
    shifted = y - alpha.unsqueeze(-1) * r
    return 0.5 * (y * y).sum(-1) - 0.5 * (shifted * shifted).sum(-1)


def relative_duality_gap(primal: torch.Tensor, dual: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Divide the duality gap ``max(P - D, 0)`` by ``max(P(0), P(z))`` per sample.

    ``P(0) = 1/2 ||y||^2``. The result is 0 when both are 0, and +inf where
    the primal value is +inf (an infeasible code) rather than inf / inf.

    Shape:
        primal, dual: (B,); y: (B, m); result (B,).
    """
    gap = (primal - dual).clamp(min=0)
    scale = torch.maximum(0.5 * (y * y).sum(-1), primal)
    relative = torch.where(scale > 0, gap / scale.clamp(min=torch.finfo(y.dtype).tiny), gap)
    return torch.where(torch.isinf(primal), torch.full_like(relative, torch.inf), relative)


def _refit_unpenalised_nonneg(r, D, tau, z, l2):
    """Return ``refit_unpenalised`` for a non-negative code, refitting only where needed.

    With ``z >= 0`` the dual constraint of an unpenalised atom is one-sided
    (``d_j^T theta - l2 z_j <= 0``), and at the optimum an unpenalised atom
    at zero may have a strictly negative correlation. Refitting that atom
    too would leave a large gap at an exact solution. So only the
    unpenalised atoms with ``z_j > 0`` are refitted. Where another
    unpenalised atom then has a positive correlation, the sample is refitted
    on all of them.
    """
    r_some, z_some = refit_unpenalised(r, D, tau, z, l2, subset=z > 0)
    correlation = batched_rmatvec(D, r_some)
    if l2 is not None:
        correlation = correlation - l2.unsqueeze(-1) * z_some
    left_out = (tau == 0).expand_as(z) & ~(z > 0)
    violated = (left_out & (correlation > 0)).any(-1, keepdim=True)
    if not bool(violated.any()):
        return r_some, z_some
    r_all, z_all = refit_unpenalised(r, D, tau, z, l2)
    return torch.where(violated, r_all, r_some), torch.where(violated, z_all, z_some)


def lasso_family_residual(z, y, D, params) -> torch.Tensor:
    r"""Return the KKT stationarity violation per sample, relative to ``||D^T y||_inf``.

    For atom j with gradient ``g_j = d_j^T (y - D z)`` (minus ``l2 z_j``): on the
    support ``|g_j - tau_j sign(z_j)|``, off it ``max(0, |g_j| - tau_j)`` (0 for
    a forced-zero atom); a forced-zero atom that is not zero, or a negative
    entry of a non-negative code, counts as +inf.
    """
    tau = atom_thresholds(params).expand_as(z)
    l2 = params.get("l2")
    g = batched_rmatvec(D, y - batched_matvec(D, z))
    if l2 is not None:
        g = g - l2.unsqueeze(-1) * z
    finite_tau = torch.where(torch.isinf(tau), torch.zeros_like(tau), tau)
    on_support = (g - finite_tau * torch.sign(z)).abs()
    if params.get("nonneg"):
        off_support = (g - finite_tau).clamp(min=0)
    else:
        off_support = (g.abs() - finite_tau).clamp(min=0)
    # A forced-zero atom (tau = inf) at zero satisfies its condition whatever g is.
    off_support = torch.where(torch.isinf(tau), torch.zeros_like(off_support), off_support)
    violation = torch.where(z != 0, on_support, off_support)
    infinite = torch.isinf(tau) & (z != 0)
    if params.get("nonneg"):
        infinite = infinite | (z < 0)
    violation = torch.where(infinite, torch.full_like(violation, torch.inf), violation)
    worst = violation.amax(-1) if violation.shape[-1] else violation.sum(-1)
    scale = batched_rmatvec(D, y).abs().amax(-1)
    return torch.where(scale > 0, worst / scale.clamp(min=torch.finfo(z.dtype).tiny), worst)


def lasso_family_formulation(m: int, k: int, nonneg: bool, with_l2: bool) -> CvxpyFormulation:
    """Build the DPP cvxpy problem of the lasso family.

    Parameters, in order: ``D`` (m, k), ``y`` (m,), ``tau`` (k,) the per-atom
    thresholds lam * w_j, and ``l2`` () for the elastic net. Forced-zero atoms
    enter with their column of ``D`` zeroed and tau_j = 1, which pins z_j = 0.
    """
    D = cp.Parameter((m, k), name="D")
    y = cp.Parameter(m, name="y")
    tau = cp.Parameter(k, nonneg=True, name="tau")
    z = cp.Variable(k, name="z")
    data = 0.5 * cp.sum_squares(D @ z - y)
    constraints = []
    if nonneg:
        penalty = tau @ z
        constraints.append(z >= 0)
    else:
        penalty = cp.norm1(cp.multiply(tau, z))
    parameters = [D, y, tau]
    objective = data + penalty
    if with_l2:
        l2 = cp.Parameter(nonneg=True, name="l2")
        objective = objective + 0.5 * l2 * cp.sum_squares(z)
        parameters.append(l2)
    problem = cp.Problem(cp.Minimize(objective), constraints)
    return CvxpyFormulation(problem, parameters, z, lasso_family_values)


def lasso_family_values(y, D, params) -> list[torch.Tensor]:
    """Return the cvxpy parameter values (D, y, tau[, l2]) for one batch."""
    tau = atom_thresholds(params).expand(y.shape[0], D.shape[-1])
    forced = torch.isinf(tau)
    if bool(forced.any()):
        keep = (~forced).to(D.dtype)
        D = (D if D.dim() == 3 else D.expand(y.shape[0], -1, -1)) * keep.unsqueeze(1)
        tau = torch.where(forced, torch.ones_like(tau), tau)
    values = [D, y, tau]
    if params.get("l2") is not None:
        values.append(params["l2"])
    return values


def lasso_family_rescale(params: dict, d_scale, y_scale) -> dict:
    """Return parameters for ``(D / d_scale, y / y_scale)``, whose code is ``z d_scale / y_scale``."""
    scaled = dict(params)
    scaled["lam"] = params["lam"] / (d_scale * y_scale)
    if params.get("l2") is not None:
        scaled["l2"] = params["l2"] / d_scale**2
    return scaled


def lasso_family_lam_max(y, D, params) -> torch.Tensor:
    """Return max_j |d_j^T r| / w_j per sample, r = y minus its fit on unpenalised atoms.

    The fit is the problem restricted to the unpenalised atoms: least squares
    with the elastic net's ridge, and with non-negative coefficients for a
    non-negative code.
    """
    weights = params.get("weights")
    B, k = y.shape[0], D.shape[-1]
    w = torch.ones(B, k, dtype=y.dtype, device=y.device) if weights is None else weights
    l2 = params.get("l2")
    z = None if l2 is None else torch.zeros(B, k, dtype=y.dtype, device=y.device)
    subset = None
    if params.get("nonneg") and bool((w == 0).any()):
        subset = _nonneg_fit_support(y, D, w, l2)
    r, _ = refit_unpenalised(y, D, w, z, l2, subset=subset)
    correlation = batched_rmatvec(D, r)
    correlation = correlation.clamp(min=0) if params.get("nonneg") else correlation.abs()
    penalised = (w > 0) & torch.isfinite(w)
    ratios = torch.where(
        penalised, correlation / torch.where(penalised, w, torch.ones_like(w)), torch.zeros_like(w)
    )
    return ratios.amax(-1) if k else ratios.sum(-1)


def _nonneg_fit_support(y, D, w, l2) -> torch.Tensor:
    """Return the unpenalised atoms with a positive coefficient in the non-negative fit, (B, k).

    The fit is solved without autograd by the library's own solver, with every
    penalised atom forced to zero. The caller refits on these atoms by least
    squares, which reproduces the fit and keeps it differentiable.
    """
    from types import SimpleNamespace

    from ..solvers import solve

    forced = torch.where(w == 0, torch.zeros_like(w), torch.full_like(w, torch.inf))
    params = {
        "lam": torch.ones(y.shape[0], dtype=y.dtype, device=y.device),
        "weights": forced,
        "l2": None if l2 is None else l2.detach(),
        "nonneg": True,
    }
    # The solver reads only the kind from the problem; the parameters above
    # define the fit.
    kind = SimpleNamespace(kind="lasso" if l2 is None else "elastic_net")
    z, _ = solve(kind, y.detach(), D.detach(), params)
    return z > 0


def lam_max(y: torch.Tensor, D: torch.Tensor, problem: Problem | None = None) -> torch.Tensor:
    r"""Return the smallest penalty weight for which the code is zero.

    For the plain lasso this is ``||D^T y||_inf``. Given a ``problem``, the
    kind's own value is returned: ``max_j |d_j^T y| / w_j`` over penalised
    atoms (one-sided for ``nonneg``), ``max_g ||D_g^T y||_2 / w_g`` for the
    group lasso, and the analogous dual-norm value for the sparse group lasso
    and the elastic net (which shares the lasso's). Unpenalised atoms are
    first fitted (by least squares, with the elastic net's ridge and, for a
    non-negative code, non-negative coefficients), and ``y`` is replaced by
    its residual.

    The result is differentiable in ``y`` and ``D``. At ``y = 0`` its
    gradient is 0 (torch's derivative of ``|x|`` at 0), so a relative weight
    ``lam = c * lam_max(y, D)`` gives a zero code with zero gradients there.

    Shape:
        y: (m,) or (B, m); D: (m, k) or (B, m, k); result () or (B,).
    """
    from ..inputs import prepare_inputs

    if problem is None:
        problem = Lasso(0.0)
    batch = prepare_inputs(y, D, problem)
    return batch.unbatch_scalar(problem.lam_max_batched(batch.y, batch.D, batch.params))


def lasso_family_vjp(v, z, y, D, params, needs: frozenset, dense_limit: int, factor=None) -> tuple[dict, torch.Tensor]:
    r"""Return the vector-Jacobian products of the lasso-family solution map.

    On the support S with signs s the solution satisfies
    ``(D_S^T D_S + l2 I) z_S = D_S^T y - tau_S s_S`` (``l2 = 0`` for the
    lasso; for basis pursuit ``tau = 0`` and the residual is zero). With
    ``u`` solving that system against ``v_S``:

    - dL/dy = D_S u
    - dL/dD_S = r u^T - (D_S u) z_S^T, with r = y - D z (0 off the support)
    - dL/dlam = -u^T (w_S s_S), dL/dw_S = -lam u * s_S, dL/dl2 = -u^T z_S

    Atoms off the support get zero: ties at the threshold count as inactive.
    A singular system (duplicate atoms, |S| > m) gets the minimum-norm ``u``.
    ``factor``, the forward's ``solvers.linalg.SupportFactor`` for these ``z``,
    ``y`` and ``D``, replaces forming and factoring the system on the samples
    where it matches (see ``solve_support_system``).

    Shape:
        v, z: (B, k); y: (B, m); D: (m, k) or (B, m, k).

    Returns:
        (grads, singular): grads maps names in ``needs`` to tensors shaped
        like the resolved parameters; singular is bool (B,).
    """
    from ..support import SupportDictionary, gather_atoms, scatter_atoms, support_of

    support = support_of(z != 0)
    columns = SupportDictionary(D, support)
    z_S = gather_atoms(z, support)
    v_S = gather_atoms(v, support)
    l2 = params.get("l2")
    l2_column = None if l2 is None else l2.view(-1, 1)
    u, singular = solve_support_system(columns, v_S, support.mask, l2_column, None, dense_limit, factor)

    grads = {}
    Du = columns.apply(u)
    if "y" in needs:
        grads["y"] = Du
    if "D" in needs:
        # z is zero off the support, so D z = D_S z_S.
        r = y - columns.apply(z_S)
        grads["D"] = columns.outer(r, u) - columns.outer(Du, z_S)
    signs = torch.sign(z_S)
    weights = params.get("weights")
    if "lam" in needs:
        w_S = signs if weights is None else gather_atoms(weights, support) * signs
        grads["lam"] = -(u * w_S).sum(-1)
    if "weights" in needs and weights is not None:
        grads["weights"] = scatter_atoms(-params["lam"].unsqueeze(-1) * u * signs, support)
    if "l2" in needs and l2 is not None:
        grads["l2"] = -(u * z_S).sum(-1)
    return grads, singular


def solve_support_system(columns, rhs, mask, ridge, curvature, dense_limit: int, factor=None):
    """Solve ``(D_S^T D_S + ridge I + curvature) u = rhs`` on padded supports.

    Dense Cholesky up to ``dense_limit`` support atoms, matrix-free conjugate
    gradients beyond (the system is then never formed).

    Args:
        columns: a ``SupportDictionary`` giving the products with ``D_S``.
        factor: optional ``solvers.linalg.SupportFactor`` of these systems
            (without ``curvature``). Up to ``dense_limit`` atoms, samples
            whose support equals the factor's are solved with it (see
            ``_solve_with_factor``) and the rest as without it.

    Shape:
        rhs: (B, s) or (B, s, r); mask: (B, s); ridge: (B, 1) or None;
        curvature: a (B, s, s) tensor or None.

    Returns:
        (u, singular) with u like rhs and singular bool (B,).
    """
    from ..support import conjugate_gradient, solve_symmetric

    s = mask.shape[-1]
    if factor is not None and curvature is None and rhs.dim() == 2 and s <= dense_limit:
        return _solve_with_factor(columns, rhs, mask, ridge, factor, dense_limit)
    if s <= dense_limit:
        G = columns.gram()
        if ridge is not None:
            G = G + ridge.unsqueeze(-1) * torch.eye(s, dtype=G.dtype, device=G.device)
        if curvature is not None:
            G = G + curvature
        return solve_symmetric(G, rhs, mask)

    real = mask.to(rhs.dtype)

    def matvec(p):
        value = columns.apply_transpose(columns.apply(p))
        if ridge is not None:
            value = value + ridge * p
        if curvature is not None:
            value = value + (curvature @ p.unsqueeze(-1)).squeeze(-1)
        return value * real + p * (1 - real)

    vectors = rhs.unsqueeze(-1) if rhs.dim() == 2 else rhs
    solutions, converged = [], torch.ones(rhs.shape[0], dtype=torch.bool, device=rhs.device)
    tol = 1e3 * torch.finfo(rhs.dtype).eps
    for j in range(vectors.shape[-1]):
        x, ok = conjugate_gradient(matvec, vectors[..., j] * real, tol=tol, max_iter=4 * s)
        solutions.append(x * real)
        converged = converged & ok
    u = torch.stack(solutions, -1)
    return (u.squeeze(-1) if rhs.dim() == 2 else u), ~converged


def _solve_with_factor(columns, rhs, mask, ridge, factor, dense_limit: int):
    """Solve ``(D_S^T D_S + ridge I) u = rhs`` with the forward's Cholesky factors where they match.

    A sample's factor is used only when it is known and factors exactly this
    support (the same atoms in the same order). Otherwise, e.g. after a
    float32 cast zeroed an entry or for a code the solver did not polish,
    the sample's system is formed and factored as without a factor. Where
    the pivots call for it (``refinement_due``, the rule of the solve without
    a factor), one step of iterative refinement follows, with the residual
    formed from ``D_S`` rather than a Gram matrix.

    Shape:
        rhs: (B, s); mask: (B, s); ridge: (B, 1) or None.
    """
    from ..solvers.linalg import cholesky_apply, refinement_due
    from ..support import Support, SupportDictionary

    support = columns.support
    B, s = rhs.shape
    width = min(s, factor.index.shape[-1])
    matched = factor.known & (factor.counts == support.counts)
    same_atoms = (factor.index[:, :width] == support.index[:, :width]) | ~support.mask[:, :width]
    matched = matched & same_atoms.all(-1)
    logger.debug("implicit backward: reusing the forward's support factor on %d of %d samples", int(matched.sum()), B)

    u = torch.zeros_like(rhs)
    singular = torch.zeros(B, dtype=torch.bool, device=rhs.device)
    if bool(matched.any()):
        solves = []
        for number, L in enumerate(factor.blocks):
            rows = (matched & (factor.block == number)).nonzero().squeeze(-1)
            if rows.numel() == 0:
                continue
            slots = factor.position[rows]
            if rows.numel() < L.shape[0]:
                # Other rows of the block belong to no sample of this backward.
                L = L[slots]
                slots = torch.arange(rows.numel(), device=rhs.device)
            solves.append((rows, slots, L, min(s, L.shape[-1])))

        def apply_factors(right):
            """Return ``(L L^T)^{-1} right`` per matched sample, (B, s), zero elsewhere."""
            out = torch.zeros_like(right)
            for rows, slots, L, cols in solves:
                block_rhs = right.new_zeros(L.shape[0], L.shape[-1], 1)
                block_rhs[slots, :cols, 0] = right[rows, :cols]
                out[rows, :cols] = cholesky_apply(L, block_rhs)[slots, :cols, 0]
            return out

        u = apply_factors(rhs)
        if any(refinement_due(L, slots) for _, slots, L, _ in solves):
            residual = rhs - columns.apply_transpose(columns.apply(u))
            if ridge is not None:
                residual = residual - ridge * u
            u = u + apply_factors(residual * (mask & matched.unsqueeze(-1)).to(rhs.dtype))
    if not bool(matched.all()):
        rows = (~matched).nonzero().squeeze(-1)
        sub_mask = mask[rows]
        size = int(sub_mask.sum(-1).max())
        sub_support = Support(index=support.index[rows, :size], mask=sub_mask[:, :size], k=support.k)
        D = columns.D if columns.shared else columns.D[rows]
        sub_ridge = None if ridge is None else ridge[rows]
        x, singular[rows] = solve_support_system(
            SupportDictionary(D, sub_support), rhs[rows, :size], sub_support.mask, sub_ridge, None, dense_limit
        )
        u[rows, :size] = x
    return u, singular
