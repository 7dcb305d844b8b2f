"""Exceptions and warnings raised by solves, carrying per-sample outcomes."""

from __future__ import annotations

__all__ = ["ConvergenceWarning", "InfeasibleProblemError", "SolverFailedError"]


class ConvergenceWarning(UserWarning):
    """A solve stopped before its stopping test was met on some samples."""


class _SampleError:
    """Mixin for errors that name the failing samples and keep the others' results.

    Attributes:
        samples: indices of the failing samples in the batch.
        z: the codes of the whole batch, with the failing rows set to NaN, or
            None when nothing was solved.
        info: the ``SolveInfo`` of the whole batch, or None.
    """

    def _attach(self, samples, z, info) -> None:
        self.samples = list(samples)
        self.z = z
        self.info = info


class InfeasibleProblemError(ValueError, _SampleError):
    """Basis pursuit (or denoising) has no feasible point on some samples.

    Attributes:
        distances: distance of each failing ``y`` to range(D) (for basis
            pursuit denoising, compare with ``sigma``).
    """

    def __init__(self, message: str, samples, distances, z=None, info=None) -> None:
        super().__init__(message)
        self._attach(samples, z, info)
        self.distances = list(distances)


class SolverFailedError(RuntimeError, _SampleError):
    """The solver failed on some samples.

    Attributes:
        reasons: one message per failing sample.
    """

    def __init__(self, message: str, samples, reasons, z=None, info=None) -> None:
        super().__init__(message)
        self._attach(samples, z, info)
        self.reasons = list(reasons)
