"""The SparseCoding layer end to end: codes, gradients to the frame, the signal
and the penalty, interpolation, masks, batching, parameters and copies.

Gradients are checked against central finite differences of the reference
oracle (``tests.reference``, cvxpy with a KKT polish to machine precision).
Its dictionaries are built in numpy from the atom formulas, so the reference
shares no code with the layer or the frames.
"""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.testing import assert_close

import implicit_basis as ib
from implicit_basis import frames
from tests.reference import reference_solve

# The backend of the layers here: "auto" picks the implicit backend for every
# built-in problem. The tests of codes and gradients against the oracle also
# run with cvxpylayers, an independent solver and derivative (SCS at eps
# 1e-10 matches the oracle to about 1e-9 at these sizes).
BACKEND = "auto"
BACKENDS = ["auto", "cvxpylayers"]

F64 = torch.float64

# Finite-difference step on parameters of order 0.05 to 10. The oracle is
# exact to about 1e-15, so the difference quotient is exact to about 1e-9.
STEP = 1e-6


# -----------------------------------------------------------------------------
# Independent references in numpy


def radial_atoms(t, centres, widths):
    """Gaussian bumps exp(-(t - c)^2 / (2 w^2)), atoms as columns, not normalised."""
    return np.exp(-((t[:, None] - centres[None, :]) ** 2) / (2 * widths[None, :] ** 2))


def damped_atoms(t, freqs, decays):
    """Pairs exp(-d t) cos(2 pi f t), exp(-d t) sin(2 pi f t) for t >= 0 (onset 0)."""
    envelope = np.exp(-decays[None, :] * np.maximum(t[:, None], 0.0))
    phase = 2 * np.pi * t[:, None] * freqs[None, :]
    pairs = np.stack([envelope * np.cos(phase), envelope * np.sin(phase)], axis=-1)
    return pairs.reshape(t.size, -1)


def unit_columns(A):
    return A / np.linalg.norm(A, axis=0)


def kkt_margin(y, D, lam, z):
    """Return the distance of a lasso solution from a change of support.

    It is the smaller of ``1 - max |D_j^T r| / lam`` over the atoms off the
    support and the smallest |z_j| on it, relative to max |z|. Finite
    differences are valid only when it clearly exceeds the step.
    """
    support = z != 0
    correlation = np.abs(D.T @ (y - D @ z)) / lam
    off = 1.0 - correlation[~support].max() if (~support).any() else 1.0
    on = np.abs(z[support]).min() / np.abs(z).max()
    return min(off, on)


def solve_lasso(y, D, lam):
    result = reference_solve("lasso", y, D, lam=lam)
    assert result.polished
    return result.z


# -----------------------------------------------------------------------------
# Public case C19: a radial basis frame with learned centres and width


def c19_data():
    t = np.linspace(0.0, 1.0, 40)
    centres = np.linspace(0.05, 0.95, 12)
    rng = np.random.default_rng(19)
    x_true = np.zeros(12)
    x_true[[2, 6, 9]] = [1.0, -0.6, 0.8]
    y = unit_columns(radial_atoms(t, centres, np.full(12, 0.06))) @ x_true
    y = y + 0.01 * rng.standard_normal(40)
    return t, centres, x_true, y


C19_X = [0, 0.070405, 0.867220, 0.078511, 0, -0.027625, -0.526768, 0, 0, 0.714000, 0.027708, 0]
C19_DC = [0, 0.260465, -0.099686, -0.264329, 0, 0.031056, 0.450538, 0, 0, -0.561821, -0.054010, 0]


def c19_run(backend):
    """Return L, x, dL/dw and dL/dc of C19 through the layer.

    The frame stores its widths as raw_widths with widths = softplus(raw_widths),
    one per atom. The single width w is made a leaf and passed in as
    raw_widths = log(expm1(w)) for every atom, so autograd returns dL/dw for
    the shared width value itself (the sum of the per-atom derivatives).
    """
    t, centres, x_true, y = c19_data()
    frame = frames.RadialBasis(centres, 0.05, learn=True, dtype=F64)
    layer = ib.SparseCoding(frame, ib.Lasso(0.05), backend=backend)
    w = torch.tensor(0.05, dtype=F64, requires_grad=True)
    raw = torch.log(torch.expm1(w)).expand(12)
    x = functional_call(layer, {"frame.raw_widths": raw}, (torch.tensor(y), torch.tensor(t)))
    loss = 0.5 * ((x - torch.tensor(x_true)) ** 2).sum()
    loss.backward()
    return loss.detach(), x.detach(), w.grad, frame.centres.grad


