"""The published cases on the unrolled backend (FISTA and ISTA with many steps).

The unrolled backend differentiates a fixed number of proximal-gradient
steps. Where those steps converge (small, well-conditioned cases), its codes
and gradients must match the right values, and at the kinks it must follow
the implicit backend's convention: a tie at the threshold counts as
inactive, with derivative 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import implicit_basis as ib
from tests.robustness import cases
from tests.robustness.cases import F64, PRINTED, sparse, t

BACKEND = "unrolled"
# FISTA steps that converge the cases below to their printed digits. C11 is
# the slowest: its codes are within 6e-7 after 1000 steps, but ||dL/dD||
# needs 3000 (off by 1.3e-6 after 1000, 1.3e-7 after 3000).
STEPS = 1000
STEPS_C11 = 3000


def solve(y, D, problem, steps=STEPS, algorithm="fista", **options):
    return ib.sparse_code(y, D, problem, backend=BACKEND, max_iter=steps, algorithm=algorithm, **options)


# ---------------------------------------------------------------------------
# C04: lam at and around lam_max


def c04_run(factor):
    y, D, lam_max = cases.c04()
    y_t, D_t, lam_t = t(y, True), t(D, True), t(factor * lam_max, True)
    z = solve(y_t, D_t, ib.Lasso(lam_t))
    g_y, g_lam, g_D = torch.autograd.grad(z.sum(), [y_t, lam_t, D_t])
    return z.detach(), g_y, g_lam, g_D


@pytest.mark.parametrize("factor", [1.5, 1.0])
def test_c04_at_and_above_lam_max(factor):
    z, g_y, g_lam, g_D = c04_run(factor)
    assert bool((z == 0).all())
    for grad in (g_y, g_lam, g_D):
        assert bool((grad == 0).all())


def test_c04_just_below_lam_max():
    _, D, _ = cases.c04()
    z, g_y, g_lam, g_D = c04_run(0.999)
    assert torch.nonzero(z).flatten().tolist() == [7]
    assert float(z[7]) == pytest.approx(-4.852180e-4, abs=1e-10)
    assert float(g_lam) == pytest.approx(0.1197374, abs=1e-7)
    assert float(g_y.abs().max()) == pytest.approx(0.2285715, abs=1e-7)
    assert float(g_D.abs().max()) == pytest.approx(0.1360913, abs=1e-7)
    d7 = D[:, 7]
    assert_close(g_y, t(d7 / (d7 @ d7)), rtol=1e-10, atol=0)


# ---------------------------------------------------------------------------
# C05: ties at the threshold, the same convention as the implicit backend


@pytest.mark.parametrize("algorithm", ["fista", "ista"])
def test_c05_ties_match_implicit(algorithm):
    grads = {}
    for backend in ("implicit", BACKEND):
        y_t, lam_t = t(cases.C05_Y, True), t(0.5, True)
        options = {"max_iter": 50, "algorithm": algorithm} if backend == BACKEND else {}
        z = ib.sparse_code(y_t, torch.eye(8, dtype=F64), ib.Lasso(lam_t), backend=backend, **options)
        assert torch.equal(z.detach(), t(cases.C05_Z))
        grads[backend] = torch.autograd.grad(z.sum(), [y_t, lam_t])
    g_y, g_lam = grads[BACKEND]
    assert torch.equal(g_y, t(cases.C05_GRAD))
    assert float(g_lam) == -1.0
    for ours, theirs in zip(grads[BACKEND], grads["implicit"]):
        assert torch.equal(ours, theirs)


def test_c05_tie_entry_lam_derivative():
    lam_t = t(0.5, True)
    z = solve(t(cases.C05_Y), torch.eye(8, dtype=F64), ib.Lasso(lam_t), steps=50)
    (g_lam,) = torch.autograd.grad(z[2], lam_t)
    assert float(g_lam) == 0.0


def test_c05_orthogonal_no_nan():
    """With D = Q, rounding moves the ties by ~1e-16: values stay right and nothing is NaN.

    The rounding of each iteration decides on which side of a moved tie an
    atom lands, so the gradient at the two tie entries may be 0 or 1 here.
    Only the implicit backend treats near-ties as ties (its degenerate flag).
    """
    y, Q = cases.c05_orthogonal()
    y_t, lam_t = t(y, True), t(0.5, True)
    z = solve(y_t, t(Q), ib.Lasso(lam_t), steps=200)
    g_y, g_lam = torch.autograd.grad(z.sum(), [y_t, lam_t])
    assert_close(z.detach(), t(cases.C05_Z), rtol=0, atol=1e-14)
    assert bool(torch.isfinite(g_y).all())
    assert bool(torch.isfinite(g_lam))
    in_z = t(Q).T @ g_y
    untied = [0, 1, 3, 4, 5, 6]
    assert_close(in_z[untied], t(cases.C05_GRAD[untied]), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# C11: batches with a shared dictionary


def test_c11_batch_values_and_gradients():
    D, Y, lam = cases.c11()
    Y_t, D_t, lam_t = t(Y, True), t(D, True), t(lam, True)
    z = solve(Y_t, D_t, ib.Lasso(lam_t), steps=STEPS_C11)
    g_Y, g_D, g_lam = torch.autograd.grad(z.sum(), [Y_t, D_t, lam_t])
    expected = np.stack([sparse(10, row) for row in cases.C11_ROWS])
    assert z.shape == (5, 10)
    assert_close(z.detach(), t(expected), rtol=0, atol=PRINTED)
    assert torch.equal(z.detach() == 0, t(expected) == 0)
    assert_close(g_lam, t(cases.C11_GRAD_LAM), rtol=0, atol=PRINTED)
    assert float(g_D.norm()) == pytest.approx(1.185532, abs=PRINTED)
    assert_close(g_D[0], t(cases.C11_GRAD_D_ROW0), rtol=0, atol=PRINTED)
    assert_close(g_Y[0], t(cases.C11_GRAD_Y_ROW0), rtol=0, atol=PRINTED)


def test_c11_empty_batch():
    D, _, _ = cases.c11()
    z = solve(torch.zeros(0, 6, dtype=F64), t(D), ib.Lasso(0.5))
    assert z.shape == (0, 10)


# ---------------------------------------------------------------------------
# C12: float32 in, float32 out


def test_c12_float32():
    D, y, lam = cases.c12()
    y_t, D_t, lam_t = t(y, True, torch.float32), t(D, True, torch.float32), t(lam, True, torch.float32)
    z = solve(y_t, D_t, ib.Lasso(lam_t))
    z.sum().backward()
    assert z.dtype == torch.float32
    assert y_t.grad.dtype == torch.float32
    assert D_t.grad.dtype == torch.float32
    assert lam_t.grad.dtype == torch.float32
    assert_close(z.detach()[cases.C12_SUPPORT], t(cases.C12_VALUES, dtype=torch.float32), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# C14: the derivative in lam near and at 0


@pytest.mark.parametrize("lam", [0.0, 1e-10, 1e-4, 0.1])
def test_c14_lam_derivative_constant(lam):
    y, D, _, _, _ = cases.c14()
    lam_t = t(lam, True)
    z = solve(t(y), t(D), ib.Lasso(lam_t), steps=500)
    (g_lam,) = torch.autograd.grad(z.sum(), lam_t)
    assert float(g_lam) == pytest.approx(cases.C14_DL_DLAM, abs=PRINTED)


# ---------------------------------------------------------------------------
# C15 and C16: a zero atom, a zero signal


def test_c15_zero_atom():
    D, y, lam = cases.c15()
    D[:, 5] = 0.0
    y_t, D_t = t(y, True), t(D, True)
    z = solve(y_t, D_t, ib.Lasso(lam))
    g_y, g_D = torch.autograd.grad(z.sum(), [y_t, D_t])
    assert_close(z.detach(), t(sparse(12, cases.C15_ZERO_ATOM)), rtol=0, atol=PRINTED)
    assert float(z[5].detach()) == 0.0
    assert bool((g_D[:, 5] == 0).all())
    assert bool(torch.isfinite(g_y).all())


def test_c16_zero_signal():
    y, D = cases.c16()
    y_t, D_t, lam_t = t(y, True), t(D, True), t(0.1, True)
    z = solve(y_t, D_t, ib.Lasso(lam_t))
    grads = torch.autograd.grad(z.sum(), [y_t, lam_t, D_t])
    assert bool((z == 0).all())
    for grad in grads:
        assert bool((grad == 0).all())


def test_c16_relative_lam_at_zero_signal():
    y, D = cases.c16()
    y_t = t(y, True)
    z = solve(y_t, t(D), ib.Lasso(0.1 * ib.lam_max(y_t, t(D))))
    (g_y,) = torch.autograd.grad(z.sum(), y_t)
    assert bool((z == 0).all())
    assert bool((g_y == 0).all())


# ---------------------------------------------------------------------------
# C18: zero and infinite group weights


def test_c18_zero_weight_unpenalised():
    D, y = cases.c18()
    z = solve(t(y), t(D), ib.GroupLasso(1.0, cases.C18_GROUPS, weights=[1.0, 0.0, 2.0]))
    assert_close(z, t(cases.C18_ZERO_WEIGHT), rtol=0, atol=PRINTED)


def test_c18_infinite_weight_no_nan():
    """An infinite group weight forces the group to zero, with finite gradients everywhere."""
    D, y = cases.c18()
    weights = t([1.0, float("inf"), 2.0], True)
    y_t, D_t, lam_t = t(y, True), t(D, True), t(1.0, True)
    z = solve(y_t, D_t, ib.GroupLasso(lam_t, cases.C18_GROUPS, weights=weights))
    grads = torch.autograd.grad(z.sum(), [y_t, D_t, lam_t, weights])
    assert_close(z.detach(), t(cases.C18_INF_WEIGHT), rtol=0, atol=PRINTED)
    assert bool((z[2:5] == 0).all())
    for grad in grads:
        assert bool(torch.isfinite(grad).all())
    assert bool((grads[1][:, 2:5] == 0).all())


def test_fista_backend_matches_beck_teboulle():
    from implicit_basis.unrolled.classic import fista, ista

    generator = torch.Generator().manual_seed(0)
    D = torch.randn(20, 40, dtype=torch.float64, generator=generator)
    D = D / D.norm(dim=0)
    y = torch.randn(3, 20, dtype=torch.float64, generator=generator)
    for steps in (1, 2, 5, 30):
        backend_fista = ib.sparse_code(y, D, ib.Lasso(0.3), backend="unrolled", max_iter=steps)
        backend_ista = ib.sparse_code(
            y, D, ib.Lasso(0.3), backend="unrolled", max_iter=steps, algorithm="ista"
        )
        torch.testing.assert_close(backend_fista, fista(y, D, 0.3, steps), rtol=0, atol=1e-13)
        torch.testing.assert_close(backend_ista, ista(y, D, 0.3, steps), rtol=0, atol=1e-13)
