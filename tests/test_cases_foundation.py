"""Published cases of faults in differentiable sparse coding, with their right values.

Each case states its data (``sn`` is ``rng.standard_normal`` with
``rng = np.random.default_rng(seed)``, drawn in the order listed), the
expected numbers to six or more decimals, and what the library must do.
The pass bar: codes within 1e-8 absolute of an independent reference,
gradients within 1e-6 relative, entries off the support exactly 0. The
printed numbers are rounded, so they are compared to their last digit, and
the tight bars are checked against the reference solver
(``tests.reference``), closed forms on the support, or central finite
differences.

These run on the cvxpylayers backend, the one backend that solves every
problem kind today.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import implicit_basis as ib
from tests.reference import reference_solve

BACKEND = "cvxpylayers"
CODE_ATOL = 1e-8
GRAD_RTOL = 1e-6
# The printed numbers have six decimals.
PRINTED = 1e-6


def t(array, requires_grad=False, dtype=torch.float64):
    return torch.tensor(np.asarray(array), dtype=dtype, requires_grad=requires_grad)


def sparse(k, entries):
    z = np.zeros(k)
    for j, value in entries.items():
        z[j] = value
    return z


# ---------------------------------------------------------------------------
# C03: hypergradient of a validation loss with respect to the penalty weight


def c03_data():
    rng = np.random.default_rng(3)
    Xtr, Xval = rng.standard_normal((40, 60)), rng.standard_normal((20, 60))
    beta = sparse(60, {3: 2.0, 17: -1.5, 29: 1.0, 41: 0.8, 55: -0.5})
    ytr = Xtr @ beta + 0.1 * rng.standard_normal(40)
    yval = Xval @ beta + 0.1 * rng.standard_normal(20)
    return Xtr, ytr, Xval, yval


def test_c03_hypergradient():
    Xtr, ytr, Xval, yval = c03_data()
    alpha_max = np.abs(Xtr.T @ ytr).max() / 40
    assert alpha_max == pytest.approx(2.090931, abs=PRINTED)
    alpha = t(alpha_max / 10, requires_grad=True)
    beta = ib.sparse_code(t(ytr), t(Xtr), ib.Lasso(40 * alpha), backend=BACKEND)
    residual = t(Xval) @ beta - t(yval)
    h = (residual @ residual) / (2 * 20)
    (dh,) = torch.autograd.grad(h, alpha)

    support = np.flatnonzero(beta.detach().numpy())
    assert support.tolist() == [3, 17, 29, 41, 55]
    assert float(h.detach()) == pytest.approx(0.1039173, abs=1e-7)
    assert float(dh) == pytest.approx(0.98022536, abs=1e-8)
    assert float(dh * alpha.detach()) == pytest.approx(0.2049583, abs=1e-7)

    # Closed form on the support: d beta_S / d alpha = -40 (X_S^T X_S)^-1 sign(beta_S).
    b = beta.detach().numpy()
    X_S = Xtr[:, support]
    d_beta = -40 * np.linalg.solve(X_S.T @ X_S, np.sign(b[support]))
    expected = (Xval @ b - yval) @ (Xval[:, support] @ d_beta) / 20
    assert abs(float(dh) - expected) <= GRAD_RTOL * abs(expected)


def test_c03_code_matches_reference():
    Xtr, ytr, _, _ = c03_data()
    lam = 40 * np.abs(Xtr.T @ ytr).max() / 40 / 10
    z = ib.sparse_code(t(ytr), t(Xtr), ib.Lasso(lam), backend=BACKEND)
    expected = reference_solve("lasso", ytr, Xtr, lam=lam).z
    np.testing.assert_allclose(z.numpy(), expected, rtol=0, atol=CODE_ATOL)
    np.testing.assert_array_equal(z.numpy() == 0, expected == 0)


# ---------------------------------------------------------------------------
# C08: basis pursuit with y outside range(D)


def c08_data():
    rng = np.random.default_rng(8)
    D = rng.standard_normal((6, 4)) @ rng.standard_normal((4, 10))
    y_bad = rng.standard_normal(6)
    y_ok = D @ sparse(10, {1: 1.0, 6: -2.0})
    return D, y_ok, y_bad


def test_c08_infeasible_names_distance():
    D, _, y_bad = c08_data()
    with pytest.raises(ib.InfeasibleProblemError, match=r"distance of y to range\(D\) 0\.448959") as error:
        ib.sparse_code(t(y_bad), t(D), ib.BasisPursuit(), backend=BACKEND)
    assert error.value.distances[0] == pytest.approx(0.448959, abs=PRINTED)


def test_c08_feasible_control():
    D, y_ok, _ = c08_data()
    y = t(y_ok, requires_grad=True)
    z = ib.sparse_code(y, t(D), ib.BasisPursuit(), backend=BACKEND)
    value = z.abs().sum()
    (grad,) = torch.autograd.grad(value, y)

    expected = [0, 0, 0, 0.060968, -0.281019, 0, -1.469891, 0, 0, -0.210556]
    np.testing.assert_allclose(z.detach().numpy(), expected, rtol=0, atol=PRINTED)
    np.testing.assert_allclose(z.detach().numpy(), reference_solve("basis_pursuit", y_ok, D).z,
                               rtol=0, atol=CODE_ATOL)
    assert float(value.detach()) == pytest.approx(2.0224342, abs=1e-7)
    U = np.linalg.svd(D)[0][:, :4]
    projected = U @ (U.T @ grad.numpy())
    expected_grad = np.array([-0.203911, 0.100739, 0.106664, -0.060296, -0.139482, -0.273142])
    np.testing.assert_allclose(projected, expected_grad, rtol=0, atol=PRINTED)


# ---------------------------------------------------------------------------
# C10: negative, NaN or infinite lam


@pytest.mark.parametrize("lam, shown", [(-0.1, r"-0\.1"), (math.nan, "nan"), (math.inf, "inf")])
def test_c10_lam_domain(lam, shown):
    with pytest.raises(ValueError, match=rf"lam must be a finite value in \[0, inf\); got {shown}"):
        ib.Lasso(lam)


def test_c10_batched_lam_one_bad():
    with pytest.raises(ValueError, match=r"lam must be a finite value in \[0, inf\); got lam\[1\] = -0.1"):
        ib.Lasso(torch.tensor([0.5, -0.1, 0.3]))


def test_c10_inf_documented():
    assert "finite" in ib.Lasso.__doc__
    with pytest.raises(ValueError, match=r"any lam >= lam_max\(y, D\) suffices, so \+inf is not needed"):
        ib.Lasso(math.inf)


# ---------------------------------------------------------------------------
# C11: batching and broadcasting with a shared dictionary


C11_ROWS = [
    {0: 0.369117, 1: -0.112912, 4: -0.181064, 5: 0.398400, 6: -0.146772, 8: 0.248514},
    {2: 0.428473, 5: -0.251805, 6: -0.181558},
    {1: -0.275130, 6: 0.612973, 8: -0.442174, 9: -0.045005},
    {4: 0.292393, 6: 0.304450},
    {1: 0.161567},
]


def c11_data():
    rng = np.random.default_rng(11)
    D = rng.standard_normal((6, 10))
    Y = rng.standard_normal((5, 6))
    lam = np.array([0.05, 0.1, 0.2, 0.4, 0.8]) * np.abs(Y @ D).max(axis=1)
    return D, Y, lam


def test_c11_batch_values_and_gradients():
    D, Y, lam = c11_data()
    np.testing.assert_allclose(lam, [0.104128, 0.281748, 0.974404, 1.643376, 3.194349], atol=PRINTED)
    Y_t, D_t, lam_t = t(Y, True), t(D, True), t(lam, True)
    z = ib.sparse_code(Y_t, D_t, ib.Lasso(lam_t), backend=BACKEND)
    g_Y, g_D, g_lam = torch.autograd.grad(z.sum(), [Y_t, D_t, lam_t])

    assert z.shape == (5, 10)
    expected = np.stack([sparse(10, row) for row in C11_ROWS])
    np.testing.assert_allclose(z.detach().numpy(), expected, rtol=0, atol=PRINTED)
    np.testing.assert_array_equal(z.detach().numpy() == 0, expected == 0)
    for b in range(5):
        reference = reference_solve("lasso", Y[b], D, lam=lam[b]).z
        np.testing.assert_allclose(z[b].detach().numpy(), reference, rtol=0, atol=CODE_ATOL)
    np.testing.assert_allclose(g_lam.numpy(), [-0.333961, 0.188202, 0.764442, -0.255905, -0.202316],
                               atol=PRINTED)
    assert float(g_D.norm()) == pytest.approx(1.185532, abs=PRINTED)
    np.testing.assert_allclose(
        g_D[0].numpy(),
        [-0.047161, 0.154406, -0.189756, 0, 0.049892, 0.081006, 0.253157, 0, -0.053379, 0.032145],
        atol=PRINTED,
    )
    np.testing.assert_allclose(
        g_Y[0].numpy(), [0.104181, 0.470086, -0.644160, -0.150774, -0.215683, -0.065203], atol=PRINTED
    )


def test_c11_lam_gradient_closed_form():
    """dL/dlam_b = -1^T (D_S^T D_S)^-1 sign(z_S) on each row's support."""
    D, Y, lam = c11_data()
    lam_t = t(lam, True)
    z = ib.sparse_code(t(Y), t(D), ib.Lasso(lam_t), backend=BACKEND)
    (g_lam,) = torch.autograd.grad(z.sum(), lam_t)
    for b in range(5):
        S = np.flatnonzero(z[b].detach().numpy())
        sign = np.sign(z[b].detach().numpy()[S])
        expected = -np.ones(len(S)) @ np.linalg.solve(D[:, S].T @ D[:, S], sign)
        assert abs(float(g_lam[b]) - expected) <= GRAD_RTOL * abs(expected)


