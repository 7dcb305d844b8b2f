"""Float32 inputs: iterated in float32, polished in float64, returned in float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import implicit_basis as ib
from tests.solvers.helpers import random_problem, reference, run

M, K, B = 20, 50, 4
GROUPS = [5] * 10

KINDS = {
    "lasso": (lambda: ib.Lasso(0.2), {"lam": 0.2}),
    "nonneg": (lambda: ib.Lasso(0.1, nonneg=True), {"lam": 0.1, "nonneg": True}),
    "elastic_net": (lambda: ib.ElasticNet(0.2, 0.1), {"lam": 0.2, "l2": 0.1}),
    "group_lasso": (lambda: ib.GroupLasso(0.3, GROUPS), {"lam": 0.3, "groups": GROUPS}),
    "sparse_group_lasso": (
        lambda: ib.SparseGroupLasso(0.3, GROUPS, 0.5),
        {"lam": 0.3, "groups": GROUPS, "l1_ratio": 0.5},
    ),
    "basis_pursuit_denoising": (lambda: ib.BasisPursuitDenoising(0.1), {"sigma": 0.1}),
}


def float32_problem(seed):
    Y, D = random_problem(M, K, B, seed=seed)
    return torch.tensor(Y, dtype=torch.float32), torch.tensor(D, dtype=torch.float32)


@pytest.mark.parametrize("name", list(KINDS))
def test_float32_matches_float64_reference(name):
    make, params = KINDS[name]
    y, D = float32_problem(40)
    z, info = run(make(), y, D)
    assert z.dtype == torch.float32
    assert info.gap.dtype == torch.float32
    kind = make().kind
    expected = reference(kind, y.double().numpy(), D.double().numpy(), **params)
    expected = torch.tensor(expected, dtype=torch.float32)
    torch.testing.assert_close(z, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(z == 0, expected == 0)
    assert bool(info.converged.all())


EXACT_IN_FLOAT32 = {
    "lasso": lambda: ib.Lasso(0.25),
    "group_lasso": lambda: ib.GroupLasso(0.375, GROUPS, weights=[2.0] * 10),
    "basis_pursuit_denoising": lambda: ib.BasisPursuitDenoising(0.125),
}


@pytest.mark.parametrize("name", list(EXACT_IN_FLOAT32))
def test_float32_equals_rounded_float64_solve(name):
    # The polish solves the float32 data in float64, so the float32 code is
    # the float64 code of the same data, rounded. The parameters are exact
    # in float32, so both solves see the same problem.
    make = EXACT_IN_FLOAT32[name]
    y, D = float32_problem(41)
    z32, _ = run(make(), y, D)
    z64, _ = run(make(), y.double(), D.double())
    torch.testing.assert_close(z32, z64.float(), rtol=2e-7, atol=1e-12)


def test_float32_survives_extreme_scale():
    y, D = float32_problem(42)
    c = np.float32(2.0**40)
    z, info = run(ib.Lasso(0.2 * float(c) ** 2), y * c, D * c)
    z_plain, _ = run(ib.Lasso(0.2), y, D)
    assert not bool(torch.isnan(z).any())
    torch.testing.assert_close(z, z_plain, rtol=1e-6, atol=1e-7)
    assert bool(info.converged.all())


def test_float32_basis_pursuit_is_denoising_at_rounding():
    # Float32 data meets D z = y to 8 eps ||y||: the code is the float64
    # denoising solution with that sigma, rounded. (The Clarabel reference
    # cannot be polished at so small a sigma; the denoising solver is
    # checked against it at ordinary sigmas.)
    y, D = float32_problem(40)
    z, info = run(ib.BasisPursuit(), y, D)
    assert z.dtype == torch.float32
    assert bool(info.converged.all())
    budget = 8 * torch.finfo(torch.float32).eps * y.double().norm(dim=-1)
    expected, expected_info = run(ib.BasisPursuitDenoising(budget), y.double(), D.double())
    assert bool(expected_info.converged.all())
    torch.testing.assert_close(z, expected.float(), rtol=2e-7, atol=1e-12)
    residual = (expected @ D.double().T - y.double()).norm(dim=-1)
    torch.testing.assert_close(residual, budget, rtol=1e-8, atol=0)


def test_float32_basis_pursuit_recovers_sparse_code():
    # y = D x computed in float32 is off span(D_S) by rounding. Exact
    # equality would fit that rounding with up to m atoms; the rounding
    # budget keeps the sparse code.
    rng = np.random.default_rng(43)
    m, k, nnz, B = 60, 120, 8, 6
    D = rng.standard_normal((m, k))
    D /= np.linalg.norm(D, axis=0)
    X = np.zeros((B, k))
    for b in range(B):
        X[b, rng.choice(k, nnz, replace=False)] = rng.standard_normal(nnz)
    D32 = torch.tensor(D, dtype=torch.float32)
    x = torch.tensor(X, dtype=torch.float32)
    y = x @ D32.T

    z, info = run(ib.BasisPursuit(), y, D32)
    assert bool(info.converged.all())
    # Atoms that the path added on the way keep entries of the order of the
    # rounding. The code is still sparse, not the dense fit of exact equality.
    assert torch.equal(z.abs() > 1e-4, x != 0)
    assert int((z != 0).sum(-1).max()) <= 2 * nnz
    torch.testing.assert_close(z, x, rtol=0, atol=1e-5)


def test_float32_basis_pursuit_falls_back_to_exact():
    # The rounding-budget path misses a breakpoint on some compressed-sensing
    # samples; those are solved with exact equality instead, and converge.
    generator = torch.Generator().manual_seed(5)
    m, k = 32, 70
    D = torch.randn(m, k, generator=generator)
    D = D / D.norm(dim=0)
    x = torch.zeros(8, k)
    for b in range(8):
        x[b, torch.randperm(k, generator=generator)[:7]] = torch.randn(7, generator=generator)
    y = x @ D.T

    z, info = run(ib.BasisPursuit(), y, D)
    assert bool(info.converged.all())
    residual = (z.double() @ D.double().T - y.double()).norm(dim=-1) / y.double().norm(dim=-1)
    assert float(residual.max()) < 1e-5
