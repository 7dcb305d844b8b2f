r"""Path following on the penalty weight, for samples proximal gradient cannot finish.

The lasso family follows its path exactly (``homotopy``). The rest of this
module is the staged method of the group family.

Proximal gradient converges slowly where the problem is badly conditioned
on the support, most of all for a small ``lam`` on a wide dictionary (the
basis pursuit limit), and the support polish then starts too far from the
solution. Following the solution path avoids both. It starts from
``lam_max``, where the code is known exactly (zero, or the least-squares fit
on the unpenalised atoms). The weight is then lowered by a factor ``RATIO``
per stage, and each stage is solved by the support polish started from the
previous stage's exact code. Close enough stages make every polish converge in one or
two rounds. This is the primal-dual active set method with continuation of
Jiao, Jin and Lu ("A primal dual active set with continuation algorithm for
the l0-regularized optimization problem", arXiv:1403.0515), used here on the
convex penalties. A stage whose polish fails is retried with a factor closer
to 1.
"""

from __future__ import annotations

import logging

import torch

from .homotopy import follow_lasso_path
from .operator import DictionaryOperator
from .penalties import project_free
from .polish import polish

__all__ = ["follow_path", "path_steps"]

logger = logging.getLogger(__name__)

# Weight reduction per stage; PDASC uses 0.7 to 0.9.
RATIO = 0.7
# A stage that keeps failing with a reduction factor above this gives up.
LAST_RATIO = 0.999
MAX_STAGES = 1000
# Homotopy breakpoints allowed per atom; a path usually has about as many
# breakpoints as its final support has atoms.
_HOMOTOPY_STEPS_PER_ATOM = 4


def path_steps(k: int) -> int:
    """Return the breakpoints a homotopy path of ``k`` atoms may take."""
    return _HOMOTOPY_STEPS_PER_ATOM * k + 100
# The first stage sits this fraction above lam_max, clear of the tie there.
_ABOVE_LAM_MAX = 1e-6


def follow_path(penalty, y, op: DictionaryOperator, c, scale, step, *, rounds, kkt_rtol, tie_rtol, cap):
    """Solve every sample by following its path from ``lam_max`` down to the penalty's weight.

    The lasso family follows its piecewise linear path exactly
    (``homotopy``); the group family uses the staged polish described above.
    Returns ``(z, accepted, degenerate, rounds)``: the verified codes where
    ``accepted`` (B,); ``rounds`` (B,) counts support systems solved.

    Shape:
        y: (B, m); c: (B, k) ``D^T y``; scale and step: (B, 1).
    """
    B, k = c.shape
    if penalty.family == "lasso":
        path = follow_lasso_path(penalty, y, op, c, max_steps=path_steps(k))
        g = penalty.gradient(op.rmatvec(y - op.matvec(path.z)), path.z)
        violation, tie = penalty.kkt(path.z, g, scale, tie_rtol)
        accepted = path.finished & (violation <= kkt_rtol)
        return path.z, accepted, path.degenerate | tie, path.steps
    device = c.device
    # lam_max: the weight above which the fit on the unpenalised atoms alone is optimal.
    r, w = project_free(y, torch.zeros_like(c), op, penalty)
    alpha = penalty.dual_scaling(penalty.dual_correlation(op.rmatvec(r), w), limit=torch.inf)
    factor = torch.where(alpha > 0, 1.0 / alpha.clamp(min=torch.finfo(c.dtype).tiny), torch.ones_like(alpha))
    factor = (factor.clamp(min=1.0) * (1 + _ABOVE_LAM_MAX)).unsqueeze(-1)

    z = torch.zeros_like(c)
    accepted = torch.zeros(B, dtype=torch.bool, device=device)
    degenerate = torch.zeros(B, dtype=torch.bool, device=device)
    spent = torch.zeros(B, dtype=torch.int64, device=device)
    ratio = torch.full((B, 1), RATIO, dtype=c.dtype, device=device)
    # The first stage (at lam_max) is solved without a reduction.
    target = factor.clone()
    running = torch.ones(B, dtype=torch.bool, device=device)
    for stage in range(MAX_STAGES):
        rows = running.nonzero().squeeze(-1)
        if rows.numel() == 0:
            break
        result = polish(
            penalty.rows(rows).scaled(target[rows]),
            y[rows], op.rows(rows), z[rows], c[rows], scale[rows], step[rows],
            rounds=rounds, kkt_rtol=kkt_rtol, tie_rtol=tie_rtol, cap=cap,
        )
        spent[rows] += result.rounds
        ok = result.accepted
        passed = rows[ok]
        z[passed] = result.z[ok]
        factor[passed] = target[passed]
        arrived = passed[(target[passed] <= 1).squeeze(-1)]
        accepted[arrived] = True
        degenerate[arrived] = result.degenerate[ok][(target[passed] <= 1).squeeze(-1)]
        running[arrived] = False

        failed = rows[~ok]
        ratio[failed] = ratio[failed].sqrt()
        ratio[passed] = torch.clamp(ratio[passed] ** 2, min=RATIO)
        running[failed[(ratio[failed] > LAST_RATIO).squeeze(-1)]] = False
        target = torch.clamp(factor * ratio, min=1.0)
        logger.debug("path following: stage %d, %d samples left", stage + 1, int(running.sum()))
    return z, accepted, degenerate, spent
