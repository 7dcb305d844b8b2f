"""The second methods, each run on its own: path following and the constrained fallbacks.

In a normal solve they only see the samples the first method could not
certify, so they are checked here directly against the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import implicit_basis as ib
from implicit_basis.solvers import constrained
from implicit_basis.solvers.continuation import follow_path
from implicit_basis.solvers.operator import DictionaryOperator
from implicit_basis.solvers.penalties import penalty_for
from implicit_basis.solvers.settings import default_settings
from tests.solvers.helpers import EXACT, as_tensor, random_problem, reference

M, K, B = 20, 50, 4
SETTINGS = default_settings(torch.float64, None, None)


def path_solution(problem, Y, D):
    y, Dt = as_tensor(Y), as_tensor(D)
    params = problem.resolve(B, K, torch.float64, y.device)
    penalty = penalty_for(problem.kind, params)
    op = DictionaryOperator(Dt, B)
    c = op.rmatvec(y)
    scale = c.abs().amax(-1, keepdim=True)
    step = (1.0 / op.squared_norm()).unsqueeze(-1)
    return follow_path(
        penalty, y, op, c, scale, step,
        rounds=SETTINGS.polish_rounds, kkt_rtol=SETTINGS.kkt_rtol, tie_rtol=SETTINGS.tie_rtol, cap=K,
    )


@pytest.mark.parametrize(
    ("problem", "params"),
    [
        (ib.Lasso(0.05), {"lam": 0.05}),
        (ib.Lasso(0.05, nonneg=True), {"lam": 0.05, "nonneg": True}),
        (ib.ElasticNet(0.05, 0.2), {"lam": 0.05, "l2": 0.2}),
    ],
)
def test_homotopy_matches_reference(problem, params):
    Y, D = random_problem(M, K, B, seed=60)
    z, accepted, _, steps = path_solution(problem, Y, D)
    assert bool(accepted.all())
    torch.testing.assert_close(z, as_tensor(reference(problem.kind, Y, D, **params)), rtol=0, atol=EXACT)
    assert bool((steps > 1).all())


def test_homotopy_with_unpenalised_and_forced_atoms():
    Y, D = random_problem(M, K, B, seed=61)
    weights = np.ones(K)
    weights[[0, 5]] = 0.0
    weights[[1, 6]] = np.inf
    problem = ib.Lasso(0.05, weights=as_tensor(weights))
    z, accepted, _, _ = path_solution(problem, Y, D)
    assert bool(accepted.all())
    torch.testing.assert_close(z, as_tensor(reference("lasso", Y, D, lam=0.05, weights=weights)), rtol=0, atol=EXACT)


def test_staged_group_path_matches_reference():
    Y, D = random_problem(M, K, B, seed=62)
    problem = ib.SparseGroupLasso(0.1, [5] * 10, 0.5)
    z, accepted, _, _ = path_solution(problem, Y, D)
    assert bool(accepted.all())
    expected = reference("sparse_group_lasso", Y, D, lam=0.1, groups=[5] * 10, l1_ratio=0.5)
    torch.testing.assert_close(z, as_tensor(expected), rtol=0, atol=EXACT)


def test_bregman_iteration_matches_reference():
    Y, D = random_problem(M, K, B, seed=63, noise=0.02)
    z, converged, gap, _, _ = constrained._bregman(as_tensor(Y), DictionaryOperator(as_tensor(D), B), SETTINGS, None)
    assert bool(converged.all())
    torch.testing.assert_close(z, as_tensor(reference("basis_pursuit", Y, D)), rtol=0, atol=EXACT)
    assert float(gap.max()) < 1e-12


def test_denoising_root_find_matches_reference():
    Y, D = random_problem(M, K, B, seed=64)
    sigma = torch.full((B,), 0.2, dtype=torch.float64)
    op = DictionaryOperator(as_tensor(D), B)
    z, converged, gap, _, _ = constrained._root_find(as_tensor(Y), op, sigma, SETTINGS, None)
    assert bool(converged.all())
    torch.testing.assert_close(z, as_tensor(reference("basis_pursuit_denoising", Y, D, sigma=0.2)), rtol=0, atol=EXACT)


def test_linear_program_matches_reference():
    Y, D = random_problem(M, K, B, seed=65, noise=0.02)
    op = DictionaryOperator(as_tensor(D), B)
    z, ok, _, nu = constrained._linear_program(as_tensor(Y), op, SETTINGS)
    assert bool(ok.all())
    torch.testing.assert_close(z, as_tensor(reference("basis_pursuit", Y, D)), rtol=0, atol=EXACT)
    assert float(op.rmatvec(nu).abs().max()) <= 1 + 1e-9


def near_sparse_signal():
    # y a little off the span of a 3-atom support: the solution path crowds
    # its breakpoints below 1e-7 lam_max and cannot certify its end.
    generator = torch.Generator().manual_seed(24)
    D = torch.randn(12, 24, generator=generator, dtype=torch.float64)
    D = D / D.norm(dim=0)
    x = torch.zeros(24, dtype=torch.float64)
    x[[1, 5, 9]] = torch.tensor([1.0, -0.7, 0.4], dtype=torch.float64)
    y = D @ x
    y[0] -= 1e-6
    return y, D


def test_basis_pursuit_near_sparse_signal():
    y, D = near_sparse_signal()
    z, info = ib.sparse_code(y, D, ib.BasisPursuit(), return_info=True)
    assert bool(info.converged)
    assert float(info.gap) < 1e-12
    # The Clarabel reference cannot be polished here, so check optimality
    # directly: exact feasibility, and on the square support (12 atoms, m =
    # 12) the unique dual point D_S^{-T} sign(z_S) satisfies |D^T nu| <= 1.
    support = z != 0
    assert int(support.sum()) == 12
    assert float((D @ z - y).norm()) < 1e-13
    nu = torch.linalg.solve(D[:, support].T, torch.sign(z[support]))
    assert float((D.T @ nu).abs().max()) <= 1 + 1e-9


def test_basis_pursuit_sparse_code_is_degenerate():
    generator = torch.Generator().manual_seed(25)
    D = torch.randn(12, 24, generator=generator, dtype=torch.float64)
    D = D / D.norm(dim=0)
    x = torch.zeros(24, dtype=torch.float64)
    x[[2, 7]] = torch.tensor([0.9, -0.5], dtype=torch.float64)
    generic = torch.randn(12, generator=generator, dtype=torch.float64)

    _, info = ib.sparse_code(torch.stack([D @ x, generic]), D, ib.BasisPursuit(), return_info=True)
    assert bool(info.converged.all())
    # Two atoms for a rank-12 D: moving y off their span changes the support.
    assert bool(info.degenerate[0])
    assert int(info.support[1].sum()) == 12
    assert not bool(info.degenerate[1])


def test_basis_pursuit_fits_rounding_exactly():
    # y off the span of a 4-atom support by 1e-8: the exact solution uses m
    # atoms, most of them of order 1e-8, and all of them are needed.
    generator = torch.Generator().manual_seed(26)
    m, k = 30, 60
    D = torch.randn(m, k, generator=generator, dtype=torch.float64)
    D = D / D.norm(dim=0)
    x = torch.zeros(3, k, dtype=torch.float64)
    for b in range(3):
        x[b, torch.randperm(k, generator=generator)[:4]] = torch.randn(4, generator=generator, dtype=torch.float64)
    y = x @ D.T + 1e-8 * torch.randn(3, m, generator=generator, dtype=torch.float64)

    z, info = ib.sparse_code(y, D, ib.BasisPursuit(), return_info=True)
    assert bool(info.converged.all())
    for b in range(3):
        support = z[b] != 0
        assert int(support.sum()) == m
        assert float((D @ z[b] - y[b]).norm()) < 1e-13
        nu = torch.linalg.solve(D[:, support].T, torch.sign(z[b, support]))
        assert float((D.T @ nu).abs().max()) <= 1 + 1e-9
