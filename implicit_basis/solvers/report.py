"""Reporting per-sample outcomes: the convergence warning."""

from __future__ import annotations

import logging
import warnings

import torch

from ..errors import ConvergenceWarning
from ..info import SolveInfo

__all__ = ["warn_unconverged"]

logger = logging.getLogger(__name__)

# Samples named in a warning before the list is cut short.
_LISTED_SAMPLES = 10


def warn_unconverged(info: SolveInfo, tol: float, kind: str) -> None:
    """Warn with ``ConvergenceWarning`` about the samples whose ``info.converged`` is False.

    Samples with a NaN gap (infeasible ones, reported by their own error) are
    left out. The message names the samples and their gaps, the tolerance,
    and what to change.
    """
    failed = [b for b in (~info.converged).nonzero().flatten().tolist() if not torch.isnan(info.gap[b])]
    if not failed:
        return
    listing = ", ".join(f"{b} (gap {float(info.gap[b]):.3g})" for b in failed[:_LISTED_SAMPLES])
    more = f" and {len(failed) - _LISTED_SAMPLES} more" if len(failed) > _LISTED_SAMPLES else ""
    iterations = int(info.iterations[failed].max())
    warnings.warn(
        f"the {kind} solve did not converge on samples {listing}{more} after {iterations} iterations: "
        f"the relative duality gap is above tol={tol:.3g} and the support could not be verified. "
        "Raise max_iter, or loosen tol if that gap is enough for your use.",
        ConvergenceWarning,
        stacklevel=3,
    )
    logger.debug("%s: %d samples did not converge", kind, len(failed))
