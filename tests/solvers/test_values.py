"""Every problem kind against the high-accuracy reference, in float64.

The reference (``tests/reference.py``) solves each sample with Clarabel and
polishes it on its support independently of the package, so agreement to
1e-9 with the same zero pattern checks both the values and the support.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import implicit_basis as ib
from tests.solvers.helpers import EXACT, as_tensor, random_problem, reference, run

M, K, B = 20, 50, 5
GROUPS = [5] * 10


def lam_fraction(Y, D, fraction):
    return fraction * np.abs(Y @ D).max(axis=1)


def check(z, info, expected):
    expected = as_tensor(expected)
    torch.testing.assert_close(z, expected, rtol=0, atol=EXACT)
    assert torch.equal(z == 0, expected == 0)
    assert bool(info.converged.all())
    assert torch.equal(info.support, expected != 0)


@pytest.mark.parametrize("fraction", [0.5, 0.1, 0.02])
def test_lasso(fraction):
    Y, D = random_problem(M, K, B, seed=1)
    lam = lam_fraction(Y, D, fraction)
    z, info = run(ib.Lasso(as_tensor(lam)), as_tensor(Y), as_tensor(D))
    check(z, info, reference("lasso", Y, D, lam=lam))
    assert float(info.gap.max()) < 1e-12


def test_lasso_weights_zero_and_inf():
    Y, D = random_problem(M, K, B, seed=2)
    weights = np.random.default_rng(3).uniform(0.5, 2.0, K)
    weights[[0, 7]] = 0.0
    weights[[1, 12]] = np.inf
    lam = 0.3
    z, info = run(ib.Lasso(lam, weights=as_tensor(weights)), as_tensor(Y), as_tensor(D))
    check(z, info, reference("lasso", Y, D, lam=lam, weights=weights))
    assert bool((z[:, [1, 12]] == 0).all())


def test_lasso_nonneg():
    Y, D = random_problem(M, K, B, seed=4)
    z, info = run(ib.Lasso(0.1, nonneg=True), as_tensor(Y), as_tensor(D))
    check(z, info, reference("lasso", Y, D, lam=0.1, nonneg=True))
    assert bool((z >= 0).all())


def test_lasso_nonneg_unpenalised_atom():
    Y, D = random_problem(M, K, B, seed=5)
    weights = np.ones(K)
    weights[[3, 4]] = 0.0
    z, info = run(ib.Lasso(0.2, weights=as_tensor(weights), nonneg=True), as_tensor(Y), as_tensor(D))
    check(z, info, reference("lasso", Y, D, lam=0.2, weights=weights, nonneg=True))


def test_lasso_per_sample_dictionary():
    rng = np.random.default_rng(6)
    D = rng.standard_normal((B, M, K)) / np.sqrt(M)
    Y = rng.standard_normal((B, M))
    z, info = run(ib.Lasso(0.2), as_tensor(Y), as_tensor(D))
    check(z, info, reference("lasso", Y, D, lam=0.2))


def test_elastic_net():
    Y, D = random_problem(M, K, B, seed=7)
    z, info = run(ib.ElasticNet(0.1, 0.3), as_tensor(Y), as_tensor(D))
    check(z, info, reference("elastic_net", Y, D, lam=0.1, l2=0.3))


def test_group_lasso():
    Y, D = random_problem(M, K, B, seed=8)
    z, info = run(ib.GroupLasso(0.3, GROUPS), as_tensor(Y), as_tensor(D))
    check(z, info, reference("group_lasso", Y, D, lam=0.3, groups=GROUPS))


def test_group_lasso_weights_and_index_lists():
    Y, D = random_problem(M, K, B, seed=9)
    rng = np.random.default_rng(10)
    members = np.array_split(rng.permutation(K), 8)
    groups = [sorted(int(j) for j in g) for g in members]
    weights = rng.uniform(1.0, 3.0, len(groups))
    weights[2] = 0.0
    weights[5] = np.inf
    problem = ib.GroupLasso(0.2, groups, weights=as_tensor(weights))
    z, info = run(problem, as_tensor(Y), as_tensor(D))
    check(z, info, reference("group_lasso", Y, D, lam=0.2, groups=groups, weights=weights))
    assert bool((z[:, groups[5]] == 0).all())


@pytest.mark.parametrize("ratio", [0.2, 0.8])
def test_sparse_group_lasso(ratio):
    Y, D = random_problem(M, K, B, seed=11)
    z, info = run(ib.SparseGroupLasso(0.3, GROUPS, ratio), as_tensor(Y), as_tensor(D))
    check(z, info, reference("sparse_group_lasso", Y, D, lam=0.3, groups=GROUPS, l1_ratio=ratio))


def test_group_lasso_per_sample_dictionary():
    rng = np.random.default_rng(12)
    D = rng.standard_normal((B, M, K)) / np.sqrt(M)
    Y = rng.standard_normal((B, M))
    z, info = run(ib.GroupLasso(0.2, GROUPS), as_tensor(Y), as_tensor(D))
    check(z, info, reference("group_lasso", Y, D, lam=0.2, groups=GROUPS))


def test_basis_pursuit():
    Y, D = random_problem(M, K, B, seed=13, noise=0.02)
    z, info = run(ib.BasisPursuit(), as_tensor(Y), as_tensor(D))
    check(z, info, reference("basis_pursuit", Y, D))
    torch.testing.assert_close(z @ as_tensor(D).T, as_tensor(Y), rtol=0, atol=1e-12)


def test_basis_pursuit_sparse_recovery():
    rng = np.random.default_rng(14)
    D = rng.standard_normal((30, 120)) / np.sqrt(30)
    X = np.zeros((3, 120))
    X[0, [3, 40]] = [1.0, -2.0]
    X[1, [7, 8, 90]] = [0.5, 1.5, -1.0]
    X[2, 100] = 3.0
    z, info = run(ib.BasisPursuit(), as_tensor(X @ D.T), as_tensor(D))
    check(z, info, X)


@pytest.mark.parametrize("sigma", [0.05, 0.3])
def test_basis_pursuit_denoising(sigma):
    Y, D = random_problem(M, K, B, seed=15)
    z, info = run(ib.BasisPursuitDenoising(sigma), as_tensor(Y), as_tensor(D))
    check(z, info, reference("basis_pursuit_denoising", Y, D, sigma=sigma))
    residual = (z @ as_tensor(D).T - as_tensor(Y)).norm(dim=-1)
    torch.testing.assert_close(residual, torch.full_like(residual, sigma), rtol=1e-12, atol=0)


def test_basis_pursuit_denoising_per_sample_sigma_and_dictionary():
    rng = np.random.default_rng(16)
    D = rng.standard_normal((B, M, K)) / np.sqrt(M)
    Y = rng.standard_normal((B, M))
    sigma = np.linspace(0.1, 1.0, B)
    z, info = run(ib.BasisPursuitDenoising(as_tensor(sigma)), as_tensor(Y), as_tensor(D))
    check(z, info, reference("basis_pursuit_denoising", Y, D, sigma=sigma))


def test_basis_pursuit_denoising_large_sigma_gives_zero():
    Y, D = random_problem(M, K, B, seed=17)
    sigma = float(np.linalg.norm(Y, axis=1).max()) * 1.01
    z, info = run(ib.BasisPursuitDenoising(sigma), as_tensor(Y), as_tensor(D))
    assert bool((z == 0).all())
    assert bool(info.converged.all())


GAP_KINDS = {
    "lasso": (lambda: ib.Lasso(0.2), False),
    "unpenalised_atom": (lambda: ib.Lasso(0.2, weights=as_tensor(np.r_[0.0, np.ones(K - 1)])), False),
    "nonneg": (lambda: ib.Lasso(0.2, nonneg=True), False),
    "group_lasso": (lambda: ib.GroupLasso(0.3, GROUPS), False),
    "sparse_group_lasso": (lambda: ib.SparseGroupLasso(0.3, GROUPS, 0.5), False),
    "elastic_net_unpenalised_atom": (
        lambda: ib.ElasticNet(0.2, 0.3, weights=as_tensor(np.r_[0.0, np.ones(K - 1)])),
        True,
    ),
}


@pytest.mark.parametrize("name", list(GAP_KINDS))
def test_reported_gap_is_at_rounding_level(name):
    make, skip_oracle = GAP_KINDS[name]
    Y, D = random_problem(M, K, B, seed=18)
    problem = make()
    z, info = run(problem, as_tensor(Y), as_tensor(D))
    assert float(info.gap.max()) < 1e-13
    if not skip_oracle:
        # The problem's own oracle agrees. (For the elastic net with an
        # unpenalised atom it does not give a valid bound, so it is skipped.)
        oracle = problem.duality_gap(z, as_tensor(Y), as_tensor(D))
        torch.testing.assert_close(info.gap, oracle, rtol=0, atol=1e-14)


def test_basis_pursuit_denoising_signal_off_the_range():
    # A tall D: y has a component of norm 0.3 off range(D), inside sigma = 0.5.
    rng = np.random.default_rng(19)
    D = rng.standard_normal((12, 6))
    Q, _ = np.linalg.qr(D, mode="complete")
    Y = rng.standard_normal((3, 6)) @ D.T + 0.3 * Q[:, 6]
    z, info = run(ib.BasisPursuitDenoising(0.5), as_tensor(Y), as_tensor(D))
    check(z, info, reference("basis_pursuit_denoising", Y, D, sigma=0.5))
    residual = (z @ as_tensor(D).T - as_tensor(Y)).norm(dim=-1)
    torch.testing.assert_close(residual, torch.full_like(residual, 0.5), rtol=1e-12, atol=0)