def test_c11_batch_size_mismatch():
    D, Y, _ = c11_data()
    with pytest.raises(ValueError, match=r"batch sizes do not match \(y: 5, per-sample parameters: 3\)"):
        ib.sparse_code(t(Y), t(D), ib.Lasso(torch.ones(3, dtype=torch.float64)), backend=BACKEND)


def test_c11_empty_batch():
    D, _, _ = c11_data()
    z = ib.sparse_code(torch.zeros(0, 6, dtype=torch.float64), t(D), ib.Lasso(0.5), backend=BACKEND)
    assert z.shape == (0, 10)


def test_c11_two_batch_dimensions():
    D, Y, _ = c11_data()
    Y2 = t(np.stack([Y, Y]))
    with pytest.raises(ValueError, match=r"y must have shape \(m,\) or \(B, m\); got \(2, 5, 6\)"):
        ib.sparse_code(Y2, t(D), ib.Lasso(0.5), backend=BACKEND)


def test_c11_lam_column():
    with pytest.raises(ValueError, match=r"lam must have shape \(\) or \(B,\); got \(5, 1\)"):
        ib.Lasso(torch.ones(5, 1, dtype=torch.float64))


def test_c11_batched_D_unbatched_y():
    D, Y, lam = c11_data()
    rng = np.random.default_rng(0)
    D3 = D + 0.1 * rng.standard_normal((3, 6, 10))
    z = ib.sparse_code(t(Y[0]), t(D3), ib.Lasso(lam[0]), backend=BACKEND)
    assert z.shape == (3, 10)
    for b in range(3):
        expected = reference_solve("lasso", Y[0], D3[b], lam=lam[0]).z
        np.testing.assert_allclose(z[b].numpy(), expected, rtol=0, atol=CODE_ATOL)


