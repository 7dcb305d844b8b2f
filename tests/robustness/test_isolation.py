"""One bad sample never hides the others' results.

In a batch where some samples are infeasible (basis pursuit, basis pursuit
denoising) or stop before converging (a tiny ``max_iter``), the other samples
come back as if solved alone, and the error or warning names exactly the
bad samples. The unrolled backend has no infeasible kinds (basis pursuit has
no proximal step) and truncates by design, so it reports per sample in
``info.converged`` without a warning.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import implicit_basis as ib
from tests.reference import reference_solve
from tests.robustness import cases
from tests.robustness.cases import CODE_ATOL, t


def infeasible_batch():
    """Return (Y, D, bad rows): rows 1 and 3 are off range(D), the others in it."""
    D, y_ok, y_bad = cases.c08()
    y_far = 2.0 * y_bad + 0.5 * y_ok
    Y = np.stack([y_ok, y_bad, -0.5 * y_ok, y_far, 3.0 * y_ok])
    return Y, D, [1, 3]


def distance_to_range(y, D):
    return float(np.linalg.norm(y - D @ np.linalg.lstsq(D, y, rcond=None)[0]))


# ---------------------------------------------------------------------------
# Infeasible samples


@pytest.mark.parametrize("backend", ["implicit", "cvxpylayers"])
def test_basis_pursuit_names_infeasible_samples(backend):
    Y, D, bad = infeasible_batch()
    with pytest.raises(ib.InfeasibleProblemError) as error:
        ib.sparse_code(t(Y), t(D), ib.BasisPursuit(), backend=backend)
    e = error.value
    assert e.samples == bad
    for position, b in enumerate(bad):
        assert e.distances[position] == pytest.approx(distance_to_range(Y[b], D), rel=1e-9)
    named = sorted(int(b) for b in re.findall(r"(\d+) \(distance", str(e)))
    assert named == bad
    assert e.info.converged.tolist() == [True, False, True, False, True]
    for b in range(5):
        if b in bad:
            assert bool(torch.isnan(e.z[b]).all())
            continue
        alone = ib.sparse_code(t(Y[b]), t(D), ib.BasisPursuit(), backend=backend)
        assert_close(e.z[b].detach(), alone, rtol=0, atol=1e-12)
        assert_close(alone, t(reference_solve("basis_pursuit", Y[b], D).z), rtol=0, atol=CODE_ATOL)


@pytest.mark.parametrize("backend", ["implicit", "cvxpylayers"])
def test_denoising_names_samples_below_distance(backend):
    """Per-sample sigma that requires grad: samples with sigma below their distance fail alone."""
    D, y_ok, y_bad = cases.c08()
    distance = distance_to_range(y_bad, D)
    Y = np.stack([y_bad, y_ok, y_bad, y_bad])
    sigma = t([2 * distance, 0.1, 0.5 * distance, 0.9 * distance], requires_grad=True)
    with warnings.catch_warnings():
        # The error message reads sigma's values: that must not warn about a
        # tensor that requires grad.
        warnings.simplefilter("error")
        with pytest.raises(ib.InfeasibleProblemError) as error:
            ib.sparse_code(t(Y), t(D), ib.BasisPursuitDenoising(sigma), backend=backend)
    e = error.value
    assert e.samples == [2, 3]
    for b in (0, 1):
        alone = ib.sparse_code(t(Y[b]), t(D), ib.BasisPursuitDenoising(float(sigma[b].detach())), backend=backend)
        assert_close(e.z[b].detach(), alone, rtol=0, atol=1e-12)
    expected = reference_solve("basis_pursuit_denoising", y_bad, D, sigma=2 * distance).z
    assert_close(e.z[0].detach(), t(expected), rtol=0, atol=CODE_ATOL)


def test_unrolled_rejects_basis_pursuit():
    Y, D, _ = infeasible_batch()
    with pytest.raises(TypeError, match=r"backend 'unrolled' cannot solve BasisPursuit: it needs the methods prox"):
        ib.sparse_code(t(Y), t(D), ib.BasisPursuit(), backend="unrolled")


# ---------------------------------------------------------------------------
# Samples that do not converge


def mixed_difficulty_batch():
    """Return (Y, D per sample, lam): sample 1 has the coherent frame of C01, the others an orthonormal one."""
    y_hard, G, _ = cases.c01()
    rng = np.random.default_rng(2)
    Q = np.linalg.qr(rng.standard_normal((40, 40)))[0][:, :30]
    D = np.stack([Q, G, Q])
    Y = np.stack([Q @ rng.standard_normal(30), y_hard, Q @ rng.standard_normal(30)])
    lam = 0.05 * np.abs(np.einsum("bmk,bm->bk", D, Y)).max(1)
    return Y, D, lam


def test_implicit_unconverged_sample_named():
    Y, D, lam = mixed_difficulty_batch()
    Y_t, lam_t = t(Y, True), t(lam, True)
    with pytest.warns(ib.ConvergenceWarning) as record:
        z, info = ib.sparse_code(Y_t, t(D), ib.Lasso(lam_t), max_iter=5, return_info=True)
    g_Y, g_lam = torch.autograd.grad(z.sum(), [Y_t, lam_t])
    assert len(record) == 1
    message = str(record[0].message)
    assert re.search(r"did not converge on samples 1 \(gap [0-9.e-]+\) after", message)
    assert info.converged.tolist() == [True, False, True]
    assert bool(torch.isfinite(z).all())
    assert bool(torch.isfinite(g_Y).all())
    for b in (0, 2):
        y_b, lam_b = t(Y[b], True), t(lam[b], True)
        alone = ib.sparse_code(y_b, t(D[b]), ib.Lasso(lam_b))
        g_y_b, g_lam_b = torch.autograd.grad(alone.sum(), [y_b, lam_b])
        assert_close(z[b].detach(), alone.detach(), rtol=0, atol=1e-13)
        assert_close(g_Y[b], g_y_b, rtol=1e-10, atol=1e-13)
        assert_close(g_lam[b], g_lam_b, rtol=1e-10, atol=0)


def test_cvxpylayers_unconverged_sample_named():
    """At 300 SCS iterations the coherent C01 sample stops inaccurate; the easy ones finish."""
    y_hard, D, lam_hard = cases.c01()
    Y = np.stack([0.7 * D[:, 5], y_hard, 0.7 * D[:, 5] + 0.3 * D[:, 20], np.zeros(40)])
    lam = np.array([0.3, lam_hard, 0.3, 0.3])
    message = r"failed on 1 sample\(s\): sample 1: SCS stopped inaccurate"
    with pytest.raises(ib.SolverFailedError, match=message) as error:
        ib.sparse_code(t(Y), t(D), ib.Lasso(t(lam)), backend="cvxpylayers", max_iter=300)
    e = error.value
    assert e.samples == [1]
    assert e.info.converged.tolist() == [True, False, True, True]
    assert bool(torch.isnan(e.z[1]).all())
    for b in (0, 2, 3):
        alone = ib.sparse_code(t(Y[b]), t(D), ib.Lasso(lam[b]), backend="cvxpylayers", max_iter=300)
        assert_close(e.z[b], alone, rtol=0, atol=1e-12)
        assert_close(alone, t(reference_solve("lasso", Y[b], D, lam=lam[b]).z), rtol=0, atol=1e-7)


def test_unrolled_truncation_per_sample():
    """Truncated unrolled steps: info.converged is False on exactly the hard sample, without a warning."""
    Y, D, lam = mixed_difficulty_batch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z, info = ib.sparse_code(t(Y), t(D), ib.Lasso(t(lam)), backend="unrolled", max_iter=300, return_info=True)
    assert info.converged.tolist() == [True, False, True]
    for b in (0, 2):
        alone = ib.sparse_code(t(Y[b]), t(D[b]), ib.Lasso(lam[b]), backend="unrolled", max_iter=300)
        assert_close(z[b], alone, rtol=0, atol=1e-13)
