r"""Penalties of the penalised kinds, as the solvers need them.

Every penalised kind minimises ``1/2 ||D z - y||^2 + h(z)`` with a separable
or group-separable penalty ``h``. A penalty here provides its proximal
operator and its value. For the duality gap it provides the dual scaling
that turns a residual into a dual-feasible point. For the polish it checks
the optimality (KKT) conditions of a candidate code and reads the support
off a proximal step. It stores per-sample thresholds
for one batch and can be restricted to a sub-batch with ``rows``.

- ``L1Penalty``: ``sum_j tau_j |z_j| + l2/2 ||z||^2`` (and ``z >= 0`` if
  ``nonneg``), the lasso, weighted lasso and elastic net.
- ``GroupPenalty``: ``tau1 ||z||_1 + sum_g tau_g ||z_g||_2``, the group lasso
  (``tau1 = 0``) and the sparse group lasso.
"""

from __future__ import annotations

import torch

from ..coding.group_family import group_thresholds
from ..coding.groups import group_norms, group_sums
from ..coding.lasso import atom_thresholds
from ..coding.prox import prox_elastic_net, prox_l1, prox_sparse_group
from .linalg import gather_support, pack_support, pad_diagonal, scatter_support, solve_psd
from .operator import DictionaryOperator

__all__ = ["GroupPenalty", "L1Penalty", "penalty_for", "project_free", "project_free_nonneg"]

# Newton steps for the dual scaling of the sparse group lasso. From the
# starting upper bound the iteration converges quadratically, so 12 steps
# reach float64 resolution.
_SCALING_NEWTON_STEPS = 12


def penalty_for(kind: str, params: dict) -> "L1Penalty | GroupPenalty":
    """Return the penalty of a penalised kind from its resolved parameters."""
    if kind in ("lasso", "elastic_net"):
        return L1Penalty.from_params(params)
    return GroupPenalty.from_params(params)


def _finite(tau: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isinf(tau), torch.zeros_like(tau), tau)


