"""The published cases end to end through ``sparse_code`` on the implicit backend.

``tests/solvers/test_cases.py`` checks the forward solver alone on some of
these cases; here every case goes through the public entry point, with its
gradients. Right values come from ``tests.robustness.cases``; the tight bars
are checked against closed forms on the support, the reference solver or
finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close
from torch.utils.flop_counter import FlopCounterMode

import implicit_basis as ib
from tests.reference import reference_solve
from tests.robustness import cases
from tests.robustness.cases import CODE_ATOL, F64, GRAD_RTOL, PRINTED, sparse, t

BACKEND = "implicit"


def solve(y, D, problem, **options):
    return ib.sparse_code(y, D, problem, backend=BACKEND, **options)


# ---------------------------------------------------------------------------
# C01: coherent Gaussian frame


def c01_run():
    y, D, lam = cases.c01()
    y_t, D_t, lam_t = t(y, True), t(D, True), t(lam, True)
    z, info = solve(y_t, D_t, ib.Lasso(lam_t), return_info=True)
    grads = torch.autograd.grad(z.sum(), [y_t, lam_t, D_t])
    return z.detach(), info, grads


def test_c01_code():
    y, D, lam = cases.c01()
    z, info, _ = c01_run()
    assert lam == pytest.approx(0.0502348, abs=1e-7)
    assert torch.nonzero(z).flatten().tolist() == cases.C01_SUPPORT
    assert int((z != 0).sum()) == 4
    assert_close(z[cases.C01_SUPPORT], t(cases.C01_VALUES), rtol=0, atol=PRINTED)
    assert_close(z, t(reference_solve("lasso", y, D, lam=lam).z), rtol=0, atol=CODE_ATOL)
    assert bool(info.converged)
    assert not bool(info.degenerate)


def test_c01_gradients_printed():
    _, _, (g_y, g_lam, g_D) = c01_run()
    assert float(g_lam) == pytest.approx(-1.041180, abs=PRINTED)
    assert float(g_y.norm()) == pytest.approx(1.741357, abs=PRINTED)
    assert_close(g_y[:5], t(cases.C01_GRAD_Y_HEAD), rtol=0, atol=PRINTED)
    assert int(g_y.argmax()) == 19
    assert float(g_y.max()) == pytest.approx(0.487536, abs=PRINTED)
    assert float(g_D[10, 14]) == pytest.approx(0.129051, abs=PRINTED)


def test_c01_gradients_closed_form():
    y, D, lam = cases.c01()
    z, _, (g_y, g_lam, g_D) = c01_run()
    _, grad_y, grad_lam, grad_D = cases.lasso_closed_form(y, D, z.numpy(), lam)
    assert_close(g_y, t(grad_y), rtol=GRAD_RTOL, atol=0)
    assert_close(g_lam, t(grad_lam), rtol=GRAD_RTOL, atol=0)
    assert_close(g_D, t(grad_D), rtol=GRAD_RTOL, atol=1e-12)
    off_support = [j for j in range(30) if j not in cases.C01_SUPPORT]
    assert bool((g_D[:, off_support] == 0).all())


def test_c01_gradcheck_default_tolerances():
    """gradcheck with torch's default atol and rtol: in full on y and lam, projected on D.

    A full gradcheck on D (1200 entries, 2400 solves) also passes with the
    default tolerances. It took 50 s on a 2-core machine, so the suite checks
    D through gradcheck's fast mode (random projections of the Jacobian).
    """
    y, D, lam = cases.c01()
    D_fixed = t(D)

    def code(y_, lam_):
        return ib.sparse_code(y_, D_fixed, ib.Lasso(lam_), backend=BACKEND)

    assert torch.autograd.gradcheck(code, (t(y, True), t(lam, True)))

    def code_all(y_, D_, lam_):
        return ib.sparse_code(y_, D_, ib.Lasso(lam_), backend=BACKEND)

    assert torch.autograd.gradcheck(code_all, (t(y, True), t(D, True), t(lam, True)), fast_mode=True)


# ---------------------------------------------------------------------------
# C03: hypergradient in lam, with scikit-learn's 1/(2n) scaling


def c03_loss(alpha):
    Xtr, ytr, Xval, yval = cases.c03()
    beta = solve(t(ytr), t(Xtr), ib.Lasso(40 * alpha))
    residual = beta @ t(Xval).T - t(yval)
    return (residual**2).sum(-1) / (2 * 20), beta


def test_c03_hypergradient():
    Xtr, ytr, Xval, yval = cases.c03()
    alpha = t(np.abs(Xtr.T @ ytr).max() / 40 / 10, True)
    h, beta = c03_loss(alpha)
    (dh,) = torch.autograd.grad(h.sum(), alpha)

    b = beta.detach().numpy()
    support = np.flatnonzero(b)
    assert support.tolist() == [3, 17, 29, 41, 55]
    assert float(h.detach()) == pytest.approx(0.1039173, abs=1e-7)
    assert float(dh) == pytest.approx(0.98022536, abs=1e-8)
    assert float(dh * alpha.detach()) == pytest.approx(0.2049583, abs=1e-7)
    # d beta_S / d alpha = -40 (X_S^T X_S)^-1 sign(beta_S).
    X_S = Xtr[:, support]
    d_beta = -40 * np.linalg.solve(X_S.T @ X_S, np.sign(b[support]))
    expected = (Xval @ b - yval) @ (Xval[:, support] @ d_beta) / 20
    assert abs(float(dh) - expected) <= GRAD_RTOL * abs(expected)


def test_c03_per_sample_lam_tensor():
    """lam may be a per-sample tensor that requires grad: each entry gets its own hypergradient."""
    Xtr, ytr, _, _ = cases.c03()
    alpha_max = np.abs(Xtr.T @ ytr).max() / 40
    alphas = t([alpha_max / 10, alpha_max / 10], True)
    h, _ = c03_loss(alphas)
    (dh,) = torch.autograd.grad(h.sum(), alphas)
    assert_close(dh, t([0.98022536, 0.98022536]), rtol=0, atol=1e-8)


# ---------------------------------------------------------------------------
# C04: lam at and around lam_max


def c04_run(factor):
    y, D, lam_max = cases.c04()
    y_t, D_t, lam_t = t(y, True), t(D, True), t(factor * lam_max, True)
    z, info = solve(y_t, D_t, ib.Lasso(lam_t), return_info=True)
    g_y, g_lam, g_D = torch.autograd.grad(z.sum(), [y_t, lam_t, D_t])
    return z.detach(), info, g_y, g_lam, g_D


def test_c04_lam_max_value():
    y, D, lam_max = cases.c04()
    assert lam_max == pytest.approx(4.0523492, abs=1e-7)
    assert int(np.abs(D.T @ y).argmax()) == 7
    assert float(ib.lam_max(t(y), t(D))) == pytest.approx(lam_max, rel=1e-15)


def test_c04_above_lam_max_exact_zeros():
    z, info, g_y, g_lam, g_D = c04_run(1.5)
    assert bool((z == 0).all())
    for grad in (g_y, g_lam, g_D):
        assert bool((grad == 0).all())
    assert not bool(info.degenerate)


def test_c04_at_lam_max_right_derivative():
    """At lam = lam_max the inactive convention gives the right derivative, 0."""
    z, info, g_y, g_lam, g_D = c04_run(1.0)
    assert float(z.abs().max()) <= 1e-10
    assert float(g_lam) == 0.0
    for grad in (g_y, g_D):
        assert bool(torch.isfinite(grad).all())
    assert bool(info.degenerate)


def test_c04_just_below_lam_max():
    y, D, lam_max = cases.c04()
    z, info, g_y, g_lam, g_D = c04_run(0.999)
    assert torch.nonzero(z).flatten().tolist() == [7]
    assert float(z[7]) == pytest.approx(-4.852180e-4, abs=1e-10)
    assert float(g_lam) == pytest.approx(0.1197374, abs=1e-7)
    assert float(g_y.abs().max()) == pytest.approx(0.2285715, abs=1e-7)
    assert float(g_D.abs().max()) == pytest.approx(0.1360913, abs=1e-7)
    # Exact formulas on one atom: dL/dy = d_7 / ||d_7||^2, dL/dlam = -sign / ||d_7||^2.
    d7 = D[:, 7]
    assert_close(g_y, t(d7 / (d7 @ d7)), rtol=1e-12, atol=0)
    assert_close(g_lam, t(1 / (d7 @ d7)), rtol=1e-12, atol=0)
    assert not bool(info.degenerate)


def test_c04_convention_documented():
    assert "right derivative, 0" in ib.Lasso.__doc__
    assert "treated as inactive" in ib.sparse_code.__doc__


# ---------------------------------------------------------------------------
# C05: atoms exactly at the threshold


def test_c05_identity_ties():
    y_t, lam_t = t(cases.C05_Y, True), t(0.5, True)
    z, info = solve(y_t, torch.eye(8, dtype=F64), ib.Lasso(lam_t), return_info=True)
    g_y, g_lam = torch.autograd.grad(z.sum(), [y_t, lam_t])
    assert torch.equal(z.detach(), t(cases.C05_Z))
    assert torch.equal(g_y, t(cases.C05_GRAD))
    assert float(g_lam) == -1.0
    assert bool(info.degenerate)


def test_c05_tie_entry_lam_derivative():
    lam_t = t(0.5, True)
    z = solve(t(cases.C05_Y), torch.eye(8, dtype=F64), ib.Lasso(lam_t))
    (g_lam,) = torch.autograd.grad(z[2], lam_t)
    assert float(g_lam) == 0.0


def test_c05_orthogonal_no_nan():
    y, Q = cases.c05_orthogonal()
    y_t, lam_t = t(y, True), t(0.5, True)
    z = solve(y_t, t(Q), ib.Lasso(lam_t))
    g_y, g_lam = torch.autograd.grad(z.sum(), [y_t, lam_t])
    assert bool(torch.isfinite(g_y).all())
    assert_close(z.detach(), t(cases.C05_Z), rtol=0, atol=1e-14)
    # With D = Q the gradient in the coordinates Q^T y is the identity case's.
    assert_close(t(Q).T @ g_y, t(cases.C05_GRAD), rtol=0, atol=1e-12)
    assert float(g_lam) == pytest.approx(-1.0, abs=1e-12)


# ---------------------------------------------------------------------------
# C07: overcomplete dictionary, backward restricted to the support


def test_c07_code_and_lam_derivative():
    y, D, lam = cases.c07()
    lam_t = t(lam, True)
    z = solve(t(y), t(D), ib.Lasso(lam_t))
    assert lam == pytest.approx(0.2430366, abs=1e-7)
    assert torch.nonzero(z.detach()).flatten().tolist() == cases.C07_SUPPORT
    assert_close(z.detach()[cases.C07_SUPPORT], t(cases.C07_VALUES), rtol=0, atol=PRINTED)
    jacobian = torch.stack([torch.autograd.grad(z[j], lam_t, retain_graph=True)[0] for j in range(300)])
    assert_close(jacobian[cases.C07_SUPPORT], t(cases.C07_DZ_DLAM), rtol=0, atol=PRINTED)
    off_support = [j for j in range(300) if j not in cases.C07_SUPPORT]
    assert bool((jacobian[off_support] == 0).all())
    D_S = D[:, cases.C07_SUPPORT]
    closed = -np.linalg.solve(D_S.T @ D_S, np.sign(cases.C07_VALUES))
    assert_close(jacobian[cases.C07_SUPPORT], t(closed), rtol=GRAD_RTOL, atol=0)


def c07_backward_work(extra_atoms, monkeypatch):
    """Return (flops, support system shapes) of the backward with ``extra_atoms`` added.

    The added atoms are scaled by 1e-3, so they stay off the support: the
    support, the code and the gradient on the original atoms do not change.
    """
    import implicit_basis.coding.lasso as lasso_module

    y, D, lam = cases.c07()
    rng = np.random.default_rng(0)
    D_big = np.hstack([D, 1e-3 * rng.standard_normal((30, extra_atoms)) / np.sqrt(30)])
    y_t, D_t, lam_t = t(y, True), t(D_big, True), t(lam, True)
    z = solve(y_t, D_t, ib.Lasso(lam_t))
    assert torch.nonzero(z.detach()).flatten().tolist() == cases.C07_SUPPORT

    shapes = []
    original = lasso_module.solve_support_system

    def recording(columns, *args, **kwargs):
        shapes.append(tuple(columns.columns.shape))
        return original(columns, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(lasso_module, "solve_support_system", recording)
        with FlopCounterMode(display=False) as counter:
            z.sum().backward()
    return counter.get_total_flops(), shapes, lam_t.grad


def test_c07_backward_work_independent_of_atoms(monkeypatch):
    """The backward solves a |S| x |S| system whatever the number of atoms (300 or 3000)."""
    flops_small, shapes_small, grad_small = c07_backward_work(0, monkeypatch)
    flops_large, shapes_large, grad_large = c07_backward_work(2700, monkeypatch)
    assert shapes_small == [(1, 30, 4)]
    assert shapes_large == [(1, 30, 4)]
    # Linear in n would allow a factor 10; the matrix products do not grow at all.
    assert flops_large <= 10 * flops_small
    assert flops_large == flops_small
    assert_close(grad_large, grad_small, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------
# C08: basis pursuit outside range(D)


def test_c08_infeasible_error():
    D, _, y_bad = cases.c08()
    with pytest.raises(ib.InfeasibleProblemError, match=r"samples 0 \(distance 0\.449\)") as error:
        solve(t(y_bad), t(D), ib.BasisPursuit())
    assert error.value.samples == [0]
    assert error.value.distances[0] == pytest.approx(0.448959, abs=PRINTED)


def test_c08_feasible_control():
    D, y_ok, _ = cases.c08()
    y = t(y_ok, True)
    z = solve(y, t(D), ib.BasisPursuit())
    value = z.abs().sum()
    (grad,) = torch.autograd.grad(value, y)
    assert_close(z.detach(), t(cases.C08_CODE), rtol=0, atol=PRINTED)
    assert_close(z.detach(), t(reference_solve("basis_pursuit", y_ok, D).z), rtol=0, atol=CODE_ATOL)
    assert float(value.detach()) == pytest.approx(2.0224342, abs=1e-7)
    # The gradient is the minimum-norm one: it lies in range(D).
    U = np.linalg.svd(D)[0][:, :4]
    projected = t(U @ (U.T @ grad.numpy()))
    assert_close(grad, projected, rtol=0, atol=1e-12)
    assert_close(grad, t(cases.C08_GRAD), rtol=0, atol=PRINTED)


def test_c08_gradient_convention_documented():
    assert "minimum-norm gradient" in ib.BasisPursuit.__doc__


# ---------------------------------------------------------------------------
# C11: batches and broadcasting


def test_c11_batch_values_and_gradients():
    D, Y, lam = cases.c11()
    Y_t, D_t, lam_t = t(Y, True), t(D, True), t(lam, True)
    z = solve(Y_t, D_t, ib.Lasso(lam_t))
    g_Y, g_D, g_lam = torch.autograd.grad(z.sum(), [Y_t, D_t, lam_t])

    assert z.shape == (5, 10)
    expected = np.stack([sparse(10, row) for row in cases.C11_ROWS])
    assert_close(z.detach(), t(expected), rtol=0, atol=PRINTED)
    assert torch.equal(z.detach() == 0, t(expected) == 0)
    assert_close(g_lam, t(cases.C11_GRAD_LAM), rtol=0, atol=PRINTED)
    assert float(g_D.norm()) == pytest.approx(1.185532, abs=PRINTED)
    assert_close(g_D[0], t(cases.C11_GRAD_D_ROW0), rtol=0, atol=PRINTED)
    assert_close(g_Y[0], t(cases.C11_GRAD_Y_ROW0), rtol=0, atol=PRINTED)


def test_c11_batch_equals_single_solves():
    D, Y, lam = cases.c11()
    D_t, lam_t = t(D, True), t(lam, True)
    z = solve(t(Y), D_t, ib.Lasso(lam_t))
    g_D, g_lam = torch.autograd.grad(z.sum(), [D_t, lam_t])
    total = torch.zeros_like(g_D)
    for b in range(5):
        D_b, lam_b = t(D, True), t(lam[b], True)
        z_b = solve(t(Y[b]), D_b, ib.Lasso(lam_b))
        g_D_b, g_lam_b = torch.autograd.grad(z_b.sum(), [D_b, lam_b])
        assert_close(z[b].detach(), z_b.detach(), rtol=0, atol=1e-13)
        assert_close(z_b.detach(), t(reference_solve("lasso", Y[b], D, lam=lam[b]).z), rtol=0, atol=CODE_ATOL)
        assert_close(g_lam[b], g_lam_b, rtol=1e-12, atol=0)
        total += g_D_b
    # The gradient of the shared D accumulates over the batch.
    assert_close(g_D, total, rtol=1e-12, atol=1e-14)


def test_c11_empty_batch():
    D, _, _ = cases.c11()
    z = solve(torch.zeros(0, 6, dtype=F64), t(D), ib.Lasso(0.5))
    assert z.shape == (0, 10)


def test_c11_batched_D_unbatched_y():
    D, Y, lam = cases.c11()
    D3 = D + 0.1 * np.random.default_rng(0).standard_normal((3, 6, 10))
    z = solve(t(Y[0]), t(D3), ib.Lasso(lam[0]))
    assert z.shape == (3, 10)
    for b in range(3):
        expected = reference_solve("lasso", Y[0], D3[b], lam=lam[0]).z
        assert_close(z[b], t(expected), rtol=0, atol=CODE_ATOL)


# ---------------------------------------------------------------------------
# C12: float32 and half precision


def test_c12_float32():
    D, y, lam = cases.c12()
    assert float(lam) == pytest.approx(1.0559897, abs=1e-7)
    y_t, D_t, lam_t = t(y, True, torch.float32), t(D, True, torch.float32), t(lam, True, torch.float32)
    z = solve(y_t, D_t, ib.Lasso(lam_t))
    z.sum().backward()
    assert z.dtype == torch.float32
    assert y_t.grad.dtype == torch.float32
    assert D_t.grad.dtype == torch.float32
    assert lam_t.grad.dtype == torch.float32
    assert np.flatnonzero(z.detach().numpy()).tolist() == cases.C12_SUPPORT
    assert_close(z.detach()[cases.C12_SUPPORT], t(cases.C12_VALUES, dtype=torch.float32), rtol=1e-5, atol=PRINTED)
    reference = reference_solve("lasso", y.astype(np.float64), D.astype(np.float64), lam=float(lam)).z
    assert_close(z.detach().double(), t(reference), rtol=1e-5, atol=1e-7)


def test_c12_float32_gradients_match_float64():
    D, y, lam = cases.c12()
    grads = {}
    for dtype in (torch.float32, torch.float64):
        y_t, lam_t = t(y, True, dtype), t(lam, True, dtype)
        z = solve(y_t, t(D, dtype=dtype), ib.Lasso(lam_t))
        grads[dtype] = torch.autograd.grad(z.sum(), [y_t, lam_t])
    for g32, g64 in zip(grads[torch.float32], grads[torch.float64]):
        assert_close(g32.double(), g64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_c12_half_precision(dtype):
    D, y, lam = cases.c12()
    y_t = t(y, True, dtype)
    z = solve(y_t, t(D, dtype=dtype), ib.Lasso(float(lam)))
    z.sum().backward()
    assert z.dtype == dtype
    assert y_t.grad.dtype == dtype
    expected = solve(y_t.detach().float(), t(D, dtype=dtype).float(), ib.Lasso(float(lam)))
    assert_close(z.float(), expected, rtol=1e-2, atol=1e-2)


# ---------------------------------------------------------------------------
# C14: lam = 0 and lam -> 0+


@pytest.mark.parametrize("lam", [0.0, 1e-10, 1e-6, 1e-4, 1e-2, 0.1])
def test_c14_lam_derivative_constant(lam):
    """dL/dlam = +0.134248 for every lam in (0, 0.1], and as the right derivative at 0."""
    y, D, _, _, _ = cases.c14()
    y_t, lam_t = t(y, True), t(lam, True)
    z = solve(y_t, t(D), ib.Lasso(lam_t))
    g_y, g_lam = torch.autograd.grad(z.sum(), [y_t, lam_t])
    assert torch.equal(torch.sign(z.detach()), torch.sign(t(cases.C14_LEAST_SQUARES)))
    assert float(g_lam) == pytest.approx(cases.C14_DL_DLAM, abs=PRINTED)
    # Closed form: the support is every atom, so dL/dlam = -1^T (D^T D)^-1 sign(z).
    closed = -np.ones(10) @ np.linalg.solve(D.T @ D, np.sign(cases.C14_LEAST_SQUARES))
    assert abs(float(g_lam) - closed) <= GRAD_RTOL * abs(closed)
    assert float(g_y.norm()) == pytest.approx(0.699472, abs=PRINTED)
    assert_close(g_y[:5], t(cases.C14_GRAD_Y_HEAD), rtol=0, atol=PRINTED)


def test_c14_least_squares_at_zero():
    y, D, _, _, _ = cases.c14()
    z = solve(t(y), t(D), ib.Lasso(0.0))
    assert_close(z, t(cases.C14_LEAST_SQUARES), rtol=0, atol=PRINTED)
    assert_close(z, t(np.linalg.lstsq(D, y, rcond=None)[0]), rtol=0, atol=1e-13)


def test_c14_wide_zero_lam_min_norm():
    _, _, y2, D2, _ = cases.c14()
    z, info = solve(t(y2), t(D2), ib.Lasso(0.0), return_info=True)
    assert_close(z, t(cases.C14_MIN_NORM), rtol=0, atol=1e-4)
    assert_close(z, t(np.linalg.pinv(D2) @ y2), rtol=0, atol=1e-12)
    assert bool(info.degenerate)
    assert "minimum-norm one" in ib.Lasso.__doc__


def test_c14_wide_tiny_lam_basis_pursuit():
    _, _, y2, D2, x_true = cases.c14()
    z = solve(t(y2), t(D2), ib.Lasso(1e-6))
    assert_close(z, t(x_true), rtol=0, atol=1e-6)
    assert_close(z, t(reference_solve("basis_pursuit", y2, D2).z), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------
# C15: non-finite inputs and a zero atom


def test_c15_nan_in_y():
    D, y, lam = cases.c15()
    y[3] = math.nan
    with pytest.raises(ValueError, match=r"y contains non-finite values: y\[3\] = nan"):
        solve(t(y), t(D), ib.Lasso(lam))


def test_c15_inf_in_D():
    D, y, lam = cases.c15()
    D[2, 5] = math.inf
    with pytest.raises(ValueError, match=r"D contains non-finite values: D\[2, 5\] = inf"):
        solve(t(y), t(D), ib.Lasso(lam))


def test_c15_zero_atom():
    D, y, lam = cases.c15()
    assert lam == pytest.approx(1.646823, abs=PRINTED)
    D[:, 5] = 0.0
    y_t, D_t, lam_t = t(y, True), t(D, True), t(lam, True)
    z = solve(y_t, D_t, ib.Lasso(lam_t))
    g_y, g_D, g_lam = torch.autograd.grad(z.sum(), [y_t, D_t, lam_t])
    assert_close(z.detach(), t(sparse(12, cases.C15_ZERO_ATOM)), rtol=0, atol=PRINTED)
    assert_close(z.detach(), t(reference_solve("lasso", y, D, lam=lam).z), rtol=0, atol=CODE_ATOL)
    assert float(z[5].detach()) == 0.0
    assert bool((g_D[:, 5] == 0).all())
    for grad in (g_y, g_D, g_lam):
        assert bool(torch.isfinite(grad).all())


# ---------------------------------------------------------------------------
# C16: zero signal


def test_c16_zero_signal():
    y, D = cases.c16()
    y_t, D_t, lam_t = t(y, True), t(D, True), t(0.1, True)
    z = solve(y_t, D_t, ib.Lasso(lam_t))
    grads = torch.autograd.grad(z.sum(), [y_t, lam_t, D_t])
    assert bool((z == 0).all())
    for grad in grads:
        assert bool((grad == 0).all())


def test_c16_relative_lam_at_zero_signal():
    """lam = 0.1 lam_max(y) is 0 at y = 0: the code is 0 and every gradient is 0, not NaN."""
    y, D = cases.c16()
    y_t, D_t = t(y, True), t(D, True)
    lam = 0.1 * ib.lam_max(y_t, D_t)
    z = solve(y_t, D_t, ib.Lasso(lam))
    g_y, g_D = torch.autograd.grad(z.sum(), [y_t, D_t])
    assert bool((z == 0).all())
    assert bool((g_y == 0).all())
    assert bool((g_D == 0).all())
    assert "At ``y = 0`` its\n    gradient is 0" in ib.lam_max.__doc__


# ---------------------------------------------------------------------------
# C18: group structures


def test_c18_unit_weights():
    D, y = cases.c18()
    z = solve(t(y), t(D), ib.GroupLasso(1.0, cases.C18_GROUPS, weights=[1.0, 1.0, 1.0]))
    assert_close(z, t(cases.C18_UNIT), rtol=0, atol=PRINTED)


def test_c18_zero_weight_unpenalised():
    D, y = cases.c18()
    z = solve(t(y), t(D), ib.GroupLasso(1.0, cases.C18_GROUPS, weights=[1.0, 0.0, 2.0]))
    assert_close(z, t(cases.C18_ZERO_WEIGHT), rtol=0, atol=PRINTED)
    weights = np.array([1.0, 0.0, 2.0])
    reference = reference_solve("group_lasso", y, D, lam=1.0, groups=cases.C18_GROUPS, weights=weights).z
    assert_close(z, t(reference), rtol=0, atol=CODE_ATOL)
    assert_close(t(D[:, [2, 3, 4]]).T @ (t(y) - t(D) @ z), torch.zeros(3, dtype=F64), rtol=0, atol=1e-12)


def test_c18_infinite_weight_forces_zero():
    D, y = cases.c18()
    weights = t([1.0, math.inf, 2.0], True)
    D_t, lam_t = t(D, True), t(1.0, True)
    z = solve(t(y), D_t, ib.GroupLasso(lam_t, cases.C18_GROUPS, weights=weights))
    g_D, g_w, g_lam = torch.autograd.grad(z.sum(), [D_t, weights, lam_t])
    assert_close(z.detach(), t(cases.C18_INF_WEIGHT), rtol=0, atol=PRINTED)
    assert bool((z[2:5] == 0).all())
    assert bool((g_D[:, 2:5] == 0).all())
    assert float(g_w[1]) == 0.0
    assert bool(torch.isfinite(g_w).all())
    assert bool(torch.isfinite(g_lam))


def test_c18_structure_errors_documented():
    doc = ib.GroupLasso.__doc__
    assert "Groups must be non-empty" in doc
    assert "disjoint" in doc
    assert "cover every atom exactly once" in doc


# ---------------------------------------------------------------------------
# C19: a dictionary built from parameters


def c19_loss(centres, width):
    points, _, x_true, y = cases.c19()
    D = cases.gaussian_dictionary(centres, width, points)
    z = solve(y, D, ib.Lasso(0.05))
    return 0.5 * ((z - x_true) ** 2).sum(), z


def test_c19_parametric_dictionary():
    _, c0, _, _ = cases.c19()
    centres, width = c0.clone().requires_grad_(True), t(0.05, True)
    loss, z = c19_loss(centres, width)
    g_c, g_w = torch.autograd.grad(loss, [centres, width])
    assert float(loss.detach()) == pytest.approx(0.02152065, abs=1e-8)
    assert_close(z.detach(), t(cases.C19_CODE), rtol=0, atol=PRINTED)
    assert torch.equal(z.detach() == 0, t(cases.C19_CODE) == 0)
    assert float(g_w) == pytest.approx(-4.189149, abs=PRINTED)
    assert_close(g_c, t(cases.C19_DL_DC), rtol=0, atol=PRINTED)


def test_c19_factorised_dictionary():
    """A factorised D = A B gives the result of passing A @ B, and gradients through both factors."""
    points, c0, _, y = cases.c19()
    D = cases.gaussian_dictionary(c0, 0.05, points)
    A = D[:, :6].clone().requires_grad_(True)
    B = torch.linalg.lstsq(D[:, :6], D).solution.clone().requires_grad_(True)
    z = solve(y, A @ B, ib.Lasso(0.05))
    g_A, g_B = torch.autograd.grad(z.sum(), [A, B])
    D_t = (A @ B).detach().requires_grad_(True)
    z_D = solve(y, D_t, ib.Lasso(0.05))
    (g_D,) = torch.autograd.grad(z_D.sum(), D_t)
    assert torch.equal(z.detach(), z_D.detach())
    assert_close(g_A, g_D @ B.detach().T, rtol=1e-12, atol=1e-14)
    assert_close(g_B, A.detach().T @ g_D, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------
# C23: a batch agrees with per-sample solves, values and gradients


def test_c23_batch_of_64():
    rng = np.random.default_rng(23)
    D = rng.standard_normal((20, 50)) / np.sqrt(20)
    X = np.zeros((64, 50))
    for b in range(64):
        X[b, rng.choice(50, 3, replace=False)] = rng.standard_normal(3)
    Y = X @ D.T + 0.01 * rng.standard_normal((64, 20))
    lam = 0.1 * np.abs(Y @ D).max(axis=1)
    Y_t, lam_t = t(Y, True), t(lam, True)
    z = solve(Y_t, t(D), ib.Lasso(lam_t))
    g_Y, g_lam = torch.autograd.grad(z.sum(), [Y_t, lam_t])
    for b in range(0, 64, 9):
        y_b, lam_b = t(Y[b], True), t(lam[b], True)
        z_b = solve(y_b, t(D), ib.Lasso(lam_b))
        g_y_b, g_lam_b = torch.autograd.grad(z_b.sum(), [y_b, lam_b])
        assert_close(z[b].detach(), z_b.detach(), rtol=0, atol=1e-13)
        assert_close(g_Y[b], g_y_b, rtol=1e-10, atol=1e-13)
        assert_close(g_lam[b], g_lam_b, rtol=1e-10, atol=0)


# ---------------------------------------------------------------------------
# C25: scikit-learn's alpha conventions


def test_c25_sklearn_lasso_alpha():
    linear_model = pytest.importorskip("sklearn.linear_model")
    X, y = cases.c25()
    model = linear_model.Lasso(alpha=0.05, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y)
    z = solve(t(y), t(X), ib.Lasso(50 * 0.05))
    assert_close(z, t(model.coef_), rtol=0, atol=CODE_ATOL)
    assert_close(z, t(sparse(20, cases.C25_CODE)), rtol=0, atol=PRINTED)
    assert torch.equal(z == 0, t(sparse(20, cases.C25_CODE)) == 0)


def test_c25_sparse_encode_alpha():
    decomposition = pytest.importorskip("sklearn.decomposition")
    X, y = cases.c25()
    z = solve(t(y), t(X), ib.Lasso(0.05))
    lars = decomposition.sparse_encode(y[None], X.T, algorithm="lasso_lars", alpha=0.05)[0]
    assert_close(z, t(lars), rtol=0, atol=CODE_ATOL)
    assert int((z != 0).sum()) == 19


def test_c25_objective_and_lam_max():
    X, y = cases.c25()
    problem = ib.Lasso(2.5)
    z = solve(t(y), t(X), problem)
    objective = float(problem.objective(z, t(y), t(X)))
    assert objective == pytest.approx(9.902719, abs=PRINTED)
    assert objective / 50 == pytest.approx(0.1980544, abs=1e-7)
    assert float(ib.lam_max(t(y), t(X))) == pytest.approx(85.30345, abs=1e-5)