def test_c19_frame_matches_formula():
    t, centres, _, _ = c19_data()
    frame = frames.RadialBasis(centres, 0.05, dtype=F64)
    expected = unit_columns(radial_atoms(t, centres, np.full(12, 0.05)))
    assert_close(frame(torch.tensor(t)), torch.tensor(expected), rtol=1e-14, atol=1e-14)


def test_c19_margin():
    t, centres, _, y = c19_data()
    D = unit_columns(radial_atoms(t, centres, np.full(12, 0.05)))
    z = solve_lasso(y, D, 0.05)
    assert kkt_margin(y, D, 0.05, z) > 0.03


@pytest.mark.parametrize("backend", BACKENDS)
def test_c19_values(backend):
    loss, x, _, _ = c19_run(backend)
    assert_close(loss, torch.tensor(0.02152065, dtype=F64), rtol=1e-6, atol=0)
    assert_close(x, torch.tensor(C19_X, dtype=F64), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_c19_gradients(backend):
    _, _, grad_w, grad_c = c19_run(backend)
    assert_close(grad_w, torch.tensor(-4.189149, dtype=F64), rtol=1e-6, atol=0)
    assert_close(grad_c, torch.tensor(C19_DC, dtype=F64), rtol=1e-6, atol=1e-6)


# -----------------------------------------------------------------------------
# Gradients to the frame's parameters against finite differences of the oracle


def irregular_points(seed, m, low=0.0, high=1.0):
    rng = np.random.default_rng(seed)
    return np.sort(rng.uniform(low, high, m))


def reconstruction_loss(z, atoms_new, norms, target, v):
    """The loss used for the frame gradients: interpolation error plus a linear term in z."""
    fitted = (atoms_new / norms) @ z
    return 0.5 * np.sum((fitted - target) ** 2) + v @ z


def layer_loss(layer, y, t, t_new, target, v):
    z = layer(y, t)
    fitted = layer.reconstruct(z, t_new, t=t)
    return 0.5 * ((fitted - target) ** 2).sum() + v @ z


def radial_case():
    t = irregular_points(1, 24)
    centres = np.array([0.1, 0.22, 0.35, 0.5, 0.61, 0.74, 0.86, 0.95])
    widths = np.array([0.05, 0.06, 0.045, 0.07, 0.05, 0.055, 0.06, 0.05])
    rng = np.random.default_rng(2)
    y = radial_atoms(t, np.array([0.3, 0.7]), np.array([0.06, 0.05])) @ np.array([1.0, -0.7])
    y = y + 0.02 * rng.standard_normal(t.size)
    t_new = np.linspace(0.0, 1.0, 17)
    target = radial_atoms(t_new, np.array([0.3, 0.7]), np.array([0.06, 0.05])) @ np.array([1.0, -0.7])
    v = rng.standard_normal(centres.size)
    return t, y, t_new, target, v, centres, widths, 0.1


def radial_reference_loss(t, y, t_new, target, v, centres, widths, lam):
    raw = radial_atoms(t, centres, widths)
    norms = np.linalg.norm(raw, axis=0)
    z = solve_lasso(y, raw / norms, lam)
    return reconstruction_loss(z, radial_atoms(t_new, centres, widths), norms, target, v)


def test_radial_margin():
    t, y, _, _, _, centres, widths, lam = radial_case()
    D = unit_columns(radial_atoms(t, centres, widths))
    z = solve_lasso(y, D, lam)
    assert kkt_margin(y, D, lam, z) > 0.01


@pytest.mark.parametrize("backend", BACKENDS)
def test_radial_gradient_finite_differences(backend):
    t, y, t_new, target, v, centres, widths, lam = radial_case()
    frame = frames.RadialBasis(centres, widths, learn=True, dtype=F64)
    layer = ib.SparseCoding(frame, ib.Lasso(lam), backend=backend)
    tensors = [torch.tensor(a) for a in (y, t, t_new, target, v)]
    layer_loss(layer, *tensors).backward()
    # widths = softplus(raw_widths), so dL/dw = dL/draw / sigmoid(raw).
    grad_widths = frame.raw_widths.grad / torch.sigmoid(frame.raw_widths.detach())

    expected_c, expected_w = [], []
    for j in range(centres.size):
        e = np.zeros(centres.size)
        e[j] = STEP
        plus = radial_reference_loss(t, y, t_new, target, v, centres + e, widths, lam)
        minus = radial_reference_loss(t, y, t_new, target, v, centres - e, widths, lam)
        expected_c.append((plus - minus) / (2 * STEP))
        plus = radial_reference_loss(t, y, t_new, target, v, centres, widths + e, lam)
        minus = radial_reference_loss(t, y, t_new, target, v, centres, widths - e, lam)
        expected_w.append((plus - minus) / (2 * STEP))
    assert_close(frame.centres.grad, torch.tensor(expected_c), rtol=1e-5, atol=1e-5)
    assert_close(grad_widths, torch.tensor(expected_w), rtol=1e-5, atol=1e-5)


def damped_case():
    t = irregular_points(3, 30)
    freqs = np.array([2.3, 5.1, 8.4])
    decays = np.array([1.2, 2.5, 0.7])
    rng = np.random.default_rng(4)
    true_atoms = damped_atoms(t, np.array([2.4, 8.2]), np.array([1.0, 0.8]))
    code = np.array([1.0, 0.3, -0.6, 0.5])
    y = true_atoms @ code + 0.02 * rng.standard_normal(t.size)
    t_new = np.linspace(0.0, 1.0, 21)
    target = damped_atoms(t_new, np.array([2.4, 8.2]), np.array([1.0, 0.8])) @ code
    v = rng.standard_normal(2 * freqs.size)
    return t, y, t_new, target, v, freqs, decays, 0.3


def damped_reference_loss(t, y, t_new, target, v, freqs, decays, lam):
    raw = damped_atoms(t, freqs, decays)
    norms = np.linalg.norm(raw, axis=0)
    z = solve_lasso(y, raw / norms, lam)
    return reconstruction_loss(z, damped_atoms(t_new, freqs, decays), norms, target, v)


def test_damped_margin():
    t, y, _, _, _, freqs, decays, lam = damped_case()
    D = unit_columns(damped_atoms(t, freqs, decays))
    z = solve_lasso(y, D, lam)
    assert kkt_margin(y, D, lam, z) > 0.01


@pytest.mark.parametrize("backend", BACKENDS)
def test_damped_gradient_finite_differences(backend):
    t, y, t_new, target, v, freqs, decays, lam = damped_case()
    frame = frames.DampedSinusoids(freqs, decays, dtype=F64)
    layer = ib.SparseCoding(frame, ib.Lasso(lam), backend=backend)
    tensors = [torch.tensor(a) for a in (y, t, t_new, target, v)]
    layer_loss(layer, *tensors).backward()
    grad_decays = frame.raw_decays.grad / torch.sigmoid(frame.raw_decays.detach())

    expected_f, expected_d = [], []
    for j in range(freqs.size):
        e = np.zeros(freqs.size)
        e[j] = STEP
        plus = damped_reference_loss(t, y, t_new, target, v, freqs + e, decays, lam)
        minus = damped_reference_loss(t, y, t_new, target, v, freqs - e, decays, lam)
        expected_f.append((plus - minus) / (2 * STEP))
        plus = damped_reference_loss(t, y, t_new, target, v, freqs, decays + e, lam)
        minus = damped_reference_loss(t, y, t_new, target, v, freqs, decays - e, lam)
        expected_d.append((plus - minus) / (2 * STEP))
    assert_close(frame.freqs.grad, torch.tensor(expected_f), rtol=1e-5, atol=1e-5)
    assert_close(grad_decays, torch.tensor(expected_d), rtol=1e-5, atol=1e-5)


# -----------------------------------------------------------------------------
# Gradients to the signal and to lam against the closed form on the support


@pytest.mark.parametrize("backend", BACKENDS)
def test_signal_and_lam_gradients_closed_form(backend):
    # On a fixed support S with signs s, z_S = G^-1 (D_S^T y - lam s) where
    # G = D_S^T D_S, so for L = v^T z: dL/dy = D_S G^-1 v_S, dL/dlam = -v_S^T G^-1 s.
    t, y, _, _, v, centres, widths, _ = radial_case()
    lam_value = 0.08
    D = unit_columns(radial_atoms(t, centres, widths))
    z = solve_lasso(y, D, lam_value)
    assert kkt_margin(y, D, lam_value, z) > 0.01
    S = z != 0
    G = D[:, S].T @ D[:, S]
    w = np.linalg.solve(G, v[S])
    expected_y = D[:, S] @ w
    expected_lam = -w @ np.sign(z[S])

    lam = nn.Parameter(torch.tensor(lam_value, dtype=F64))
    frame = frames.RadialBasis(centres, widths, learn=False, dtype=F64)
    layer = ib.SparseCoding(frame, ib.Lasso(lam), backend=backend)
    y_leaf = torch.tensor(y, requires_grad=True)
    (torch.tensor(v) @ layer(y_leaf, torch.tensor(t))).backward()
    assert_close(y_leaf.grad, torch.tensor(expected_y), rtol=1e-6, atol=1e-7)
    assert_close(lam.grad, torch.tensor(expected_lam), rtol=1e-6, atol=1e-7)


def test_per_sample_lam_tensor_gradient():
    # A plain tensor lam of shape (B,) is not registered, but its graph is kept.
    t, y, _, _, v, centres, widths, _ = radial_case()
    frame = frames.RadialBasis(centres, widths, learn=False, dtype=F64)
    lam = torch.tensor([0.08, 0.12], dtype=F64, requires_grad=True)
    layer = ib.SparseCoding(frame, ib.Lasso(lam), backend=BACKEND)
    (layer(torch.tensor(y), torch.tensor(t)) @ torch.tensor(v)).sum().backward()
    D = unit_columns(radial_atoms(t, centres, widths))
    for b, value in enumerate([0.08, 0.12]):
        z = solve_lasso(y, D, value)
        S = z != 0
        w = np.linalg.solve(D[:, S].T @ D[:, S], v[S])
        assert_close(lam.grad[b], torch.tensor(-w @ np.sign(z[S])), rtol=1e-6, atol=1e-7)


# -----------------------------------------------------------------------------
# Interpolation


def fourier_signal(t):
    """0.4 + 0.7 cos(2 pi t) - 1.2 sin(6 pi t): 3 of the 9 atoms of Fourier(4)."""
    return 0.4 + 0.7 * np.cos(2 * np.pi * t) - 1.2 * np.sin(6 * np.pi * t)


# Lasso weight of the interpolation tests. With y = D z_true and D of full
# column rank, the lasso optimality condition D^T (D z - y) = -lam g with
# |g_j| <= 1 gives ||z - z_true|| <= lam sqrt(k) / sigma_min(D)^2, below 2e-8
# here (sigma_min(D) >= 0.13 on these points).
TINY_LAM = 1e-10

EXACT_PROBLEMS = {"lasso": lambda: ib.Lasso(TINY_LAM), "basis_pursuit": ib.BasisPursuit}


@pytest.mark.parametrize("kind", EXACT_PROBLEMS)
def test_interpolation_exact_signal(kind):
    # Fourier(4) has 9 atoms, and a nonzero trigonometric polynomial of degree
    # 4 has at most 8 zeros in a period. So at 14 distinct points in [0, 1) D
    # has full column rank, and D z = y has the one solution z_true. Basis
    # pursuit returns it, and the lasso comes within the bound of TINY_LAM.
    t = irregular_points(5, 14)
    t_new = np.linspace(0.0, 1.0, 50)
    layer = ib.SparseCoding(frames.Fourier(4, dtype=F64), EXACT_PROBLEMS[kind](), backend=BACKEND)
    z = layer(torch.tensor(fourier_signal(t)), torch.tensor(t))
    fitted = layer.reconstruct(z, torch.tensor(t_new), t=torch.tensor(t))
    assert_close(fitted, torch.tensor(fourier_signal(t_new)), rtol=0, atol=1e-7)


@pytest.mark.parametrize("kind", EXACT_PROBLEMS)
def test_interpolation_batched_points(kind):
    # Two signals, each at its own irregular points. The argument above holds for both.
    t = np.stack([irregular_points(6, 14), irregular_points(7, 14)])
    t_new = np.linspace(0.0, 1.0, 50)
    scale = np.array([[1.0], [-0.5]])
    layer = ib.SparseCoding(frames.Fourier(4, dtype=F64), EXACT_PROBLEMS[kind](), backend=BACKEND)
    z = layer(torch.tensor(scale * fourier_signal(t)), torch.tensor(t))
    fitted = layer.reconstruct(z, torch.tensor(t_new), t=torch.tensor(t))
    assert fitted.shape == (2, 50)
    assert_close(fitted, torch.tensor(scale * fourier_signal(t_new)), rtol=0, atol=1e-7)


def test_reconstruct_needs_fitting_points():
    layer = ib.SparseCoding(frames.Fourier(2, dtype=F64), ib.Lasso(0.1), backend=BACKEND)
    z = torch.zeros(5, dtype=F64)
    with pytest.raises(ValueError, match="normalises its atoms over the fitting samples"):
        layer.reconstruct(z, torch.linspace(0, 1, 7, dtype=F64))


def test_reconstruct_union_needs_fitting_points():
    # A union that follows its members' settings normalises through them.
    union = frames.Union([frames.Fourier(1, dtype=F64), frames.RadialBasis([0.5], 0.2, dtype=F64)])
    layer = ib.SparseCoding(union, ib.Lasso(0.1), backend=BACKEND)
    with pytest.raises(ValueError, match="normalises its atoms over the fitting samples"):
        layer.reconstruct(torch.zeros(4, dtype=F64), torch.linspace(0, 1, 7, dtype=F64))


def test_reconstruct_unnormalised_frame():
    frame = frames.RadialBasis([0.2, 0.6], [0.1, 0.2], normalize=False, dtype=F64)
    layer = ib.SparseCoding(frame, ib.Lasso(0.1), backend=BACKEND)
    t_new = np.linspace(0.0, 1.0, 9)
    expected = radial_atoms(t_new, np.array([0.2, 0.6]), np.array([0.1, 0.2])) @ np.array([1.5, -2.0])
    fitted = layer.reconstruct(torch.tensor([1.5, -2.0], dtype=F64), torch.tensor(t_new))
    assert_close(fitted, torch.tensor(expected), rtol=1e-14, atol=1e-14)


def test_reconstruct_mask_without_points():
    layer = ib.SparseCoding(frames.Fourier(1, dtype=F64), ib.Lasso(0.1), backend=BACKEND)
    mask = torch.ones(5, dtype=torch.bool)
    with pytest.raises(ValueError, match="mask was given without t"):
        layer.reconstruct(torch.zeros(3, dtype=F64), torch.zeros(4, dtype=F64), mask=mask)


def test_reconstruct_batch_mismatch():
    layer = ib.SparseCoding(frames.Fourier(1, dtype=F64), ib.Lasso(0.1), backend=BACKEND)
    t = torch.rand(2, 6, dtype=F64)
    with pytest.raises(ValueError, match="z has batch size 3 but t_new, t or mask has batch size 2"):
        layer.reconstruct(torch.zeros(3, 3, dtype=F64), torch.zeros(4, dtype=F64), t=t)


# -----------------------------------------------------------------------------
# Masks


def masked_case():
    t = irregular_points(8, 20)
    rng = np.random.default_rng(9)
    y = np.sin(2 * np.pi * 2.4 * t) * np.exp(-t) + 0.05 * rng.standard_normal(t.size)
    mask = np.ones(20, dtype=bool)
    mask[[1, 6, 7, 13, 19]] = False
    return t, y, mask


def damped_layer():
    frame = frames.DampedSinusoids([1.5, 2.5, 4.0], [0.5, 1.0, 1.5], dtype=F64)
    return ib.SparseCoding(frame, ib.Lasso(0.05), backend=BACKEND)


def test_mask_equals_dropped_samples():
    t, y, mask = masked_case()
    layer = damped_layer()
    y_nan = np.where(mask, y, np.nan)
    z_masked = layer(torch.tensor(y_nan), torch.tensor(t), mask=torch.tensor(mask))
    z_dropped = layer(torch.tensor(y[mask]), torch.tensor(t[mask]))
    assert torch.count_nonzero(z_dropped) > 0
    assert_close(z_masked, z_dropped, rtol=1e-7, atol=1e-8)


def test_mask_constrained_problem_ignores_values():
    # In basis pursuit denoising the masked entries of y would enter the
    # constraint ||D z - y|| <= sigma if they were not set to zero.
    t, y, mask = masked_case()
    frame = frames.DampedSinusoids([1.5, 2.5, 4.0], [0.5, 1.0, 1.5], dtype=F64)
    layer = ib.SparseCoding(frame, ib.BasisPursuitDenoising(0.5), backend=BACKEND)
    y_wrong = np.where(mask, y, 5.0)
    z_masked = layer(torch.tensor(y_wrong), torch.tensor(t), mask=torch.tensor(mask))
    z_dropped = layer(torch.tensor(y[mask]), torch.tensor(t[mask]))
    assert_close(z_masked, z_dropped, rtol=1e-6, atol=1e-7)


def test_mask_gradient_ignores_masked_samples():
    t, y, mask = masked_case()
    layer = damped_layer()
    y_full = torch.tensor(np.where(mask, y, np.nan), requires_grad=True)
    layer(y_full, torch.tensor(t), mask=torch.tensor(mask)).sum().backward()
    y_kept = torch.tensor(y[mask], requires_grad=True)
    layer(y_kept, torch.tensor(t[mask])).sum().backward()
    assert_close(y_full.grad[~torch.tensor(mask)], torch.zeros(5, dtype=F64), rtol=0, atol=0)
    assert_close(y_full.grad[torch.tensor(mask)], y_kept.grad, rtol=1e-6, atol=1e-7)


def test_batched_mask_shared_points():
    t, y, mask = masked_case()
    second = np.ones(20, dtype=bool)
    second[[0, 2, 10, 11]] = False
    masks = np.stack([mask, second])
    layer = damped_layer()
    z = layer(torch.tensor(y), torch.tensor(t), mask=torch.tensor(masks))
    assert z.shape == (2, 6)
    for b in range(2):
        keep = masks[b]
        expected = layer(torch.tensor(y[keep]), torch.tensor(t[keep]))
        assert_close(z[b], expected, rtol=1e-7, atol=1e-8)


def test_mask_wrong_type():
    t, y, mask = masked_case()
    with pytest.raises(TypeError, match="mask must be a bool torch.Tensor"):
        damped_layer()(torch.tensor(y), torch.tensor(t), mask=torch.tensor(mask).long())


def test_mask_wrong_batch():
    t, y, mask = masked_case()
    masks = torch.tensor(np.stack([mask] * 3))
    y2 = torch.tensor(np.stack([y, y]))
    with pytest.raises(ValueError, match="mask has batch size 3 but y has batch size 2"):
        damped_layer()(y2, torch.tensor(t), mask=masks)


# -----------------------------------------------------------------------------
# Batching and input checks


def test_batched_points_match_single_calls():
    t = np.stack([irregular_points(10, 16), irregular_points(11, 16)])
    rng = np.random.default_rng(12)
    y = np.sin(2 * np.pi * 2.2 * t) + 0.05 * rng.standard_normal(t.shape)
    layer = damped_layer()
    z = layer(torch.tensor(y), torch.tensor(t))
    for b in range(2):
        assert_close(z[b], layer(torch.tensor(y[b]), torch.tensor(t[b])), rtol=1e-7, atol=1e-8)


def test_shared_points_batch_of_signals():
    t = irregular_points(13, 16)
    rng = np.random.default_rng(14)
    y = np.stack([np.sin(2 * np.pi * 2.2 * t), np.cos(2 * np.pi * 3.7 * t)])
    y = y + 0.05 * rng.standard_normal(y.shape)
    layer = damped_layer()
    z = layer(torch.tensor(y), torch.tensor(t))
    for b in range(2):
        assert_close(z[b], layer(torch.tensor(y[b]), torch.tensor(t)), rtol=1e-7, atol=1e-8)


def test_dtype_mismatch_names_fix():
    layer = damped_layer()
    y = torch.zeros(8, dtype=torch.float32)
    t = torch.linspace(0, 1, 8, dtype=torch.float32)
    with pytest.raises(TypeError, match=r"y is torch.float32 but the layer's frame is torch.float64\. Convert the layer with layer.float\(\)"):
        layer(y, t)


def test_float32_after_conversion():
    t, y, mask = masked_case()
    lam = nn.Parameter(torch.tensor(0.05, dtype=F64))
    frame = frames.DampedSinusoids([1.5, 2.5, 4.0], [0.5, 1.0, 1.5], dtype=F64)
    layer = ib.SparseCoding(frame, ib.Lasso(lam), backend=BACKEND)
    expected = layer(torch.tensor(y), torch.tensor(t))
    layer.float()
    z = layer(torch.tensor(y, dtype=torch.float32), torch.tensor(t, dtype=torch.float32))
    assert z.dtype == torch.float32
    assert layer.problem.lam.dtype == torch.float32
    assert_close(z, expected.float(), rtol=1e-4, atol=1e-5)


def test_length_mismatch():
    with pytest.raises(ValueError, match="y has 8 samples per signal but t has 9 points"):
        damped_layer()(torch.zeros(8, dtype=F64), torch.zeros(9, dtype=F64))


def test_batch_mismatch():
    with pytest.raises(ValueError, match="y has batch size 2 but t has batch size 3"):
        damped_layer()(torch.zeros(2, 8, dtype=F64), torch.zeros(3, 8, dtype=F64))


def test_frame_must_be_frame():
    with pytest.raises(TypeError, match="frame must be an implicit_basis.frames.Frame"):
        ib.SparseCoding(nn.Linear(3, 3), ib.Lasso(0.1))


def test_problem_must_be_problem():
    with pytest.raises(TypeError, match="problem must be an implicit_basis problem"):
        ib.SparseCoding(frames.Fourier(1), 0.1)


def test_return_info_is_not_an_option():
    with pytest.raises(TypeError, match="return_info is not a layer option"):
        ib.SparseCoding(frames.Fourier(1), ib.Lasso(0.1), return_info=True)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'ista'"):
        ib.SparseCoding(frames.Fourier(1), ib.Lasso(0.1), backend="ista")


def test_return_info():
    t, y, _ = masked_case()
    z, info = damped_layer()(torch.tensor(y), torch.tensor(t), return_info=True)
    assert_close(info.support, z != 0, rtol=0, atol=0)
    assert info.backend == "implicit"


def test_extra_repr():
    layer = ib.SparseCoding(frames.Fourier(1), ib.Lasso(0.1), backend="cvxpylayers", tol=1e-9)
    assert layer.extra_repr() == "backend='cvxpylayers', tol=1e-09"


# -----------------------------------------------------------------------------
# Parameters, state_dict and copies


def learned_layer(centres=(0.2, 0.5, 0.8), width=0.1, lam=0.05, backend=BACKEND):
    frame = frames.RadialBasis(list(centres), width, learn=True, dtype=F64)
    problem = ib.Lasso(nn.Parameter(torch.tensor(lam, dtype=F64)))
    return ib.SparseCoding(frame, problem, backend=backend)


def signal_case():
    t = irregular_points(15, 18)
    y = np.exp(-((t - 0.45) ** 2) / 0.02) - 0.5 * np.exp(-((t - 0.8) ** 2) / 0.01)
    return torch.tensor(y), torch.tensor(t)


def test_parameters_listed():
    names = {name for name, _ in learned_layer().named_parameters()}
    assert names == {"frame.centres", "frame.raw_widths", "problem.lam"}


def test_state_dict_round_trip():
    source = learned_layer(centres=(0.25, 0.45, 0.85), width=0.12, lam=0.03)
    target = learned_layer()
    target.load_state_dict(source.state_dict())
    for (name, value), (_, expected) in zip(target.named_parameters(), source.named_parameters()):
        assert_close(value, expected, rtol=0, atol=0, msg=name)
    y, t = signal_case()
    assert_close(target(y, t), source(y, t), rtol=1e-9, atol=1e-10)


def test_deepcopy_drops_solver_cache():
    # The cvxpylayers backend caches its CvxpyLayer on the problem.
    layer = learned_layer(backend="cvxpylayers")
    y, t = signal_case()
    expected = layer(y, t)
    assert layer.problem._cache
    clone = copy.deepcopy(layer)
    assert not clone.problem._cache
    assert clone.problem.lam is not layer.problem.lam
    assert_close(clone(y, t), expected, rtol=1e-9, atol=1e-10)


def test_pickle_round_trip():
    layer = learned_layer(backend="cvxpylayers")
    y, t = signal_case()
    expected = layer(y, t)
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert not loaded.problem._cache
    assert_close(loaded(y, t), expected, rtol=1e-9, atol=1e-10)
    assert_close(pickle.loads(pickle.dumps(layer))(y, t), expected, rtol=1e-9, atol=1e-10)


def test_copy_trains_independently():
    layer = learned_layer()
    clone = copy.deepcopy(layer)
    y, t = signal_case()
    layer(y, t).sum().backward()
    assert clone.frame.centres.grad is None
    assert layer.frame.centres.grad is not None
