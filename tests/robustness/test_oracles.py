"""The problems' oracles and proximal steps at the edges of their domains.

Each test pins a fault found by the robustness tests: a duality gap, a
residual, ``lam_max`` or a derivative that was wrong at an edge of the domain
(``sigma = 0``, unpenalised atoms of a non-negative code, infinite weights,
``tau = 0``). Values are checked against closed forms or the reference
solver.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import implicit_basis as ib
from implicit_basis.coding.prox import prox_group_l2, prox_l1
from tests.reference import reference_solve
from tests.robustness import cases
from tests.robustness.cases import F64, t

# ---------------------------------------------------------------------------
# Basis pursuit denoising with sigma = 0


def one_row():
    y = t([[0.0993489]])
    D = t([[0.12573022, -0.13210486, 0.64042265, 0.10490012]])
    return y, D


def test_denoising_sigma_zero_oracles():
    """With sigma = 0 the residual is zero: the dual point comes from the support's certificate."""
    y, D = one_row()
    problem = ib.BasisPursuitDenoising(0.0)
    z = ib.sparse_code(y, D, problem)
    assert_close(z, ib.sparse_code(y, D, ib.BasisPursuit()), rtol=0, atol=1e-15)
    assert float(problem.duality_gap(z, y, D)) <= 1e-14
    assert float(problem.residual(z, y, D)) <= 1e-14


def test_denoising_sigma_zero_cvxpylayers():
    D, y_ok, _ = cases.c08()
    z = ib.sparse_code(t(y_ok), t(D), ib.BasisPursuitDenoising(0.0), backend="cvxpylayers")
    assert_close(z, t(cases.C08_CODE), rtol=0, atol=1e-6)


def test_denoising_gap_positive_off_optimum():
    y, D = one_row()
    problem = ib.BasisPursuitDenoising(0.0)
    z = ib.sparse_code(y, D, problem)
    assert float(problem.duality_gap(2 * z, y, D)) > 0.1


# ---------------------------------------------------------------------------
# Non-negative codes with unpenalised atoms


def nonneg_free():
    """Return (y, D, weights) where the unpenalised atom 0 ends at zero with a negative correlation."""
    rng = np.random.default_rng(0)
    D = t(rng.standard_normal((4, 5)))
    y = t(rng.standard_normal(4))
    weights = t([0.0, 1.0, 1.0, 1.0, 1.0])
    return y, D, weights


@pytest.mark.parametrize("l2", [None, 0.3])
def test_nonneg_unpenalised_gap_zero_at_optimum(l2):
    """An unpenalised atom at zero with a negative correlation is optimal: the gap is ~0, not large."""
    y, D, weights = nonneg_free()
    if l2 is None:
        problem = ib.Lasso(0.1, weights=weights, nonneg=True)
    else:
        problem = ib.ElasticNet(0.1, l2, weights=weights, nonneg=True)
    z, info = ib.sparse_code(y, D, problem, return_info=True)
    assert float(z[0]) == 0.0
    assert float(D[:, 0] @ (y - D @ z) - (0.0 if l2 is None else l2 * z[0])) < -1e-3
    assert float(problem.residual(z, y, D)) <= 1e-14
    assert float(problem.duality_gap(z, y, D)) <= 1e-14
    assert float(info.gap) <= 1e-14


def test_nonneg_unpenalised_cvxpylayers():
    y, D, weights = nonneg_free()
    problem = ib.Lasso(0.1, weights=weights, nonneg=True)
    z = ib.sparse_code(y, D, problem, backend="cvxpylayers")
    expected = reference_solve("lasso", y.numpy(), D.numpy(), lam=0.1, weights=weights.numpy(), nonneg=True).z
    assert_close(z, t(expected), rtol=0, atol=1e-8)


def test_lam_max_nonneg_unpenalised_is_nonneg_fit():
    """The unpenalised atoms are fitted with non-negative coefficients before the correlations."""
    D = t([[1.0, 0.0, -0.5], [0.0, 1.0, 0.5]])
    y = t([-1.0, 0.6])
    weights = t([0.0, 1.0, 1.0])
    # The non-negative fit on atom 0 is 0 (its correlation is negative), so r = y and
    # lam_max = max(|0.6|, |0.5 + 0.3|) = 0.8; a least-squares fit would give 0.6.
    lam_max = ib.lam_max(y, D, ib.Lasso(0.0, weights=weights, nonneg=True))
    assert float(lam_max) == pytest.approx(0.8, abs=1e-15)
    below = ib.sparse_code(y, D, ib.Lasso(0.99 * float(lam_max), weights=weights, nonneg=True))
    above = ib.sparse_code(y, D, ib.Lasso(1.01 * float(lam_max), weights=weights, nonneg=True))
    assert float(below[2]) > 0
    assert bool((above[1:] == 0).all())