# ---------------------------------------------------------------------------
# C12: float32 and half-precision inputs


def c12_data():
    rng = np.random.default_rng(12)
    D = rng.standard_normal((10, 20)).astype(np.float32)
    y = rng.standard_normal(10).astype(np.float32)
    lam = np.float32(0.2 * np.abs(D.astype(np.float64).T @ y.astype(np.float64)).max())
    return D, y, lam


def test_c12_float32():
    D, y, lam = c12_data()
    assert float(lam) == pytest.approx(1.0559897, abs=1e-7)
    y_t = t(y, True, torch.float32)
    D_t = t(D, True, torch.float32)
    lam_t = t(lam, True, torch.float32)
    z = ib.sparse_code(y_t, D_t, ib.Lasso(lam_t), backend=BACKEND)
    z.sum().backward()

    assert z.dtype == torch.float32
    assert y_t.grad.dtype == torch.float32
    assert D_t.grad.dtype == torch.float32
    assert lam_t.grad.dtype == torch.float32
    support = [1, 9, 12, 14, 15, 17, 18]
    assert np.flatnonzero(z.detach().numpy()).tolist() == support
    expected = [0.065765, 0.059540, 0.374046, 0.221034, -0.118433, 0.167539, 0.271591]
    np.testing.assert_allclose(z.detach().numpy()[support], expected, rtol=1e-5, atol=PRINTED)
    reference = reference_solve("lasso", y.astype(np.float64), D.astype(np.float64), lam=float(lam)).z
    np.testing.assert_allclose(z.detach().numpy(), reference, rtol=1e-5, atol=1e-7)


