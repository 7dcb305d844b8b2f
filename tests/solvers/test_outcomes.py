"""Per-sample outcomes: the convergence warning, infeasible samples, rejected arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import implicit_basis as ib
from implicit_basis.errors import ConvergenceWarning, InfeasibleProblemError
from implicit_basis.solvers import solve
from tests.solvers.helpers import as_tensor, random_problem, run


def test_tiny_max_iter_warns():
    Y, D = random_problem(30, 300, 3, seed=0, nnz=10)
    with pytest.warns(ConvergenceWarning, match=r"did not converge on samples 0 \(gap [0-9.e-]+\), 1 .*2 .*tol=1e-10.*Raise max_iter"):
        z, info = run(ib.Lasso(0.02), as_tensor(Y), as_tensor(D), max_iter=5)
    assert not bool(info.converged.any())
    assert bool((info.gap > 1e-10).all())
    assert not bool(torch.isnan(z).any())


def test_converged_samples_do_not_warn():
    Y, D = random_problem(20, 50, 3, seed=1)
    z, info = run(ib.Lasso(0.2), as_tensor(Y), as_tensor(D))
    assert bool(info.converged.all())


def tall_batch():
    rng = np.random.default_rng(50)
    D = rng.standard_normal((8, 5))
    X = rng.standard_normal((3, 5))
    Y = X @ D.T
    Y[1] = rng.standard_normal(8)
    return Y, D, X


def test_infeasible_sample_is_named():
    Y, D, X = tall_batch()
    Q, _ = np.linalg.qr(D)
    distance = np.linalg.norm(Y[1] - Q @ (Q.T @ Y[1]))
    with pytest.raises(InfeasibleProblemError, match=rf"infeasible for samples 1 \(distance {distance:.3g}\)") as caught:
        run(ib.BasisPursuit(), as_tensor(Y), as_tensor(D))
    error = caught.value
    assert error.samples == [1]
    assert error.distances[0] == pytest.approx(distance, rel=1e-9)
    assert bool(torch.isnan(error.z[1]).all())
    torch.testing.assert_close(error.z[[0, 2]], as_tensor(X[[0, 2]]), rtol=0, atol=1e-12)
    assert error.info.converged.tolist() == [True, False, True]


def test_infeasible_denoising_below_the_distance():
    Y, D, X = tall_batch()
    Q, _ = np.linalg.qr(D)
    distance = np.linalg.norm(Y[1] - Q @ (Q.T @ Y[1]))
    with pytest.raises(InfeasibleProblemError, match=r"infeasible for samples 1 ") as caught:
        run(ib.BasisPursuitDenoising(0.5 * distance), as_tensor(Y), as_tensor(D))
    assert caught.value.samples == [1]
    assert not bool(torch.isnan(caught.value.z[[0, 2]]).any())


class _Unknown:
    kind = "total_variation"


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match=r"problem kind 'total_variation' has no forward solver"):
        solve(_Unknown(), torch.zeros(1, 3), torch.zeros(3, 4), {})


@pytest.mark.parametrize(("options", "message"), [({"tol": 0.0}, "tol must be"), ({"max_iter": 0}, "max_iter must be")])
def test_bad_limits_are_rejected(options, message):
    problem = ib.Lasso(0.1)
    params = problem.resolve(1, 4, torch.float64, torch.device("cpu"))
    with pytest.raises(ValueError, match=message):
        solve(problem, torch.zeros(1, 3, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64), params, **options)