class L1Penalty:
    """``sum_j tau_j |z_j| + l2/2 ||z||^2``, optionally with ``z >= 0``.

    Attributes:
        tau: thresholds ``lam * w`` (B, k) or (B, 1); ``+inf`` forces a zero.
        l2: ridge weight (B, 1), or None.
        nonneg: whether codes are constrained to be non-negative.

    Shape:
        z, u, v: (B, k).
    """

    family = "lasso"

    def __init__(self, tau: torch.Tensor, l2: torch.Tensor | None, nonneg: bool) -> None:
        self.tau = tau
        self.l2 = l2
        self.nonneg = nonneg

    @classmethod
    def from_params(cls, params: dict) -> "L1Penalty":
        l2 = params.get("l2")
        return cls(atom_thresholds(params), None if l2 is None else l2.unsqueeze(-1), bool(params.get("nonneg")))

    def rows(self, index: torch.Tensor) -> "L1Penalty":
        l2 = None if self.l2 is None else self.l2.index_select(0, index)
        return L1Penalty(self.tau.index_select(0, index), l2, self.nonneg)

    def to(self, dtype: torch.dtype) -> "L1Penalty":
        l2 = None if self.l2 is None else self.l2.to(dtype)
        return L1Penalty(self.tau.to(dtype), l2, self.nonneg)

    def scaled(self, factor: torch.Tensor) -> "L1Penalty":
        """Return the penalty with every threshold multiplied by ``factor`` (B, 1)."""
        return L1Penalty(self.tau * factor, self.l2, self.nonneg)

    def rescaled(self, d_scale: torch.Tensor, y_scale: torch.Tensor) -> "L1Penalty":
        """Return the penalty of the problem on ``(D / d_scale, y / y_scale)``, scales (B, 1).

        Its solution is ``z * d_scale / y_scale``.
        """
        l2 = None if self.l2 is None else self.l2 / d_scale**2
        return L1Penalty(self.tau / (d_scale * y_scale), l2, self.nonneg)

    # Masks ------------------------------------------------------------------

    def forced(self, k: int) -> torch.Tensor:
        """Atoms forced to zero (``tau = +inf``), (B, k)."""
        return torch.isinf(self.tau).expand(-1, k)

    def free(self, k: int) -> torch.Tensor:
        """Unpenalised atoms (``tau = 0``), (B, k); they are always in the support system."""
        return (self.tau == 0).expand(-1, k)

    def has_free(self) -> bool:
        return bool((self.tau == 0).any())

    # Proximal step and value --------------------------------------------------

    def prox(self, u: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """Return the proximal point of ``step * h`` at ``u``; ``step`` is (B, 1)."""
        if self.l2 is None:
            return prox_l1(u, step * self.tau, self.nonneg)
        return prox_elastic_net(u, step * self.tau, step * self.l2, self.nonneg)

    def value(self, z: torch.Tensor) -> torch.Tensor:
        """Return ``h(z)`` per sample (0 * inf counts as 0), (B,)."""
        terms = torch.where(z == 0, torch.zeros_like(z), self.tau * z.abs())
        value = terms.sum(-1)
        if self.l2 is not None:
            value = value + 0.5 * self.l2.squeeze(-1) * (z * z).sum(-1)
        return value

    # Duality gap ----------------------------------------------------------------

    def dual_correlation(self, correlation: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Return ``D^T r - l2 w``, the correlation the dual constraints bound."""
        if self.l2 is None:
            return correlation
        return correlation - self.l2 * w

    def dual_scaling(self, v: torch.Tensor, limit: float = 1.0) -> torch.Tensor:
        """Return the largest ``alpha`` in [0, limit] with ``|alpha v_j| <= tau_j`` for all j, (B,).

        One-sided (``alpha v_j <= tau_j``) when ``nonneg``. Unpenalised atoms are
        skipped: the caller has projected their span out of the residual.
        """
        size = v.clamp(min=0) if self.nonneg else v.abs()
        tau = self.tau.expand_as(v)
        ratios = torch.where(
            (size > 0) & (tau > 0),
            tau / size.clamp(min=torch.finfo(v.dtype).tiny),
            torch.full_like(v, torch.inf),
        )
        return ratios.amin(-1).clamp(max=limit)

    def dual_ridge(self, alpha: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Return the ridge term ``alpha^2 l2/2 ||w||^2`` of the dual objective, (B,)."""
        if self.l2 is None:
            return torch.zeros_like(alpha)
        return 0.5 * alpha**2 * self.l2.squeeze(-1) * (w * w).sum(-1)

    # Optimality -------------------------------------------------------------------

    def gradient(self, correlation: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Return the negative gradient of the smooth part, ``D^T (y - D z) - l2 z``."""
        return self.dual_correlation(correlation, z)

    def kkt(self, z: torch.Tensor, g: torch.Tensor, scale: torch.Tensor, tie_rtol: float):
        """Check the optimality conditions of ``z`` given ``g = D^T (y - D z) - l2 z``.

        Returns ``(violation, tie)``, both (B,): the largest violation
        divided by ``scale`` (B, 1), and whether an atom sits at its
        threshold within ``tie_rtol``: an off-support atom with ``|g_j| >=
        tau_j (1 - tie_rtol)`` (for an unpenalised non-negative atom, ``g_j
        >= -tie_rtol * scale``), or a support entry below ``tie_rtol`` of the
        largest.
        """
        tau = self.tau.expand_as(z)
        forced = torch.isinf(tau)
        tau_f = _finite(tau)
        on = z != 0
        sign = torch.sign(z)
        on_violation = (g - tau_f * sign).abs()
        size = torch.relu(g) if self.nonneg else g.abs()
        off_violation = torch.relu(size - tau_f)
        violation = torch.where(on, on_violation, off_violation)
        violation = torch.where(forced & ~on, torch.zeros_like(violation), violation)
        bad = (forced & on) | ((z < 0) if self.nonneg else torch.zeros_like(on))
        violation = torch.where(bad, torch.full_like(violation, torch.inf), violation)
        worst = violation.amax(-1) / scale.squeeze(-1)

        penalised = tau > 0
        near = size >= tau_f * (1 - tie_rtol)
        if self.nonneg:
            near = torch.where(penalised, near, g >= -tie_rtol * scale)
            penalised = torch.ones_like(on)
        tie_off = (~on & ~forced & penalised & near).any(-1)
        largest = z.abs().amax(-1, keepdim=True)
        tie_on = (on & penalised & (z.abs() <= tie_rtol * largest)).any(-1)
        return worst, tie_off | tie_on

    def small_entries(self, z: torch.Tensor, tie_rtol: float) -> torch.Tensor:
        """Return the penalised nonzero entries below ``tie_rtol`` of the largest, (B, k)."""
        penalised = (self.tau > 0).expand_as(z) | self.nonneg
        largest = z.abs().amax(-1, keepdim=True)
        return (z != 0) & penalised & (z.abs() <= tie_rtol * largest)

    def identify(self, z: torch.Tensor, g: torch.Tensor, step: torch.Tensor):
        """Return ``(support, sign)`` read off the proximal step at ``z``, both (B, k).

        The support is where ``prox(z + step g)`` is nonzero, plus the
        unpenalised atoms (without ``nonneg``); forced atoms are never in it.
        """
        u = z + step * g
        tau = self.tau.expand_as(z)
        threshold = step * tau
        if self.nonneg:
            support = u > threshold
            sign = torch.ones_like(u)
        else:
            support = (u.abs() > threshold) | (tau == 0)
            sign = torch.sign(u)
        return support & ~torch.isinf(tau), sign


class GroupPenalty:
    """``tau1 ||z||_1 + sum_g tau_g ||z_g||_2`` over a partition of the atoms.

    Attributes:
        tau1: l1 threshold (B, 1); zero for the group lasso.
        tau_g: group thresholds (B, g); ``+inf`` forces a group to zero.
        index: group id of each atom (k,).
        n_groups: number of groups g.

    Shape:
        z, u, v: (B, k).
    """

    family = "group"
    nonneg = False
    l2 = None

    def __init__(self, tau1, tau_g, index, n_groups) -> None:
        self.tau1 = tau1
        self.tau_g = tau_g
        self.index = index
        self.n_groups = n_groups

    @classmethod
    def from_params(cls, params: dict) -> "GroupPenalty":
        tau1, tau_g = group_thresholds(params)
        return cls(tau1.unsqueeze(-1), tau_g, params["group_index"], params["n_groups"])

    def rows(self, index: torch.Tensor) -> "GroupPenalty":
        return GroupPenalty(
            self.tau1.index_select(0, index), self.tau_g.index_select(0, index), self.index, self.n_groups
        )

    def to(self, dtype: torch.dtype) -> "GroupPenalty":
        return GroupPenalty(self.tau1.to(dtype), self.tau_g.to(dtype), self.index, self.n_groups)

    def scaled(self, factor: torch.Tensor) -> "GroupPenalty":
        """Return the penalty with both thresholds multiplied by ``factor`` (B, 1)."""
        return GroupPenalty(self.tau1 * factor, self.tau_g * factor, self.index, self.n_groups)

    def rescaled(self, d_scale: torch.Tensor, y_scale: torch.Tensor) -> "GroupPenalty":
        """Return the penalty of the problem on ``(D / d_scale, y / y_scale)``, scales (B, 1)."""
        factor = d_scale * y_scale
        return GroupPenalty(self.tau1 / factor, self.tau_g / factor, self.index, self.n_groups)

    @property
    def sparse(self) -> bool:
        """Whether any sample has an l1 part."""
        return bool((self.tau1 > 0).any())

    def atom_tau_g(self) -> torch.Tensor:
        return self.tau_g[:, self.index]

    def forced(self, k: int) -> torch.Tensor:
        return torch.isinf(self.atom_tau_g())

    def free_groups(self) -> torch.Tensor:
        return (self.tau_g == 0) & (self.tau1 == 0)

    def free(self, k: int) -> torch.Tensor:
        return self.free_groups()[:, self.index]

    def has_free(self) -> bool:
        return bool(self.free_groups().any())

    def norms(self, z: torch.Tensor) -> torch.Tensor:
        return group_norms(z, self.index, self.n_groups)

    # Proximal step and value --------------------------------------------------

    def prox(self, u: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        return prox_sparse_group(u, step * self.tau1, step * self.tau_g, self.index, self.n_groups)

    def value(self, z: torch.Tensor) -> torch.Tensor:
        norms = self.norms(z)
        group_terms = torch.where(norms == 0, torch.zeros_like(norms), self.tau_g * norms).sum(-1)
        return self.tau1.squeeze(-1) * z.abs().sum(-1) + group_terms

    # Duality gap ----------------------------------------------------------------

    def dual_correlation(self, correlation: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return correlation

    def dual_ridge(self, alpha: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(alpha)

    def dual_scaling(self, v: torch.Tensor, limit: float = 1.0) -> torch.Tensor:
        """Return the largest ``alpha`` in [0, limit] with ``||soft(alpha v_g, tau1)|| <= tau_g``, (B,).

        Forced and unpenalised groups are skipped. For each group the left
        side is convex and non-decreasing in ``alpha``, so Newton's method
        started from an upper bound of the root decreases to it.
        """
        tiny = torch.finfo(v.dtype).tiny
        constrained = torch.isfinite(self.tau_g) & ~self.free_groups()
        norms = self.norms(v)
        if not self.sparse:
            ratios = torch.where(
                constrained & (norms > 0), self.tau_g / norms.clamp(min=tiny), torch.full_like(norms, torch.inf)
            )
            return ratios.amin(-1).clamp(max=limit)

        size = v.abs()
        tau1 = self.tau1
        tau_g = _finite(self.tau_g)
        counts = group_sums(torch.ones_like(v), self.index, self.n_groups)
        # ||soft(a v, t)|| >= a ||v|| - t sqrt(n), so this alpha is above the root.
        alpha = (tau_g + tau1 * counts.sqrt()) / norms.clamp(min=tiny)
        for _ in range(_SCALING_NEWTON_STEPS):
            excess = torch.relu(alpha[:, self.index] * size - tau1)
            value = group_norms(excess, self.index, self.n_groups)
            slope = group_sums(excess * size, self.index, self.n_groups) / value.clamp(min=tiny)
            update = torch.where(value > 0, (value - tau_g) / slope.clamp(min=tiny), torch.zeros_like(value))
            alpha = alpha - update
        # Groups never above tau_g (or with max|v| <= tau1 / alpha for all alpha <= 1) bind nothing.
        reachable = norms > 0
        ratios = torch.where(constrained & reachable, alpha, torch.full_like(alpha, torch.inf))
        return ratios.amin(-1).clamp(min=0.0, max=limit)

    # Optimality -------------------------------------------------------------------

    def gradient(self, correlation: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return correlation

    def kkt(self, z: torch.Tensor, g: torch.Tensor, scale: torch.Tensor, tie_rtol: float):
        """Check the optimality conditions of ``z`` given ``g = D^T (y - D z)``.

        In an active group, nonzero atoms satisfy ``g_j = tau1 s_j + tau_g
        z_j / ||z_g||`` and zero atoms ``|g_j| <= tau1``; an inactive group
        satisfies ``||soft(g_g, tau1)|| <= tau_g``. Returns ``(violation, tie)``
        as ``L1Penalty.kkt`` does. A tie is an inactive group, or a zero atom
        of an active group, at its threshold within ``tie_rtol``. An active
        group or atom below ``tie_rtol`` of the largest is a tie too.
        """
        tiny = torch.finfo(z.dtype).tiny
        index = self.index
        tau1 = self.tau1
        tau_g = self.tau_g
        forced_g = torch.isinf(tau_g)
        norms = self.norms(z)
        active = norms > 0
        atom_norm = norms[:, index]
        atom_tau_g = _finite(tau_g)[:, index]
        on = z != 0

        direction = z / atom_norm.clamp(min=tiny)
        on_violation = (g - tau1 * torch.sign(z) - atom_tau_g * direction).abs()
        off_violation = torch.relu(g.abs() - tau1)
        atom_violation = torch.where(on, on_violation, off_violation)
        atom_violation = torch.where(active[:, index], atom_violation, torch.zeros_like(atom_violation))

        shrunk = group_norms(torch.relu(g.abs() - tau1), index, self.n_groups)
        group_violation = torch.relu(shrunk - _finite(tau_g))
        group_violation = torch.where(active | forced_g, torch.zeros_like(group_violation), group_violation)
        group_violation = torch.where(
            forced_g & active, torch.full_like(group_violation, torch.inf), group_violation
        )
        worst = torch.maximum(atom_violation.amax(-1), group_violation.amax(-1)) / scale.squeeze(-1)

        free_g = self.free_groups()
        tie_group = (~active & ~forced_g & ~free_g & (shrunk >= _finite(tau_g) * (1 - tie_rtol))).any(-1)
        tie_atom = (active[:, index] & ~on & (tau1 > 0) & (g.abs() >= tau1 * (1 - tie_rtol))).any(-1)
        largest = norms.amax(-1, keepdim=True)
        tie_small = (active & ~free_g & (norms <= tie_rtol * largest)).any(-1)
        largest_atom = z.abs().amax(-1, keepdim=True)
        tie_small_atom = (on & (tau1 > 0) & (z.abs() <= tie_rtol * largest_atom)).any(-1)
        return worst, tie_group | tie_atom | tie_small | tie_small_atom

    def small_entries(self, z: torch.Tensor, tie_rtol: float) -> torch.Tensor:
        """Return the nonzero entries of penalised groups (or, with an l1 part, atoms) that are tiny, (B, k).

        Tiny means a group norm below ``tie_rtol`` of the largest, or an entry
        below ``tie_rtol`` of the largest where the l1 part is on.
        """
        norms = self.norms(z)
        penalised = ~self.free_groups()
        small_group = penalised & (norms > 0) & (norms <= tie_rtol * norms.amax(-1, keepdim=True))
        largest = z.abs().amax(-1, keepdim=True)
        small_atom = (self.tau1 > 0) & (z.abs() <= tie_rtol * largest)
        return (z != 0) & (small_group[:, self.index] | small_atom)

    def identify(self, z: torch.Tensor, g: torch.Tensor, step: torch.Tensor):
        """Return ``(support, sign)`` of the proximal step at ``z``, both (B, k).

        The support contains the nonzero atoms of ``prox(z + step g)`` and
        every atom of an unpenalised group, never a forced group.
        """
        u = z + step * g
        w = self.prox(u, step)
        support = (w != 0) | self.free(z.shape[-1])
        return support & ~self.forced(z.shape[-1]), torch.sign(u)


def project_free(r: torch.Tensor, w: torch.Tensor, op: DictionaryOperator, penalty, subset=None):
    """Return the residual and point with the unpenalised atoms refitted: ``(r - D_F c, w + c)``.

    ``c`` solves ``(D_F^T D_F + l2 I) c = D_F^T r - l2 w_F`` (minimum norm),
    so that the dual correlation ``D^T r' - l2 w'`` vanishes on the free
    atoms F, as the dual constraints of unpenalised atoms require. Without a
    ridge this is the orthogonal projection of ``r`` off the span of ``D_F``.
    ``subset`` (B, k) bool, if given, restricts F to those atoms.

    Shape:
        r: (B, m); w: (B, k).
    """
    k = op.k
    free = penalty.free(k).expand(r.shape[0], k)
    if subset is not None:
        free = free & subset
    if not bool(free.any()):
        return r, w
    index, valid = pack_support(free)
    atoms = op.columns(index.clamp(max=k - 1)) * valid.unsqueeze(1).to(r.dtype)
    A = atoms.transpose(1, 2) @ atoms
    rhs = (atoms.transpose(1, 2) @ r.unsqueeze(-1)).squeeze(-1)
    if penalty.l2 is not None:
        A.diagonal(dim1=-2, dim2=-1).add_(penalty.l2 * valid.to(r.dtype))
        rhs = rhs - penalty.l2 * gather_support(w, index, valid)
    c, _ = solve_psd(pad_diagonal(A, valid), rhs)
    r = r - (atoms @ c.unsqueeze(-1)).squeeze(-1)
    if penalty.l2 is not None:
        w = w + scatter_support(c, index, k)
    return r, w


def project_free_nonneg(r: torch.Tensor, w: torch.Tensor, op: DictionaryOperator, penalty):
    """Return ``project_free`` for a non-negative code, refitting only where needed.

    With ``z >= 0`` the dual constraint of an unpenalised atom is one-sided,
    ``d_j^T theta - l2 w_j <= 0``, and at the optimum an unpenalised atom at
    zero may have a strictly negative correlation. Refitting it as well
    would move the dual point away from the optimal one, leaving a large gap
    at an exact solution. So only the unpenalised atoms with ``w_j > 0`` are
    refitted. Samples where another unpenalised atom then has a positive
    correlation are refitted on every unpenalised atom, which is feasible.

    Shape:
        r: (B, m); w: (B, k).
    """
    k = op.k
    r_some, w_some = project_free(r, w, op, penalty, subset=w > 0)
    correlation = penalty.dual_correlation(op.rmatvec(r_some), w_some)
    left_out = penalty.free(k).expand(r.shape[0], k) & ~(w > 0)
    violated = (left_out & (correlation > 0)).any(-1)
    if not bool(violated.any()):
        return r_some, w_some
    r_all, w_all = project_free(r, w, op, penalty)
    r_some = torch.where(violated.unsqueeze(-1), r_all, r_some)
    w_some = torch.where(violated.unsqueeze(-1), w_all, w_some)
    return r_some, w_some