def test_c12_mixed_dtypes():
    D, y, _ = c12_data()
    with pytest.raises(TypeError, match=r"y is torch.float32 but D is torch.float64"):
        ib.sparse_code(t(y, dtype=torch.float32), t(D), ib.Lasso(1.0), backend=BACKEND)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_c12_half_precision(dtype):
    D, y, lam = c12_data()
    y_t = t(y, True, dtype)
    z = ib.sparse_code(y_t, t(D, dtype=dtype), ib.Lasso(float(lam)), backend=BACKEND)
    z.sum().backward()
    assert z.dtype == dtype
    assert y_t.grad.dtype == dtype
    # The inputs themselves are rounded to 8 (bfloat16) or 11 (float16) bits.
    expected = ib.sparse_code(y_t.detach().float(), t(D, dtype=dtype).float(), ib.Lasso(float(lam)),
                              backend=BACKEND)
    assert_close(z.float(), expected, rtol=1e-2, atol=1e-2)


# ---------------------------------------------------------------------------
# C15: NaN or inf in the inputs, and an all-zero atom


def c15_data():
    rng = np.random.default_rng(15)
    D = rng.standard_normal((8, 12))
    y = rng.standard_normal(8)
    lam = 0.3 * np.abs(D.T @ y).max()
    return D, y, lam


def test_c15_nan_in_y():
    D, y, lam = c15_data()
    y[3] = math.nan
    with pytest.raises(ValueError, match=r"y contains non-finite values: y\[3\] = nan"):
        ib.sparse_code(t(y), t(D), ib.Lasso(lam), backend=BACKEND)


def test_c15_inf_in_D():
    D, y, lam = c15_data()
    D[2, 5] = math.inf
    with pytest.raises(ValueError, match=r"D contains non-finite values: D\[2, 5\] = inf"):
        ib.sparse_code(t(y), t(D), ib.Lasso(lam), backend=BACKEND)


def test_c15_nan_in_batch_names_sample():
    D, y, lam = c15_data()
    Y = np.stack([y, y, y])
    Y[1, 3] = math.nan
    with pytest.raises(ValueError, match=r"y contains non-finite values in sample 1: y\[1, 3\] = nan"):
        ib.sparse_code(t(Y), t(D), ib.Lasso(lam), backend=BACKEND)


def test_c15_zero_atom():
    D, y, lam = c15_data()
    assert lam == pytest.approx(1.646823, abs=PRINTED)
    D[:, 5] = 0.0
    D_t = t(D, True)
    y_t = t(y, True)
    z = ib.sparse_code(y_t, D_t, ib.Lasso(lam), backend=BACKEND)
    g_D, g_y = torch.autograd.grad(z.sum(), [D_t, y_t])

    expected = sparse(12, {4: -0.067273, 9: 0.233470, 11: -0.389397})
    np.testing.assert_allclose(z.detach().numpy(), expected, rtol=0, atol=PRINTED)
    np.testing.assert_allclose(z.detach().numpy(), reference_solve("lasso", y, D, lam=lam).z,
                               rtol=0, atol=CODE_ATOL)
    assert float(z[5].detach()) == 0.0
    assert bool((g_D[:, 5] == 0).all())
    assert bool(torch.isfinite(g_D).all())
    assert bool(torch.isfinite(g_y).all())


# ---------------------------------------------------------------------------
# C16: zero signal


def test_c16_zero_signal():
    rng = np.random.default_rng(16)
    D_t = t(rng.standard_normal((5, 8)), True)
    y_t = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    lam = t(0.1, True)
    z = ib.sparse_code(y_t, D_t, ib.Lasso(lam), backend=BACKEND)
    grads = torch.autograd.grad(z.sum(), [y_t, lam, D_t])
    assert bool((z == 0).all())
    for grad in grads:
        assert bool((grad == 0).all())


def test_c16_relative_lam_at_zero_signal():
    """lam = 0.1 lam_max(y) = 0 at y = 0: the code is 0 and the gradient is 0, not NaN."""
    rng = np.random.default_rng(16)
    D_t = t(rng.standard_normal((5, 8)))
    y_t = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    lam = 0.1 * ib.lam_max(y_t, D_t)
    z = ib.sparse_code(y_t, D_t, ib.Lasso(lam), backend=BACKEND)
    (grad,) = torch.autograd.grad(z.sum(), y_t)
    assert bool((z == 0).all())
    assert bool((grad == 0).all())


