r"""The solver of the penalised kinds: proximal gradient, then an exact polish.

Per sample, in one batch:

1. Check the starting code (zero, or the warm start) against the optimality
   conditions. Samples whose zero code is optimal (``lam >= lam_max`` and
   no unpenalised atom) stop here, with exact zeros and no iteration. A
   warm start is polished at once, so a start on the right support costs
   one factorisation.
2. Run accelerated proximal gradient (``apg``) and check the relative
   duality gap every ``check_every`` iterations.
3. Once a sample's gap falls below its identification threshold, polish it
   (``polish``): solve the optimality conditions on the identified support
   and verify them on every atom. A verified code is exact to rounding and
   the sample is done. A failed polish divides the sample's threshold by
   100, moves its iterate to the polish candidate when that is better, and
   returns it to step 2.
4. A sample whose polish failed ``CONTINUATION_AFTER`` times, or that ran
   ``CONTINUATION_ITERATIONS`` iterations, follows the solution path from
   ``lam_max`` instead (``continuation``), once.
5. A sample whose gap reaches ``tol`` without a successful polish keeps the
   proximal-gradient code (converged, with exact zeros from the proximal
   step). A sample that exhausts ``max_iter`` is reported as not converged.

Proximal gradient runs in two lanes. The fast lane iterates in float32 on a
copy of the problem scaled by powers of two (exact, and safe from overflow).
It serves support identification, which needs only a loose gap. A sample
moves to the exact lane, in float64, when its threshold drops below
``FAST_FLOOR`` or its float32 gap stops improving. The polish and its
verification always run in float64, on the original data. Finished samples
leave their lane, so the products shrink as samples finish.

On request the solver also returns, for the lasso family, the Cholesky
factor of the support system of every sample finished by a verified polish
(``SupportFactor``), so that the implicit backward need not form and factor
that system again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .apg import APGState, run_apg, start_apg
from .continuation import follow_path
from .gap import relative_gap
from .linalg import FactorCollector, SupportFactor
from .operator import DictionaryOperator
from .polish import polish
from .settings import Settings

__all__ = ["PenalisedResult", "solve_penalised"]

logger = logging.getLogger(__name__)

_EXACT_DTYPE = torch.float64
_FAST_DTYPE = torch.float32

# The fast lane serves thresholds down to this gap. Float32 iterates stall
# near a relative gap of 1e-6 on the benchmark problems; 1e-4 stays clear
# of that floor.
FAST_FLOOR = 1e-4

# A fast-lane sample whose best gap has not dropped by 10% over this many
# checks has hit the float32 floor (or converges too slowly there) and moves
# to the exact lane.
_STALL_CHECKS = 10
_STALL_RATIO = 0.9

# Failed polishes, or proximal-gradient iterations, after which a sample
# follows the solution path instead (once). The random benchmark problems
# finish in 30 to 150 iterations, so 200 marks a badly conditioned sample.
# On the demo's coherent Gabor windows (8 x 57 samples, 130 atoms) the
# samples needed 650 to 1100 iterations, and switching at 200 instead of
# 1000 halved the solve time; the benchmark times did not change.
CONTINUATION_AFTER = 3
CONTINUATION_ITERATIONS = 200

# Polishes are batched: a quarter of the lane below its thresholds, or one
# sample waiting that many checks, starts one.
POLISH_FRACTION = 0.25
POLISH_WAIT = 3


@dataclass
class PenalisedResult:
    """Codes and per-sample outcomes of a penalised solve (all (B,) but ``z``)."""

    z: torch.Tensor
    converged: torch.Tensor
    gap: torch.Tensor
    iterations: torch.Tensor
    degenerate: torch.Tensor
    polished: torch.Tensor
    factor: SupportFactor | None = None


def solve_penalised(
    penalty,
    y: torch.Tensor,
    op: DictionaryOperator,
    settings: Settings,
    init: torch.Tensor | None,
    keep_factor: bool = False,
    factor_limit: int | None = None,
) -> PenalisedResult:
    """Solve ``min_z 1/2 ||D z - y||^2 + h(z)`` per sample; see the module docstring.

    With ``keep_factor`` (lasso family only) the result carries the support
    factors of the polished samples with supports up to ``factor_limit``
    atoms (no limit when None).

    Shape:
        y: (B, m); init: (B, k) or None; result z: (B, k) in ``y``'s dtype.
    """
    keep_factor = keep_factor and penalty.family == "lasso"
    context = _Context(penalty, y, op, settings, keep_factor)
    outcome = _Outcome(y.shape[0], op.k, y.device, keep_factor)

    # Step 1: the starting code, checked and (for a warm start) polished.
    z_start = context.clean(init) if init is not None else torch.zeros_like(context.c64)
    everything = torch.arange(y.shape[0], device=y.device)
    start_ok, start_tie = context.check_exact(everything, z_start)
    outcome.finish(everything[start_ok], z_start[start_ok], converged=True, polished=True)
    outcome.degenerate[everything[start_ok]] = start_tie[start_ok]
    if init is not None and not bool(start_ok.all()):
        rows = everything[~start_ok]
        result = context.polish(rows, z_start[rows])
        outcome.iterations[rows] += result.rounds
        outcome.finish(rows[result.accepted], result.z[result.accepted], converged=True, polished=True)
        outcome.keep_factors(rows, result)
        outcome.degenerate[rows[result.accepted]] = result.degenerate[result.accepted]
        better = ~result.accepted & result.improved
        z_start[rows[better]] = result.z[better]

    # Steps 2 to 5.
    rows = (~outcome.finished).nonzero().squeeze(-1)
    threshold = torch.full((y.shape[0],), max(settings.identify_gap, settings.tol), dtype=torch.float64, device=y.device)
    fast = _Lane(context, fast=True)
    exact = _Lane(context, fast=False)
    fast.add(rows, z_start[rows])
    while fast.size or exact.size:
        for lane in (fast, exact):
            if lane.size:
                _advance(lane, exact, context, outcome, threshold)

    outcome.gap = context.final_gap(outcome.z)
    # An unpenalised zero atom takes any value: the code is not unique.
    outcome.degenerate |= (context.penalty64.free(op.k) & ~context.op64.nonzero_atoms()).any(-1)
    unsettled = ~outcome.polished
    if bool(unsettled.any()):
        rows = unsettled.nonzero().squeeze(-1)
        _, tie = context.check_exact(rows, outcome.z[rows])
        outcome.degenerate[rows] = tie
    z = outcome.z.to(y.dtype)
    factor = outcome.factors.assemble(factor_limit) if outcome.factors is not None else None
    return PenalisedResult(
        z, outcome.converged, outcome.gap, outcome.iterations, outcome.degenerate, outcome.polished, factor
    )


def _advance(lane: "_Lane", exact: "_Lane", context: "_Context", outcome: "_Outcome", threshold) -> None:
    """Run one chunk of iterations on a lane, then polish, settle or move its due samples."""
    settings = context.settings
    rows = lane.rows
    # Never run past max_iter for the sample with the fewest iterations.
    left = settings.max_iter - int(outcome.iterations[rows].min())
    n = min(settings.check_every, max(left, 1))
    lane.run(n)
    outcome.iterations[rows] += n
    gap = lane.gap().to(torch.float64)
    exhausted = outcome.iterations[rows] >= settings.max_iter
    reached = (gap <= settings.tol) & ~torch.tensor(lane.fast, device=gap.device)
    stalled = lane.track_stall(gap) if lane.fast else torch.zeros_like(reached)
    slow = ~outcome.tried[rows] & (outcome.iterations[rows] >= CONTINUATION_ITERATIONS)
    ready = gap <= threshold[rows]
    urgent = reached | exhausted | stalled | slow
    # Every polish call has a fixed cost, so samples below their threshold
    # wait (iterating on) until a quarter of the lane is ready or the first
    # of them has waited POLISH_WAIT checks.
    waited = lane.track_ready(ready)
    batch_ready = bool(ready.sum() >= POLISH_FRACTION * rows.numel()) or bool((waited >= POLISH_WAIT).any())
    due = urgent | (ready & batch_ready)
    logger.debug(
        "proximal gradient (%s lane): %d samples, largest gap %.3g, %d due for a polish",
        "float32" if lane.fast else "float64", rows.numel(), float(gap.max()), int(due.sum()),
    )
    if not bool(due.any()):
        return

    local = due.nonzero().squeeze(-1)
    target = rows[local]
    z_lane = lane.codes(local)
    result = context.polish(target, z_lane)
    outcome.iterations[target] += result.rounds
    accepted = result.accepted
    outcome.finish(target[accepted], result.z[accepted], converged=True, polished=True)
    outcome.keep_factors(target, result)
    outcome.degenerate[target[accepted]] = result.degenerate[accepted]
    threshold[target[~accepted]] *= 0.01
    outcome.failures[target[~accepted]] += 1

    # Samples that failed to polish CONTINUATION_AFTER times, or are slow, follow the path (once).
    hard = ~accepted & ~outcome.tried[target]
    hard = hard & ((outcome.failures[target] >= CONTINUATION_AFTER) | slow[local])
    if bool(hard.any()):
        local_hard = hard.nonzero().squeeze(-1)
        outcome.tried[target[local_hard]] = True
        z_path, solved, degenerate_path, steps = context.follow_path(target[local_hard])
        outcome.iterations[target[local_hard]] += steps
        solved_rows = target[local_hard[solved]]
        outcome.finish(solved_rows, z_path[solved], converged=True, polished=True)
        outcome.degenerate[solved_rows] = degenerate_path[solved]
        accepted = accepted.clone()
        accepted[local_hard[solved]] = True

    # Samples without a verified polish stop at tol or max_iter on their own iterate.
    settle = ~accepted & (reached[local] | exhausted[local])
    outcome.finish(target[settle], z_lane[settle], converged=False, polished=False)
    outcome.converged[target[settle]] = reached[local][settle]

    # Keep iterating from the better of the iterate and the polish candidate.
    going = ~accepted & ~settle
    start = torch.where(result.improved.unsqueeze(-1), result.z, z_lane)
    move = going & (threshold[target] < FAST_FLOOR) if lane.fast else torch.zeros_like(going)
    if lane.fast:
        move = move | (going & stalled[local])
    restart = going & ~move & result.improved
    if bool(restart.any()):
        lane.restart(local[restart], start[restart])
    if bool(move.any()):
        exact.add(target[move], start[move])
    lane.remove(local[accepted | settle | move])


class _Outcome:
    """Per-sample results, filled in as samples finish (codes in float64)."""

    def __init__(self, B: int, k: int, device, keep_factor: bool = False) -> None:
        self.factors = FactorCollector(B, k, device) if keep_factor else None
        self.z = torch.zeros(B, k, dtype=_EXACT_DTYPE, device=device)
        self.converged = torch.zeros(B, dtype=torch.bool, device=device)
        self.degenerate = torch.zeros(B, dtype=torch.bool, device=device)
        self.polished = torch.zeros(B, dtype=torch.bool, device=device)
        self.finished = torch.zeros(B, dtype=torch.bool, device=device)
        self.iterations = torch.zeros(B, dtype=torch.int64, device=device)
        self.failures = torch.zeros(B, dtype=torch.int64, device=device)
        self.tried = torch.zeros(B, dtype=torch.bool, device=device)
        self.gap = torch.zeros(B, dtype=_EXACT_DTYPE, device=device)

    def finish(self, rows, z, *, converged: bool, polished: bool) -> None:
        self.z[rows] = z.to(_EXACT_DTYPE)
        self.converged[rows] = converged
        self.polished[rows] = polished
        self.finished[rows] = True
        # A code finished here has no factor unless keep_factors records one next.
        if self.factors is not None:
            self.factors.drop(rows)

    def keep_factors(self, rows, result) -> None:
        """Record the support factors of a polish of the samples ``rows`` that ``finish`` accepted."""
        if self.factors is None:
            return
        for local, index, valid, L in result.factors:
            self.factors.add(rows[local], index, valid, L)


class _Lane:
    """Samples iterating in one precision: their rows, APG state and sub-problem."""

    def __init__(self, context: "_Context", fast: bool) -> None:
        self.context = context
        self.fast = fast
        self.rows = torch.zeros(0, dtype=torch.int64, device=context.y64.device)
        self.state: APGState | None = None
        self.best = None
        self.since = None
        self.waiting = None

    @property
    def size(self) -> int:
        return int(self.rows.numel())

    def _problem(self, rows):
        """Return (y, op, penalty, step, z factor) of the lane for the samples ``rows``."""
        c = self.context
        if self.fast:
            return c.y_fast[rows], c.op_fast.rows(rows), c.penalty_fast.rows(rows), c.step_fast[rows], c.z_factor[rows]
        return c.y64[rows], c.op64.rows(rows), c.penalty64.rows(rows), c.step64[rows], None

    def add(self, rows: torch.Tensor, z: torch.Tensor) -> None:
        """Add samples starting (without momentum) at codes ``z`` of the original problem."""
        if rows.numel() == 0:
            return
        y, op, _, step, factor = self._problem(rows)
        z = z.to(_EXACT_DTYPE)
        if factor is not None:
            z = z * factor
        fresh = start_apg(z.to(y.dtype), y, op, step)
        if self.state is None or self.size == 0:
            self.state, self.rows = fresh, rows.clone()
        else:
            self.state = self.state.cat(fresh)
            self.rows = torch.cat([self.rows, rows])
        self._reload()
        gap = torch.full((rows.numel(),), torch.inf, dtype=torch.float64, device=rows.device)
        self.best = gap if self.best is None or self.best.numel() == 0 else torch.cat([self.best, gap])
        zeros = torch.zeros(rows.numel(), dtype=torch.int64, device=rows.device)
        self.since = zeros if self.since is None or self.since.numel() == 0 else torch.cat([self.since, zeros])
        self.waiting = zeros if self.waiting is None or self.waiting.numel() == 0 else torch.cat([self.waiting, zeros])

    def remove(self, local: torch.Tensor) -> None:
        if local.numel() == 0:
            return
        keep = torch.ones(self.size, dtype=torch.bool, device=self.rows.device)
        keep[local] = False
        stay = keep.nonzero().squeeze(-1)
        self.rows = self.rows[stay]
        self.state = self.state.rows(stay)
        self.best = self.best[stay]
        self.since = self.since[stay]
        self.waiting = self.waiting[stay]
        self._reload()

    def restart(self, local: torch.Tensor, z: torch.Tensor) -> None:
        """Restart samples (local positions) at codes ``z`` of the original problem."""
        y, op, _, step, factor = self._problem(self.rows[local])
        z = z.to(_EXACT_DTYPE)
        if factor is not None:
            z = z * factor
        self.state.put(local, start_apg(z.to(y.dtype), y, op, step))

    def _reload(self) -> None:
        self.y, self.op, self.penalty, _, self.factor = self._problem(self.rows)

    def run(self, n: int) -> None:
        run_apg(self.state, self.y, self.op, self.penalty, n, self.context.backtrack)

    def gap(self) -> torch.Tensor:
        s = self.state
        return relative_gap(self.penalty, self.y, self.op, s.z, s.Dz, s.w, s.Dw, s.corr_w)

    def codes(self, local: torch.Tensor) -> torch.Tensor:
        """Return the current codes of samples (local positions) for the original problem, float64."""
        z = self.state.z[local].to(_EXACT_DTYPE)
        if self.factor is not None:
            z = z / self.factor[local]
        return z

    def track_ready(self, ready: torch.Tensor) -> torch.Tensor:
        """Count the checks each sample has spent below its threshold; return the counts."""
        self.waiting = torch.where(ready, self.waiting + 1, torch.zeros_like(self.waiting))
        return self.waiting

    def track_stall(self, gap: torch.Tensor) -> torch.Tensor:
        improved = gap < _STALL_RATIO * self.best
        self.best = torch.where(improved, gap, self.best)
        self.since = torch.where(improved, torch.zeros_like(self.since), self.since + 1)
        return self.since >= _STALL_CHECKS


class _Context:
    """Shared state of one penalised solve: the float64 problem, the fast copy and the steps."""

    def __init__(self, penalty, y, op: DictionaryOperator, settings: Settings, keep_factor: bool = False) -> None:
        self.settings = settings
        self.keep_factor = keep_factor
        self.k = op.k
        self.y64 = y.to(_EXACT_DTYPE)
        self.op64 = op.to(_EXACT_DTYPE)
        self.penalty64 = penalty.to(_EXACT_DTYPE)
        self.c64 = self.op64.rmatvec(self.y64)
        scale = self.c64.abs().amax(-1, keepdim=True)
        self.scale64 = torch.where(scale > 0, scale, torch.ones_like(scale))
        lipschitz = self.op64.squared_norm().unsqueeze(-1)
        tiny = torch.finfo(_EXACT_DTYPE).tiny
        self.step64 = torch.where(lipschitz > 0, 1.0 / lipschitz.clamp(min=tiny), torch.ones_like(lipschitz))
        # The exact norm needs no backtracking; a power-iteration estimate does.
        self.backtrack = not op.norm_is_exact
        free = self.penalty64.free(op.k)
        free_count = int(free.sum(-1).max()) if free.numel() else 0
        # A lasso support beyond m atoms (plus the unpenalised ones) is singular:
        # a round that identifies one is far from the solution.
        plain_lasso = penalty.l2 is None and penalty.family == "lasso"
        self.cap = min(op.k, op.m + free_count) if plain_lasso else op.k
        self._build_fast(lipschitz)

    def _build_fast(self, lipschitz: torch.Tensor) -> None:
        """Build the float32 copy on ``(D / d_scale, y / y_scale)`` with power-of-two scales."""
        D = self.op64.D
        column_norms = D.norm(dim=-2).amax(-1, keepdim=True)
        d_scale = _power_of_two(column_norms)
        y_scale = _power_of_two(self.y64.abs().amax(-1, keepdim=True))
        B = self.y64.shape[0]
        d_batch = d_scale.expand(B, 1) if self.op64.shared else d_scale
        if self.op64.shared:
            D_fast = (D / d_scale).to(_FAST_DTYPE)
        else:
            D_fast = (D / d_scale.unsqueeze(-1)).to(_FAST_DTYPE)
        self.op_fast = DictionaryOperator(D_fast, B)
        self.op_fast._cache["squared_norm"] = (lipschitz.squeeze(-1) / d_batch.squeeze(-1) ** 2).to(_FAST_DTYPE)
        self.y_fast = (self.y64 / y_scale).to(_FAST_DTYPE)
        self.penalty_fast = self.penalty64.rescaled(d_batch, y_scale).to(_FAST_DTYPE)
        self.step_fast = (self.step64 * d_batch**2).to(_FAST_DTYPE)
        # The fast lane's code is z * d_scale / y_scale.
        self.z_factor = d_batch / y_scale

    def clean(self, z: torch.Tensor) -> torch.Tensor:
        """Return a warm start with forced atoms zeroed and the sign constraint applied, float64."""
        z = z.to(_EXACT_DTYPE)
        z = torch.where(self.penalty64.forced(self.k), torch.zeros_like(z), z)
        if self.penalty64.nonneg:
            z = z.clamp(min=0)
        return z.clone()

    def check_exact(self, rows: torch.Tensor, z: torch.Tensor):
        """Return (optimal, tie) of codes ``z`` of samples ``rows``, checked in float64."""
        if rows.numel() == 0:
            empty = torch.zeros(0, dtype=torch.bool, device=z.device)
            return empty, empty
        z64 = z.to(_EXACT_DTYPE)
        op64 = self.op64.rows(rows)
        y64 = self.y64[rows]
        penalty64 = self.penalty64.rows(rows)
        g = penalty64.gradient(op64.rmatvec(y64 - op64.matvec(z64)), z64)
        violation, tie = penalty64.kkt(z64, g, self.scale64[rows], self.settings.tie_rtol)
        return violation <= self.settings.kkt_rtol, tie

    def polish(self, rows: torch.Tensor, z: torch.Tensor):
        return polish(
            self.penalty64.rows(rows),
            self.y64[rows],
            self.op64.rows(rows),
            z.to(_EXACT_DTYPE),
            self.c64[rows],
            self.scale64[rows],
            self.step64[rows],
            rounds=self.settings.polish_rounds,
            kkt_rtol=self.settings.kkt_rtol,
            tie_rtol=self.settings.tie_rtol,
            cap=self.cap,
            keep_factors=self.keep_factor,
        )

    def follow_path(self, rows: torch.Tensor):
        return follow_path(
            self.penalty64.rows(rows),
            self.y64[rows],
            self.op64.rows(rows),
            self.c64[rows],
            self.scale64[rows],
            self.step64[rows],
            rounds=self.settings.polish_rounds,
            kkt_rtol=self.settings.kkt_rtol,
            tie_rtol=self.settings.tie_rtol,
            cap=self.cap,
        )

    def final_gap(self, z: torch.Tensor) -> torch.Tensor:
        """Return the relative duality gap of the final codes, computed in float64."""
        z64 = z.to(_EXACT_DTYPE)
        Dz = self.op64.matvec(z64)
        corr = self.op64.rmatvec(self.y64 - Dz)
        return relative_gap(self.penalty64, self.y64, self.op64, z64, Dz, z64, Dz, corr)


def _power_of_two(value: torch.Tensor) -> torch.Tensor:
    """Return 2^round(log2(value)) (1 where value is 0): scaling by it is exact."""
    positive = value > 0
    exponent = torch.round(torch.log2(torch.where(positive, value, torch.ones_like(value))))
    return torch.where(positive, torch.exp2(exponent), torch.ones_like(value))
