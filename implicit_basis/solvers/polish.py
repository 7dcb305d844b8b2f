r"""Polishing a penalised code on its support: solve the optimality conditions exactly.

From an approximate code ``z`` the support and signs are read off one
proximal step, the optimality conditions restricted to that support are
solved to machine precision, and the result is verified on every atom. A
failed verification starts another round from the new point, which makes
the rounds a primal-dual active set method, which is a semismooth Newton
method on ``z = prox(z + t D^T (y - D z))`` (Hintermueller, Ito and Kunisch,
"The primal-dual active set strategy as a semismooth Newton method", SIAM J.
Optim. 13(3), 2002). It converges in a few rounds from a point close enough
to the solution but not from everywhere, so the caller falls back to
proximal gradient steps when the rounds run out.

- Lasso family: ``(D_S^T D_S + l2 I) z_S = D_S^T y - tau_S s_S``, one
  Cholesky factorisation per round.
- Group family: damped Newton on the smooth restriction of the objective to
  the active atoms (see ``group_newton``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .group_newton import solve_group_support
from .linalg import gather_support, pack_support, scatter_support, solve_psd
from .operator import DictionaryOperator

__all__ = ["PolishResult", "polish"]

# Support systems are solved in at most _BUCKETS buckets of at least
# _BUCKET_SIZE samples, sorted by support size. Padding each bucket to its own
# largest support cut the factorisation work by about a third on the
# benchmark problems. Below _BUCKET_SUPPORT atoms the O(S^3) work is small
# and one call per bucket costs more than the padding it saves.
_BUCKETS = 4
_BUCKET_SIZE = 32
_BUCKET_SUPPORT = 64


@dataclass
class PolishResult:
    """Outcome of polishing a batch.

    Attributes:
        z: (B, k) the verified code where ``accepted``, else the candidate of
            lowest objective among the rounds (or the input code).
        accepted: (B,) the optimality conditions hold to ``kkt_rtol``.
        degenerate: (B,) a tie at a threshold or a singular support system.
        rounds: (B,) int64 rounds spent.
        objective: (B,) objective value of ``z``.
        improved: (B,) ``z`` has a lower objective than the input code.
        factors: with ``keep_factors``, pieces ``(rows, index, valid, L)``
            for accepted lasso-family samples whose code is nonzero exactly
            on the support that ``L`` factors (see ``_reusable_factors``).
    """

    z: torch.Tensor
    accepted: torch.Tensor
    degenerate: torch.Tensor
    rounds: torch.Tensor
    objective: torch.Tensor
    improved: torch.Tensor
    factors: list = field(default_factory=list)


def objective(penalty, y: torch.Tensor, Dz: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Return ``1/2 ||D z - y||^2 + h(z)`` per sample from ``D z``, (B,)."""
    r = Dz - y
    return 0.5 * (r * r).sum(-1) + penalty.value(z)


def polish(
    penalty,
    y: torch.Tensor,
    op: DictionaryOperator,
    z: torch.Tensor,
    c: torch.Tensor,
    scale: torch.Tensor,
    step: torch.Tensor,
    *,
    rounds: int,
    kkt_rtol: float,
    tie_rtol: float,
    cap: int,
    keep_factors: bool = False,
) -> PolishResult:
    """Polish the codes ``z`` on their supports; every input is in the polish dtype.

    Args:
        penalty: an ``L1Penalty`` or ``GroupPenalty`` of the batch.
        y: signals (B, m).
        op: the dictionary.
        z: starting codes (B, k).
        c: ``D^T y`` (B, k).
        scale: (B, 1) the scale of the optimality conditions, ``||D^T y||_inf``.
        step: (B, 1) the proximal step used to read the support.
        rounds: support corrections before giving up.
        kkt_rtol: accepted violation of the optimality conditions, relative
            to ``scale``.
        tie_rtol: relative distance to a threshold that counts as a tie.
        cap: largest support tried, unless the current code has more than
            half as many nonzeros; a larger one fails the round.
        keep_factors: return the Cholesky factors of the accepted lasso-family
            codes' support systems in ``PolishResult.factors``.
    """
    B, k = z.shape
    device = z.device
    out_z = z.clone()
    accepted = torch.zeros(B, dtype=torch.bool, device=device)
    degenerate = torch.zeros(B, dtype=torch.bool, device=device)
    spent = torch.zeros(B, dtype=torch.int64, device=device)
    Dz = op.matvec(z)
    best = objective(penalty, y, Dz, z)
    start = best.clone()
    g = penalty.gradient(op.rmatvec(y - Dz), z)

    rows = torch.arange(B, device=device)
    current = z
    factors = []
    sub = (penalty, y, op, c, scale, step)
    for _ in range(rounds):
        if rows.numel() == 0:
            break
        s_penalty, s_y, s_op, s_c, s_scale, s_step = sub
        spent[rows] += 1
        support, sign = s_penalty.identify(current, g, s_step)
        # A zero atom has a zero code in the minimum-norm solution: leave it out.
        support = support & s_op.nonzero_atoms()
        # Supports above the cap come from overshooting far from the solution,
        # unless the iterate itself is that large (duplicate atoms, lam = 0).
        fits = support.sum(-1) <= torch.clamp((current != 0).sum(-1) * 2, min=cap)
        support = support & fits.unsqueeze(-1)
        pieces = []
        if s_penalty.family == "lasso":
            candidate, singular, pieces = _solve_l1_support(s_penalty, s_op, s_c, support, sign, keep_factors)
        else:
            candidate, singular = solve_group_support(s_penalty, s_op, s_c, current, g, s_step, support, sign)
        D_candidate = s_op.matvec(candidate)
        g_candidate = s_penalty.gradient(s_op.rmatvec(s_y - D_candidate), candidate)
        violation, tie = s_penalty.kkt(candidate, g_candidate, s_scale, tie_rtol)
        ok = (violation <= kkt_rtol) & fits
        candidate, D_candidate = _drop_ties(s_penalty, s_y, s_op, candidate, D_candidate, s_scale, ok, kkt_rtol, tie_rtol)
        value = objective(s_penalty, s_y, D_candidate, candidate)
        if pieces:
            factors += _reusable_factors(pieces, rows, ok, (candidate != 0) == support)

        better = (value < best[rows]) | ok
        keep_rows = rows[better]
        out_z[keep_rows] = candidate[better]
        best[keep_rows] = value[better]
        accepted[rows[ok]] = True
        degenerate[rows[ok]] = (tie | singular)[ok]

        remaining = ~ok & fits
        if not bool(remaining.any()):
            break
        local = remaining.nonzero().squeeze(-1)
        rows = rows[local]
        current = candidate[local]
        g = g_candidate[local]
        sub = (s_penalty.rows(local), s_y[local], s_op.rows(local), s_c[local], s_scale[local], s_step[local])
    return PolishResult(out_z, accepted, degenerate, spent, best, best < start, factors)