# ---------------------------------------------------------------------------
# C18: group structures


def c18_data():
    rng = np.random.default_rng(18)
    return rng.standard_normal((10, 7)), rng.standard_normal(10)


C18_GROUPS = [[0, 1], [2, 3, 4], [5, 6]]


def test_c18_empty_group():
    with pytest.raises(ValueError, match=r"group 1 is empty"):
        ib.GroupLasso(1.0, [[0, 1], [], [2, 3, 4], [5, 6]])


def test_c18_overlapping_groups():
    with pytest.raises(ValueError, match=r"atom 2 is in group 0 and in group 1"):
        ib.GroupLasso(1.0, [[0, 1, 2], [2, 3], [4, 5, 6]])


def test_c18_zero_weight_unpenalised():
    D, y = c18_data()
    z = ib.sparse_code(t(y), t(D), ib.GroupLasso(1.0, C18_GROUPS, weights=[1.0, 0.0, 2.0]),
                       backend=BACKEND).numpy()
    expected = [0.003350, 0.026953, 0.234158, 0.190167, 0.055937, 0.157223, 0.081366]
    np.testing.assert_allclose(z, expected, rtol=0, atol=PRINTED)
    reference = reference_solve("group_lasso", y, D, lam=1.0, groups=C18_GROUPS,
                                weights=np.array([1.0, 0.0, 2.0])).z
    np.testing.assert_allclose(z, reference, rtol=0, atol=CODE_ATOL)
    np.testing.assert_allclose(D[:, [2, 3, 4]].T @ (y - D @ z), 0.0, atol=1e-8)


def test_c18_infinite_weight_forces_zero():
    D, y = c18_data()
    weights = t([1.0, math.inf, 2.0], True)
    D_t = t(D, True)
    z = ib.sparse_code(t(y), D_t, ib.GroupLasso(1.0, C18_GROUPS, weights=weights), backend=BACKEND)
    g_D, g_w = torch.autograd.grad(z.sum(), [D_t, weights])
    expected = [0.080117, 0.150440, 0, 0, 0, 0.230023, 0.093894]
    np.testing.assert_allclose(z.detach().numpy(), expected, rtol=0, atol=PRINTED)
    assert bool((z[2:5] == 0).all())
    assert bool((g_D[:, 2:5] == 0).all())
    assert float(g_w[1]) == 0.0
    assert bool(torch.isfinite(g_w).all())


def test_c18_uncovered_atoms():
    D, y = c18_data()
    with pytest.raises(ValueError, match=r"atoms 5, 6 are in no group"):
        ib.sparse_code(t(y), t(D), ib.GroupLasso(1.0, [[0, 1], [2, 3, 4]]), backend=BACKEND)


def test_c18_unit_weights():
    D, y = c18_data()
    z = ib.sparse_code(t(y), t(D), ib.GroupLasso(1.0, C18_GROUPS, weights=[1.0, 1.0, 1.0]),
                       backend=BACKEND).numpy()
    expected = [0.048947, 0.087262, 0.097574, 0.028148, 0.003106, 0.253834, 0.158923]
    np.testing.assert_allclose(z, expected, rtol=0, atol=PRINTED)


# ---------------------------------------------------------------------------
# C19: a dictionary built from parameters


def gaussian_dictionary(centres, width, t_points):
    D = torch.exp(-((t_points[:, None] - centres[None, :]) ** 2) / (2 * width**2))
    return D / D.norm(dim=0)


def c19_setup():
    t_points = torch.linspace(0, 1, 40, dtype=torch.float64)
    c0 = torch.linspace(0.05, 0.95, 12, dtype=torch.float64)
    rng = np.random.default_rng(19)
    x_true = t(sparse(12, {2: 1.0, 6: -0.6, 9: 0.8}))
    y = gaussian_dictionary(c0, 0.06, t_points) @ x_true + 0.01 * t(rng.standard_normal(40))
    return t_points, c0, x_true, y


def c19_loss(centres, width):
    t_points, _, x_true, y = c19_setup()
    D = gaussian_dictionary(centres, width, t_points)
    z = ib.sparse_code(y, D, ib.Lasso(0.05), backend=BACKEND)
    return 0.5 * ((z - x_true) ** 2).sum(), z