def test_lam_max_elastic_net_unpenalised_is_ridge_fit():
    """With unpenalised atoms the elastic net's lam_max uses the ridge fit, not least squares."""
    rng = np.random.default_rng(0)
    D, y = rng.standard_normal((5, 6)), rng.standard_normal(5)
    weights = t([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    F = D[:, :2]
    c = np.linalg.solve(F.T @ F + 1.0 * np.eye(2), F.T @ y)
    expected = np.abs(D[:, 2:].T @ (y - F @ c)).max()
    lam_max = float(ib.lam_max(t(y), t(D), ib.ElasticNet(0.0, 1.0, weights=weights)))
    assert lam_max == pytest.approx(expected, rel=1e-12)
    below = ib.sparse_code(t(y), t(D), ib.ElasticNet(0.99 * lam_max, 1.0, weights=weights))
    above = ib.sparse_code(t(y), t(D), ib.ElasticNet(1.01 * lam_max, 1.0, weights=weights))
    assert bool((below[2:] != 0).any())
    assert bool((above[2:] == 0).all())


def test_lam_max_differentiable_with_nonneg_fit():
    y, D, weights = nonneg_free()
    y = y.clone().requires_grad_(True)
    lam_max = ib.lam_max(y, D, ib.Lasso(0.0, weights=weights, nonneg=True))
    (grad,) = torch.autograd.grad(lam_max, y)
    assert bool(torch.isfinite(grad).all())


# ---------------------------------------------------------------------------
# Infinite weights and zero thresholds under autograd


def test_objective_gradient_with_forced_atom():
    """The objective's gradient at a forced-zero atom is the smooth part's, not NaN."""
    rng = np.random.default_rng(0)
    D, y = t(rng.standard_normal((4, 4))), t(rng.standard_normal(4))
    problem = ib.Lasso(0.5, weights=[math.inf, 1.0, 1.0, 1.0])
    z = ib.sparse_code(y, D, problem).clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(problem.objective(z, y, D), z)
    smooth = D.T @ (D @ z.detach() - y)
    assert float(z[0].detach()) == 0.0
    assert_close(grad[0], smooth[0], rtol=1e-14, atol=0)
    assert float(problem.objective(torch.ones(4, dtype=F64), y, D)) == math.inf


def test_prox_l1_threshold_derivative_at_zero():
    """d prox / d tau = -sign(v) on the support, at tau = 0 too (negative entries included)."""
    v = t([2.0, -1.5, 0.5, -0.5], requires_grad=True)
    tau = t(0.0, requires_grad=True)
    out = prox_l1(v, tau)
    rows = [torch.autograd.grad(out[i], tau, retain_graph=True)[0] for i in range(4)]
    assert torch.equal(torch.stack(rows), t([-1.0, 1.0, -1.0, 1.0]))


def test_prox_l1_derivative_at_threshold_is_zero():
    v = t([0.5, -0.5, 0.7], requires_grad=True)
    out = prox_l1(v, t(0.5))
    (grad,) = torch.autograd.grad(out.sum(), v)
    assert torch.equal(grad, t([0.0, 0.0, 1.0]))


def test_prox_group_infinite_threshold_gradient():
    """A forced group (tau_g = inf) maps to zero with zero, finite gradients."""
    v = t([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
    tau = t([[0.5, math.inf]], requires_grad=True)
    index = torch.tensor([0, 0, 1, 1])
    out = prox_group_l2(v, tau, index, 2)
    grad_v, grad_tau = torch.autograd.grad(out.sum(), [v, tau])
    assert bool((out[0, 2:] == 0).all())
    assert bool(torch.isfinite(grad_v).all())
    assert bool(torch.isfinite(grad_tau).all())
    assert bool((grad_v[0, 2:] == 0).all())
    assert float(grad_tau[0, 1]) == 0.0


def test_weighted_lam_gradient_with_forced_first_atom():
    """A batch whose supports differ in size, with atom 0 forced to zero: the lam gradient is finite."""
    rng = np.random.default_rng(3)
    D = t(rng.standard_normal((5, 6)))
    Y = t(rng.standard_normal((3, 5)))
    lam = t([0.05, 0.5, 1.0], requires_grad=True)
    weights = t([math.inf, 1.0, 1.0, 2.0, 0.5, 1.0], requires_grad=True)
    z = ib.sparse_code(Y, D, ib.Lasso(lam, weights=weights))
    assert len({int(n) for n in (z != 0).sum(-1)}) > 1
    g_lam, g_w = torch.autograd.grad(z.sum(), [lam, weights])
    assert bool(torch.isfinite(g_lam).all())
    assert bool(torch.isfinite(g_w).all())
    for b in range(3):
        lam_b = t(float(lam[b].detach()), requires_grad=True)
        z_b = ib.sparse_code(Y[b], D, ib.Lasso(lam_b, weights=weights.detach()))
        (g_b,) = torch.autograd.grad(z_b.sum(), lam_b)
        assert_close(g_lam[b], g_b, rtol=1e-12, atol=0)