def _reusable_factors(pieces, rows, ok, matches):
    """Return the factor pieces of the verified codes nonzero exactly on their solved support.

    A tie dropped by ``_drop_ties``, or an entry that solved to exactly zero,
    makes the code's support smaller than the factored one, so that sample's
    factor is left out.
    """
    exact = ok & matches.all(-1)
    selected = []
    for bucket, index, valid, L, reusable in pieces:
        take = exact[bucket] & reusable
        if bool(take.any()):
            selected.append((rows[bucket[take]], index[take], valid[take], L[take]))
    return selected


def _drop_ties(penalty, y, op, z, Dz, scale, ok, kkt_rtol, tie_rtol):
    """Zero the support entries of verified codes that sit at a tie, if the code stays optimal.

    An entry below ``tie_rtol`` of the largest is an atom (or group) at its
    threshold that rounding put on the support. Ties count as inactive, so
    such entries become exact zeros when the optimality conditions still
    hold without them (the change they make is at rounding level).
    """
    small = penalty.small_entries(z, tie_rtol) & ok.unsqueeze(-1)
    rows = small.any(-1).nonzero().squeeze(-1)
    if rows.numel() == 0:
        return z, Dz
    trimmed = torch.where(small[rows], torch.zeros_like(z[rows]), z[rows])
    sub_op = op.rows(rows)
    D_trimmed = sub_op.matvec(trimmed)
    sub_penalty = penalty.rows(rows)
    g = sub_penalty.gradient(sub_op.rmatvec(y[rows] - D_trimmed), trimmed)
    violation, _ = sub_penalty.kkt(trimmed, g, scale[rows], tie_rtol)
    keep = violation <= kkt_rtol
    z, Dz = z.clone(), Dz.clone()
    z[rows[keep]] = trimmed[keep]
    Dz[rows[keep]] = D_trimmed[keep]
    return z, Dz


def _solve_l1_support(penalty, op: DictionaryOperator, c, support, sign, keep_factors=False):
    """Solve ``(D_S^T D_S + l2 I) z_S = c_S - tau_S s_S`` on each sample's support.

    Samples are solved in buckets of similar support size, so that padding
    to the largest support of a bucket wastes little of the O(S^3) work.
    Returns ``(z, singular, pieces)``. With ``keep_factors`` each bucket adds
    a piece ``(rows, index, valid, L, reusable)`` to ``pieces``, with the
    Cholesky factors of its systems (see ``solve_psd``).
    """
    B, k = c.shape
    z = torch.zeros_like(c)
    singular = torch.zeros(B, dtype=torch.bool, device=c.device)
    tau = torch.where(torch.isinf(penalty.tau), torch.zeros_like(penalty.tau), penalty.tau)
    pieces = []
    for rows in _buckets(support.sum(-1)):
        index, valid = pack_support(support[rows])
        A = op.rows(rows).gram_block(index, valid)
        if penalty.l2 is not None:
            A.diagonal(dim1=-2, dim2=-1).add_(penalty.l2[rows] * valid.to(A.dtype))
        b = gather_support(c[rows], index, valid)
        b = b - gather_support(tau[rows] if tau.shape[0] == B else tau, index, valid) * gather_support(
            sign[rows], index, valid
        )
        if keep_factors:
            x, singular[rows], L, reusable = solve_psd(A, b, return_factor=True)
            pieces.append((rows, index, valid, L, reusable))
        else:
            x, singular[rows] = solve_psd(A, b)
        z[rows] = scatter_support(x, index, k)
    return z, singular, pieces


def _buckets(counts: torch.Tensor) -> list[torch.Tensor]:
    """Split the samples into up to ``_BUCKETS`` groups of similar support size."""
    B = counts.shape[0]
    pieces = max(1, min(_BUCKETS, B // _BUCKET_SIZE))
    if B and int(counts.max()) < _BUCKET_SUPPORT:
        pieces = 1
    if pieces == 1:
        return [torch.arange(B, device=counts.device)]
    order = torch.argsort(counts)
    return [chunk for chunk in torch.tensor_split(order, pieces) if chunk.numel()]