def test_c19_parametric_dictionary():
    _, c0, _, _ = c19_setup()
    centres = c0.clone().requires_grad_(True)
    width = t(0.05, True)
    loss, z = c19_loss(centres, width)
    g_c, g_w = torch.autograd.grad(loss, [centres, width])

    assert float(loss.detach()) == pytest.approx(0.02152065, abs=1e-8)
    expected = [0, 0.070405, 0.867220, 0.078511, 0, -0.027625, -0.526768, 0, 0, 0.714000, 0.027708, 0]
    np.testing.assert_allclose(z.detach().numpy(), expected, rtol=0, atol=PRINTED)
    np.testing.assert_array_equal(z.detach().numpy() == 0, np.array(expected) == 0)
    assert float(g_w) == pytest.approx(-4.189149, abs=PRINTED)
    expected_c = [0, 0.260465, -0.099686, -0.264329, 0, 0.031056, 0.450538, 0, 0, -0.561821, -0.054010, 0]
    np.testing.assert_allclose(g_c.numpy(), expected_c, rtol=0, atol=PRINTED)


def test_c19_width_gradient_fd():
    """dL/dw against a central difference of the reference solver."""
    t_points, c0, x_true, y = c19_setup()
    width = t(0.05, True)
    loss, _ = c19_loss(c0, width)
    (g_w,) = torch.autograd.grad(loss, width)

    def reference_loss(w):
        D = gaussian_dictionary(c0, torch.tensor(w, dtype=torch.float64), t_points).numpy()
        z = reference_solve("lasso", y.numpy(), D, lam=0.05).z
        return 0.5 * np.sum((z - x_true.numpy()) ** 2)

    h = 1e-6
    expected = (reference_loss(0.05 + h) - reference_loss(0.05 - h)) / (2 * h)
    assert abs(float(g_w) - expected) <= GRAD_RTOL * abs(expected)


# ---------------------------------------------------------------------------
# C25: scikit-learn's alpha conventions


def c25_data():
    rng = np.random.default_rng(25)
    X = rng.standard_normal((50, 20))
    y = X @ sparse(20, {1: 2.0, 7: -1.0, 12: 0.5}) + 0.3 * rng.standard_normal(50)
    return X, y


def test_c25_sklearn_lasso_alpha():
    linear_model = pytest.importorskip("sklearn.linear_model")
    X, y = c25_data()
    model = linear_model.Lasso(alpha=0.05, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y)
    z = ib.sparse_code(t(y), t(X), ib.Lasso(50 * 0.05), backend=BACKEND).numpy()
    np.testing.assert_allclose(z, model.coef_, rtol=0, atol=CODE_ATOL)
    expected = sparse(20, {1: 1.955259, 4: 0.003552, 7: -0.919814, 12: 0.435588, 14: -0.027436})
    np.testing.assert_allclose(z, expected, rtol=0, atol=PRINTED)
    np.testing.assert_array_equal(z == 0, expected == 0)


def test_c25_sparse_encode_alpha():
    decomposition = pytest.importorskip("sklearn.decomposition")
    X, y = c25_data()
    z = ib.sparse_code(t(y), t(X), ib.Lasso(0.05), backend=BACKEND).numpy()
    with warnings.catch_warnings():
        # lasso_lars solves this 50 x 20 problem exactly; coordinate descent
        # stops at its default tolerance, about 3e-8 away.
        lars = decomposition.sparse_encode(y[None], X.T, algorithm="lasso_lars", alpha=0.05)[0]
        cd = decomposition.sparse_encode(y[None], X.T, algorithm="lasso_cd", alpha=0.05)[0]
    np.testing.assert_allclose(z, lars, rtol=0, atol=CODE_ATOL)
    np.testing.assert_allclose(z, cd, rtol=0, atol=1e-6)


def test_c25_lam_max_and_objective():
    X, y = c25_data()
    lam_max = float(ib.lam_max(t(y), t(X)))
    assert lam_max == pytest.approx(85.30345, abs=1e-5)
    assert lam_max / 50 == pytest.approx(1.706069, abs=PRINTED)
    problem = ib.Lasso(2.5)
    z = ib.sparse_code(t(y), t(X), problem, backend=BACKEND)
    objective = float(problem.objective(z, t(y), t(X)))
    assert objective == pytest.approx(9.902719, abs=PRINTED)
    assert objective / 50 == pytest.approx(0.1980544, abs=1e-7)

