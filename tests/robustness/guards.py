"""A guard that shows an input was rejected before any solver ran."""

from __future__ import annotations

import contextlib
import importlib

import pytest

__all__ = ["solvers_disabled"]


def _fail(*args, **kwargs):
    raise AssertionError("a solver was called: the input should have been rejected before any solve")


@contextlib.contextmanager
def solvers_disabled():
    """Make every backend's solver fail loudly, to show that a check raised before it.

    Patched: the implicit backend's two forward algorithms (after the
    dispatcher has checked ``tol`` and ``max_iter``), the cvxpylayers
    backend's solve, and the first product of the unrolled backend's
    iteration.
    """
    import implicit_basis.diff.cvxpylayers as cvxpylayers_backend
    import implicit_basis.diff.unrolled as unrolled_backend

    dispatcher = importlib.import_module("implicit_basis.solvers.solve")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dispatcher, "solve_penalised", _fail)
        patch.setattr(dispatcher, "solve_constrained", _fail)
        patch.setattr(cvxpylayers_backend, "_solve_isolated", _fail)
        patch.setattr(unrolled_backend, "batched_matvec", _fail)
        yield
