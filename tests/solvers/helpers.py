"""Shared helpers of the forward-solver tests: a direct call of ``solve`` and the reference."""

from __future__ import annotations

import numpy as np
import torch

from implicit_basis.inputs import prepare_inputs
from implicit_basis.solvers import solve
from tests.reference import reference_batch

# Float64 solutions must match the reference to this (absolute, on codes of order 1).
EXACT = 1e-9


def run(problem, y, D, *, init=None, tol=None, max_iter=None):
    """Solve through ``implicit_basis.solvers.solve`` as a backend would: resolved, detached parameters."""
    batch = prepare_inputs(y, D, problem)
    params = {name: value.detach() if isinstance(value, torch.Tensor) else value for name, value in batch.params.items()}
    if init is not None and init.dim() == 1:
        init = init.unsqueeze(0)
    return solve(problem, batch.y, batch.D, params, tol=tol, max_iter=max_iter, init=init)


def reference(kind, Y, D, **params) -> np.ndarray:
    """Return the reference codes (B, k) of every row of ``Y``, asserting each was polished."""
    refs = reference_batch(kind, np.atleast_2d(np.asarray(Y)), np.asarray(D), **params)
    if not refs.polished.all():
        messages = [result.message for result in refs.results]
        raise AssertionError(f"the reference polish failed, so the test has no exact oracle: {messages}")
    return refs.z


def as_tensor(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), dtype=torch.float64)


def random_problem(m: int, k: int, B: int, seed: int, nnz: int = 3, noise: float = 0.05):
    """Return (Y (B, m), D (m, k)) with unit-norm Gaussian atoms and ``nnz``-sparse codes plus noise."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, k))
    D /= np.linalg.norm(D, axis=0)
    X = np.zeros((B, k))
    for b in range(B):
        X[b, rng.choice(k, nnz, replace=False)] = rng.standard_normal(nnz)
    Y = X @ D.T + noise * rng.standard_normal((B, m))
    return Y, D
