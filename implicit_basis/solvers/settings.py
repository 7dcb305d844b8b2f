"""Default tolerances and limits of the forward solvers, with where they come from.

All tolerances are relative, so that scaling ``(D, y, lam)`` to ``(c D, c y,
c^2 lam)`` changes nothing but the scale of the solution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Settings", "default_settings"]

# Relative duality gap at which an unpolished proximal-gradient code is
# accepted; only samples whose support polish keeps failing get there. A
# polished code is exact to rounding (gap ~1e-16) whatever the tolerance.
# That fallback iterates in float64 for every input; a float32 result keeps
# about seven digits, so float32 inputs stop at 1e-6.
DEFAULT_TOL = {torch.float64: 1e-10, torch.float32: 1e-6}

# Proximal-gradient iterations per sample before giving up.
DEFAULT_MAX_ITER = 20_000

# Iterations between convergence checks (each check reads the gaps on the host).
CHECK_EVERY = 10

# Relative gap at which a first polish is tried; each failure divides it by
# 100. On the benchmark problems (benchmarks/solvers_bench.py) over 97% of
# the polishes tried at 1e-2 succeeded, in 2.1 to 2.3 rounds on average;
# 1e-2 and 3e-3 were the fastest thresholds (within 20% of each other),
# 3e-2 and 1e-3 were slower.
IDENTIFY_GAP = 1e-2

# Support corrections per polish attempt before returning to proximal steps.
POLISH_ROUNDS = 4

# The polished code must satisfy the optimality conditions to this fraction
# of ||D^T y||_inf. Solving on the support leaves ~1e-14 to 1e-13 (rounding
# amplified by the condition number of the support system), so 1e-10 leaves
# a margin while any wrong support violates by far more.
KKT_RTOL = 1e-10

# An off-support atom within this relative distance of its threshold (or a
# support entry this small relative to the largest) makes the sample degenerate.
TIE_RTOL = 1e-9


@dataclass(frozen=True)
class Settings:
    """Tolerances and limits of one solve (see the module constants)."""

    tol: float
    max_iter: int
    check_every: int = CHECK_EVERY
    identify_gap: float = IDENTIFY_GAP
    polish_rounds: int = POLISH_ROUNDS
    kkt_rtol: float = KKT_RTOL
    tie_rtol: float = TIE_RTOL


def default_settings(dtype: torch.dtype, tol: float | None, max_iter: int | None) -> Settings:
    """Return the settings for inputs of ``dtype``, with the caller's overrides."""
    if tol is None:
        tol = DEFAULT_TOL.get(dtype, DEFAULT_TOL[torch.float32])
    if max_iter is None:
        max_iter = DEFAULT_MAX_ITER
    return Settings(tol=float(tol), max_iter=int(max_iter))
