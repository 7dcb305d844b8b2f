"""Degenerate inputs: finite, documented results and the degenerate flag, never NaN."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

import implicit_basis as ib
from tests.solvers.helpers import EXACT, as_tensor, random_problem, reference, run

M, K, B = 20, 50, 4
GROUPS = [5] * 10

ALL_KINDS = {
    "lasso": lambda: ib.Lasso(0.2),
    "nonneg": lambda: ib.Lasso(0.2, nonneg=True),
    "elastic_net": lambda: ib.ElasticNet(0.2, 0.1),
    "group_lasso": lambda: ib.GroupLasso(0.3, GROUPS),
    "sparse_group_lasso": lambda: ib.SparseGroupLasso(0.3, GROUPS, 0.5),
    "basis_pursuit": lambda: ib.BasisPursuit(),
    "basis_pursuit_denoising": lambda: ib.BasisPursuitDenoising(0.1),
}


@pytest.mark.parametrize("name", list(ALL_KINDS))
def test_zero_signal_gives_zero_code(name):
    _, D = random_problem(M, K, B, seed=30)
    z, info = run(ALL_KINDS[name](), torch.zeros(B, M, dtype=torch.float64), as_tensor(D))
    assert bool((z == 0).all())
    assert bool(info.converged.all())


@pytest.mark.parametrize("name", ["lasso", "nonneg", "elastic_net", "group_lasso", "sparse_group_lasso"])
def test_above_lam_max_exact_zero(name):
    Y, D = random_problem(M, K, B, seed=31)
    lam_max = ib.lam_max(as_tensor(Y), as_tensor(D), ALL_KINDS[name]())
    scaled = {
        "lasso": lambda: ib.Lasso(lam_max * 1.01),
        "nonneg": lambda: ib.Lasso(lam_max * 1.01, nonneg=True),
        "elastic_net": lambda: ib.ElasticNet(lam_max * 1.01, 0.1),
        "group_lasso": lambda: ib.GroupLasso(lam_max * 1.01, GROUPS),
        "sparse_group_lasso": lambda: ib.SparseGroupLasso(lam_max * 1.01, GROUPS, 0.5),
    }[name]()
    z, info = run(scaled, as_tensor(Y), as_tensor(D))
    assert bool((z == 0).all())
    assert bool((info.iterations == 0).all())
    assert not bool(info.degenerate.any())


def test_zero_atoms_get_zero_codes():
    Y, D = random_problem(M, K, B, seed=32)
    D[:, [4, 9]] = 0.0
    weights = np.ones(K)
    weights[9] = 0.0  # an unpenalised zero atom makes the support system singular
    z, info = run(ib.Lasso(0.1, weights=as_tensor(weights)), as_tensor(Y), as_tensor(D))
    assert not bool(torch.isnan(z).any())
    assert bool((z[:, [4, 9]] == 0).all())
    nonzero_atoms = [j for j in range(K) if j not in (4, 9)]
    expected = reference("lasso", Y, D[:, nonzero_atoms], lam=0.1, weights=weights[nonzero_atoms])
    torch.testing.assert_close(z[:, nonzero_atoms], as_tensor(expected), rtol=0, atol=EXACT)
    assert bool(info.degenerate.all())


def test_zero_dictionary_gives_zero_code():
    Y, _ = random_problem(M, K, B, seed=33)
    z, info = run(ib.Lasso(0.1), as_tensor(Y), torch.zeros(M, K, dtype=torch.float64))
    assert bool((z == 0).all())
    assert bool(info.converged.all())


def test_duplicate_atoms_split_evenly_and_flag():
    Y, D = random_problem(M, K, B, seed=34)
    D_double = np.concatenate([D, D[:, :1]], axis=1)
    z, info = run(ib.Lasso(0.1), as_tensor(Y), as_tensor(D_double))
    z_single, _ = run(ib.Lasso(0.1), as_tensor(Y), as_tensor(D))
    assert not bool(torch.isnan(z).any())
    # The minimum-norm solution shares the code of the atom equally between its copies.
    torch.testing.assert_close(z[:, 0], z[:, K], rtol=0, atol=1e-12)
    torch.testing.assert_close(z[:, 0] + z[:, K], z_single[:, 0], rtol=0, atol=1e-10)
    torch.testing.assert_close(z[:, 1:K], z_single[:, 1:], rtol=0, atol=1e-10)
    active = z_single[:, 0] != 0
    assert torch.equal(info.degenerate, active)


def test_more_active_atoms_than_samples_elastic_net():
    rng = np.random.default_rng(35)
    D = rng.standard_normal((5, 40)) / np.sqrt(5)
    Y = rng.standard_normal((3, 5))
    z, info = run(ib.ElasticNet(0.01, 1.0), as_tensor(Y), as_tensor(D))
    expected = as_tensor(reference("elastic_net", Y, D, lam=0.01, l2=1.0))
    assert int((expected != 0).sum(-1).min()) > 5
    torch.testing.assert_close(z, expected, rtol=0, atol=EXACT)
    assert torch.equal(z == 0, expected == 0)


def test_more_copies_than_samples_lasso():
    rng = np.random.default_rng(36)
    A = rng.standard_normal((4, 4))
    D = np.concatenate([A, A, A], axis=1)
    y = rng.standard_normal(4)
    z, info = run(ib.Lasso(0.01), as_tensor(y), as_tensor(D))
    z_single, _ = run(ib.Lasso(0.01), as_tensor(y), as_tensor(A))
    assert int((z != 0).sum()) == 12
    torch.testing.assert_close(z[0].reshape(3, 4).sum(0), z_single[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(z[0, :4], z[0, 4:8], rtol=0, atol=1e-12)
    assert bool(info.degenerate[0])
    assert bool(info.converged[0])


def test_nonneg_zero_weight_is_nnls():
    rng = np.random.default_rng(37)
    D = rng.standard_normal((30, 8))
    y = rng.standard_normal(30)
    z, info = run(ib.Lasso(0.0, nonneg=True), as_tensor(y), as_tensor(D))
    expected, _ = scipy.optimize.nnls(D, y)
    torch.testing.assert_close(z[0], as_tensor(expected), rtol=0, atol=1e-12)
    assert bool(info.converged[0])


def test_group_at_threshold_is_zero_and_degenerate():
    D = np.eye(4)
    y = np.array([3.0, 4.0, 0.6, 0.8])  # group norms 5 and 1
    problem = ib.GroupLasso(1.0, [2, 2], weights=as_tensor([1.0, 1.0]))
    z, info = run(problem, as_tensor(y), as_tensor(D))
    expected = as_tensor([3.0 * 0.8, 4.0 * 0.8, 0.0, 0.0])
    torch.testing.assert_close(z[0], expected, rtol=0, atol=1e-14)
    assert bool((z[0, 2:] == 0).all())
    assert bool(info.degenerate[0])
