"""The published cases with their known values (six significant digits where given).

``sn`` is ``rng.standard_normal`` with ``rng = np.random.default_rng(seed)``,
drawn in the order written.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import implicit_basis as ib
from tests.solvers.helpers import EXACT, as_tensor, reference, run

SIX_DIGITS = 1e-6


def c04():
    rng = np.random.default_rng(4)
    D = rng.standard_normal((8, 12))
    y = rng.standard_normal(8)
    return y, D


def test_c04_lam_max_value():
    y, D = c04()
    lam_max = ib.lam_max(as_tensor(y), as_tensor(D))
    torch.testing.assert_close(lam_max, torch.tensor(4.0523492, dtype=torch.float64), rtol=0, atol=1e-7)


def test_c04_above_lam_max_is_exactly_zero():
    y, D = c04()
    z, info = run(ib.Lasso(1.5 * 4.052349207613031), as_tensor(y), as_tensor(D))
    assert bool((z == 0).all())
    assert int(info.iterations[0]) == 0
    assert not bool(info.degenerate[0])


def test_c04_at_lam_max_is_zero_and_degenerate():
    y, D = c04()
    lam_max = float(np.abs(D.T @ y).max())
    z, info = run(ib.Lasso(lam_max), as_tensor(y), as_tensor(D))
    assert float(z.abs().max()) <= 1e-10
    assert bool(info.degenerate[0])


def test_c04_just_below_lam_max_one_atom():
    y, D = c04()
    lam_max = float(np.abs(D.T @ y).max())
    z, info = run(ib.Lasso(0.999 * lam_max), as_tensor(y), as_tensor(D))
    assert torch.equal(info.support[0], torch.arange(12) == 7)
    torch.testing.assert_close(z[0, 7], torch.tensor(-4.852180e-4, dtype=torch.float64), rtol=1e-6, atol=0)
    # Closed form on one atom: z_7 = -(lam_max - lam) / ||d_7||^2; lam_max - lam
    # cancels three digits, so rtol is 1e-11.
    closed = -(0.001 * lam_max) / float(D[:, 7] @ D[:, 7])
    torch.testing.assert_close(z[0, 7], torch.tensor(closed, dtype=torch.float64), rtol=1e-11, atol=0)


C05_Y = np.array([2.0, -1.5, 0.5, 0.25, 0.1, -0.3, 1.0, -0.5])
C05_Z = np.array([1.5, -1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0])


def test_c05_identity_soft_threshold():
    z, info = run(ib.Lasso(0.5), as_tensor(C05_Y), as_tensor(np.eye(8)))
    assert torch.equal(z[0], as_tensor(C05_Z))
    assert bool(info.degenerate[0])


def test_c05_orthogonal_ties_exactly_zero():
    Q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((8, 8)))
    z, info = run(ib.Lasso(0.5), as_tensor(Q @ C05_Y), as_tensor(Q))
    assert not bool(torch.isnan(z).any())
    assert torch.equal(z[0] == 0, as_tensor(C05_Z) == 0)
    torch.testing.assert_close(z[0], as_tensor(C05_Z), rtol=0, atol=1e-14)
    assert bool(info.degenerate[0])


def test_c07_wide_random_support_and_values():
    rng = np.random.default_rng(7)
    D = rng.standard_normal((30, 300)) / np.sqrt(30)
    x0 = np.zeros(300)
    x0[[10, 70, 150, 260]] = [1.0, -1.0, 0.7, -0.5]
    y = D @ x0 + 0.01 * rng.standard_normal(30)
    lam = float(np.abs(D.T @ y).max()) / 5
    assert abs(lam - 0.2430366) < 1e-7
    z, info = run(ib.Lasso(lam), as_tensor(y), as_tensor(D))
    support = torch.zeros(300, dtype=torch.bool)
    support[[10, 70, 150, 260]] = True
    assert torch.equal(info.support[0], support)
    expected = torch.tensor([0.831347, -0.719797, 0.570098, -0.233117], dtype=torch.float64)
    torch.testing.assert_close(z[0, support], expected, rtol=0, atol=SIX_DIGITS)


def c14():
    rng = np.random.default_rng(14)
    D = rng.standard_normal((30, 10))
    y = rng.standard_normal(30)
    D2 = rng.standard_normal((5, 10))
    return y, D, D2


C14_LEAST_SQUARES = [
    -0.049965, 0.118591, 0.098812, -0.135335, 0.242093, -0.187359, -0.538094, 0.178277, -0.202935, -0.065988,
]


def test_c14_zero_weight_is_least_squares():
    y, D, _ = c14()
    z, info = run(ib.Lasso(0.0), as_tensor(y), as_tensor(D))
    torch.testing.assert_close(z[0], as_tensor(C14_LEAST_SQUARES), rtol=0, atol=SIX_DIGITS)
    torch.testing.assert_close(z[0], as_tensor(np.linalg.lstsq(D, y, rcond=None)[0]), rtol=0, atol=1e-13)
    assert not bool(info.degenerate[0])


@pytest.mark.parametrize("lam", [1e-10, 1e-6, 1e-4, 1e-2, 0.1])
def test_c14_small_weights_keep_signs(lam):
    y, D, _ = c14()
    z, _ = run(ib.Lasso(lam), as_tensor(y), as_tensor(D))
    assert torch.equal(torch.sign(z[0]), torch.sign(as_tensor(C14_LEAST_SQUARES)))
    torch.testing.assert_close(z, as_tensor(reference("lasso", y, D, lam=lam)), rtol=0, atol=EXACT)


def c14_wide():
    _, _, D2 = c14()
    x_true = np.zeros(10)
    x_true[[2, 7]] = [1.0, -1.0]
    return D2 @ x_true, D2, x_true


def test_c14_tiny_weight_gives_basis_pursuit_point():
    y2, D2, x_true = c14_wide()
    z, info = run(ib.Lasso(1e-6), as_tensor(y2), as_tensor(D2))
    torch.testing.assert_close(z[0], as_tensor(x_true), rtol=0, atol=1e-6)
    torch.testing.assert_close(z, as_tensor(reference("lasso", y2, D2, lam=1e-6)), rtol=0, atol=EXACT)
    assert bool(info.converged[0])


def test_c14_zero_weight_wide_min_norm():
    # lam = 0 on a wide D has a whole affine set of solutions; the solver
    # returns the minimum-norm one (the pseudo-inverse solution) and flags it.
    y2, D2, _ = c14_wide()
    z, info = run(ib.Lasso(0.0), as_tensor(y2), as_tensor(D2))
    torch.testing.assert_close(z[0], as_tensor(np.linalg.pinv(D2) @ y2), rtol=0, atol=1e-12)
    assert bool(info.degenerate[0])
    assert bool(info.converged[0])


def test_c16_zero_signal_is_exactly_zero():
    rng = np.random.default_rng(16)
    D = rng.standard_normal((5, 8))
    z, info = run(ib.Lasso(0.1), torch.zeros(5, dtype=torch.float64), as_tensor(D))
    assert bool((z == 0).all())
    assert int(info.iterations[0]) == 0


def c23(B):
    rng = np.random.default_rng(23)
    D = rng.standard_normal((20, 50)) / np.sqrt(20)
    X = np.zeros((B, 50))
    noise = np.zeros((B, 20))
    for b in range(B):
        X[b, rng.choice(50, 3, replace=False)] = rng.standard_normal(3)
        noise[b] = 0.01 * rng.standard_normal(20)
    Y = X @ D.T + noise
    lam = 0.1 * np.abs(Y @ D).max(axis=1)
    return Y, D, lam


@pytest.mark.parametrize("B", [1, 64, 256])
def test_c23_batch_matches_per_sample_reference(B):
    Y, D, lam = c23(B)
    z, info = run(ib.Lasso(as_tensor(lam)), as_tensor(Y), as_tensor(D))
    expected = as_tensor(reference("lasso", Y, D, lam=lam))
    torch.testing.assert_close(z, expected, rtol=0, atol=EXACT)
    assert torch.equal(z == 0, expected == 0)
    assert bool(info.converged.all())
