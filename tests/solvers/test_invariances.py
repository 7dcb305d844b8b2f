"""Invariances of the solution: scaling, atom order, warm starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import implicit_basis as ib
from tests.solvers.helpers import as_tensor, random_problem, run

M, K, B = 20, 50, 4
GROUPS = [5] * 10


def problems(c):
    """Return each kind with its penalties scaled for data scaled by c."""
    return {
        "lasso": ib.Lasso(0.2 * c**2),
        "weighted": ib.Lasso(0.2 * c**2, weights=as_tensor(np.r_[0.0, np.inf, np.linspace(0.5, 2, K - 2)])),
        "nonneg": ib.Lasso(0.1 * c**2, nonneg=True),
        "elastic_net": ib.ElasticNet(0.2 * c**2, 0.3 * c**2),
        "group_lasso": ib.GroupLasso(0.3 * c**2, GROUPS),
        "sparse_group_lasso": ib.SparseGroupLasso(0.3 * c**2, GROUPS, 0.5),
        "basis_pursuit": ib.BasisPursuit(),
        "basis_pursuit_denoising": ib.BasisPursuitDenoising(0.1 * c),
    }


@pytest.mark.parametrize("name", list(problems(1.0)))
@pytest.mark.parametrize("c", [1e-3, 7.3, 1e4])
def test_scaling_leaves_codes_unchanged(name, c):
    Y, D = random_problem(M, K, B, seed=20)
    z, _ = run(problems(1.0)[name], as_tensor(Y), as_tensor(D))
    z_scaled, info = run(problems(c)[name], as_tensor(c * Y), as_tensor(c * D))
    torch.testing.assert_close(z_scaled, z, rtol=1e-10, atol=1e-12)
    assert torch.equal(z_scaled == 0, z == 0)
    assert bool(info.converged.all())


@pytest.mark.parametrize("name", ["lasso", "weighted", "elastic_net", "basis_pursuit", "basis_pursuit_denoising"])
def test_permuting_atoms_permutes_codes(name):
    Y, D = random_problem(M, K, B, seed=21)
    order = np.random.default_rng(22).permutation(K)
    problem = problems(1.0)[name]
    z, _ = run(problem, as_tensor(Y), as_tensor(D))
    if name == "weighted":
        weights = problem.weights[order]
        problem = ib.Lasso(0.2, weights=weights)
    z_permuted, _ = run(problem, as_tensor(Y), as_tensor(D[:, order]))
    torch.testing.assert_close(z_permuted, z[:, order], rtol=1e-10, atol=1e-12)


def test_permuting_groups_permutes_codes():
    Y, D = random_problem(M, K, B, seed=23)
    order = np.random.default_rng(24).permutation(K)
    position = np.argsort(order)
    members = [list(range(5 * g, 5 * g + 5)) for g in range(10)]
    permuted_groups = [sorted(int(position[j]) for j in group) for group in members]
    z, _ = run(ib.SparseGroupLasso(0.3, members, 0.5), as_tensor(Y), as_tensor(D))
    z_permuted, _ = run(ib.SparseGroupLasso(0.3, permuted_groups, 0.5), as_tensor(Y), as_tensor(D[:, order]))
    torch.testing.assert_close(z_permuted, z[:, order], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(problems(1.0)))
def test_wrong_warm_start_gives_same_code(name):
    Y, D = random_problem(M, K, B, seed=25)
    problem = problems(1.0)[name]
    z, _ = run(problem, as_tensor(Y), as_tensor(D))
    rng = np.random.default_rng(26)
    # Wrong support and signs: the negated solution plus random entries elsewhere.
    wrong = -z + as_tensor(rng.standard_normal((B, K)) * (rng.random((B, K)) < 0.3))
    z_warm, info = run(problem, as_tensor(Y), as_tensor(D), init=wrong)
    torch.testing.assert_close(z_warm, z, rtol=0, atol=1e-12)
    assert torch.equal(z_warm == 0, z == 0)
    assert bool(info.converged.all())


@pytest.mark.parametrize("name", ["lasso", "elastic_net", "group_lasso", "sparse_group_lasso"])
def test_warm_start_at_solution_finishes_at_once(name):
    Y, D = random_problem(M, K, B, seed=27)
    problem = problems(1.0)[name]
    z, _ = run(problem, as_tensor(Y), as_tensor(D))
    z_warm, info = run(problem, as_tensor(Y), as_tensor(D), init=z)
    torch.testing.assert_close(z_warm, z, rtol=0, atol=1e-13)
    assert int(info.iterations.max()) <= 1
