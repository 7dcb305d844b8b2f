"""Atom values against independent references, and orthogonality where it holds."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch
from scipy import special
from torch.testing import assert_close

from implicit_basis import frames

from .families import GRID

RNG_SEED = 0


def random_points(low, high, m=17):
    generator = np.random.default_rng(RNG_SEED)
    return np.sort(generator.uniform(low, high, m))


def as_tensor(values):
    return torch.as_tensor(values, dtype=torch.float64)


# ----------------------------------------------------------------------
# Polynomials.


@pytest.mark.parametrize(
    ("family", "reference"),
    [(frames.Legendre, special.eval_legendre), (frames.Chebyshev, special.eval_chebyt)],
)
def test_polynomial_matches_scipy(family, reference):
    a, b = -0.5, 2.0
    t = random_points(a, b)
    frame = family(7, domain=(a, b), normalize=False, dtype=torch.float64)
    x = (2 * t - (a + b)) / (b - a)
    expected = np.stack([reference(n, x) for n in range(8)], axis=1)
    assert_close(frame(as_tensor(t)), as_tensor(expected))


@pytest.mark.parametrize(
    ("family", "reference"),
    [(frames.Legendre, special.eval_legendre), (frames.Chebyshev, special.eval_chebyt)],
)
def test_polynomial_degree_200(family, reference):
    x = np.concatenate([[-1.0, 1.0], random_points(-1.0, 1.0, 40)])
    frame = family(200, normalize=False, dtype=torch.float64)
    D = frame(as_tensor(x))
    expected = np.stack([reference(n, x) for n in range(201)], axis=1)
    assert torch.isfinite(D).all()
    assert_close(D, as_tensor(expected), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("family", [frames.Legendre, frames.Chebyshev])
def test_polynomial_degree_250_float32(family):
    frame = family(250)
    t = torch.linspace(-1.0, 1.0, 101)
    D = frame(t)
    raw = frame.evaluate(t)
    assert torch.isfinite(D).all()
    assert raw.abs().max() <= 1.0 + 1e-4


def test_chebyshev_matches_cosine_form():
    x = random_points(-1.0, 1.0)
    frame = frames.Chebyshev(30, normalize=False, dtype=torch.float64)
    expected = np.cos(np.arange(31)[None, :] * np.arccos(x)[:, None])
    assert_close(frame(as_tensor(x)), as_tensor(expected), rtol=1e-10, atol=1e-12)


def test_legendre_gauss_orthogonality():
    a, b = 1.0, 4.0
    nodes, weights = np.polynomial.legendre.leggauss(12)
    t = as_tensor((b - a) / 2 * nodes + (a + b) / 2)
    frame = frames.Legendre(11, domain=(a, b), normalize=False, dtype=torch.float64)
    D = frame(t)
    gram = D.T @ torch.diag(as_tensor(weights)) @ D
    expected = torch.diag(as_tensor(2.0 / (2 * np.arange(12) + 1)))
    assert_close(gram, expected, rtol=0, atol=1e-12)


def test_chebyshev_node_orthogonality():
    n = 15
    nodes = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    frame = frames.Chebyshev(n - 1, dtype=torch.float64)
    D = frame(as_tensor(nodes))
    assert_close(D.T @ D, torch.eye(n, dtype=torch.float64), rtol=0, atol=1e-12)


def test_polynomial_overflow_raises():
    frame = frames.Chebyshev(200)
    with pytest.raises(ValueError, match=r"Chebyshev produced a non-finite atom: atom \d+ at sample \(0,\)"):
        frame(torch.tensor([5.0, 0.0]))


# ----------------------------------------------------------------------
# Fourier.


def test_fourier_matches_numpy():
    period = 2.5
    t = random_points(-1.0, 3.0)
    frame = frames.Fourier(3, period=period, normalize=False, dtype=torch.float64)
    columns = [np.ones_like(t)]
    for f in range(1, 4):
        columns += [np.cos(2 * np.pi * f * t / period), np.sin(2 * np.pi * f * t / period)]
    assert_close(frame(as_tensor(t)), as_tensor(np.stack(columns, axis=1)))


def test_fourier_uniform_grid_orthogonality():
    period, n = 3.0, 11
    t = torch.arange(n, dtype=torch.float64) * period / n
    frame = frames.Fourier(5, period=period, dtype=torch.float64)
    D = frame(t)
    assert_close(D.T @ D, torch.eye(11, dtype=torch.float64), rtol=0, atol=1e-12)


def test_fourier_learned_period_value():
    frame = frames.Fourier(1, period=0.75, learn="period", dtype=torch.float64)
    assert_close(frame.period, torch.tensor(0.75, dtype=torch.float64))


# ----------------------------------------------------------------------
# Damped sinusoids, Gabor atoms, radial basis functions.


def test_damped_sinusoids_match_numpy():
    freqs, decays, onset = np.array([0.5, 2.0]), np.array([0.0, 1.5]), 0.4
    t = random_points(-1.0, 3.0)
    frame = frames.DampedSinusoids(freqs, decays, onset, learn="freqs", normalize=False, dtype=torch.float64)
    envelope = np.exp(-decays[None, :] * np.maximum(t[:, None] - onset, 0.0))
    phase = 2 * np.pi * freqs[None, :] * t[:, None]
    expected = np.stack([envelope * np.cos(phase), envelope * np.sin(phase)], axis=2).reshape(len(t), 4)
    assert_close(frame(as_tensor(t)), as_tensor(expected))


def test_gabor_matches_numpy():
    centres, widths, freqs = np.array([0.2, 0.9]), np.array([0.1, 0.4]), np.array([3.0, 0.5])
    t = random_points(-0.5, 1.5)
    frame = frames.Gabor(centres, widths, freqs, normalize=False, dtype=torch.float64)
    shift = t[:, None] - centres[None, :]
    window = np.exp(-(shift**2) / (2 * widths**2))
    phase = 2 * np.pi * freqs * shift
    expected = np.stack([window * np.cos(phase), window * np.sin(phase)], axis=2).reshape(len(t), 4)
    assert_close(frame(as_tensor(t)), as_tensor(expected))


def test_gabor_grid_layout():
    frame = frames.Gabor.grid((0.0, 2.0), 3, [1.0, 4.0], dtype=torch.float64)
    expected_centres = as_tensor([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    expected_freqs = as_tensor([1.0, 4.0, 1.0, 4.0, 1.0, 4.0])
    assert frame.n_atoms == 12
    assert_close(frame.centres, expected_centres)
    assert_close(frame.freqs, expected_freqs)
    assert_close(frame.widths, torch.ones(6, dtype=torch.float64))


def test_radial_basis_matches_numpy():
    centres, widths = np.array([-0.3, 0.1, 0.7]), np.array([0.2, 0.05, 0.5])
    t = random_points(-1.0, 1.0)
    frame = frames.RadialBasis(centres, widths, normalize=False, dtype=torch.float64)
    expected = np.exp(-((t[:, None] - centres) ** 2) / (2 * widths**2))
    assert_close(frame(as_tensor(t)), as_tensor(expected))


def test_radial_basis_grid():
    frame = frames.RadialBasis.grid((-1.0, 1.0), 5, dtype=torch.float64)
    assert_close(frame.centres, as_tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    assert_close(frame.widths, torch.full((5,), 0.5, dtype=torch.float64))


# ----------------------------------------------------------------------
# Wavelets.


@pytest.mark.parametrize(("kind", "pywt_name"), [("ricker", "mexh"), ("morlet", "morl"), ("mexh", "mexh")])
def test_mother_wavelet_matches_pywt(kind, pywt_name):
    psi, x = pywt.ContinuousWavelet(pywt_name).wavefun(level=8)
    frame = frames.Wavelet(kind, 1.0, 0.0, normalize=False, dtype=torch.float64)
    assert_close(frame(as_tensor(x))[:, 0], as_tensor(psi), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pywt_name", ["mexh", "morl"])
def test_scaled_wavelet_matches_pywt(pywt_name):
    psi, x = pywt.ContinuousWavelet(pywt_name).wavefun(level=6)
    scale, shift = 0.3, -1.2
    frame = frames.Wavelet(pywt_name, scale, shift, normalize=False, dtype=torch.float64)
    t = as_tensor(shift + scale * x)
    assert_close(frame(t)[:, 0], as_tensor(psi / np.sqrt(scale)), rtol=1e-12, atol=1e-12)


def test_wavelet_dyadic_grid():
    frame = frames.Wavelet.dyadic("ricker", (0.0, 8.0), 3, dtype=torch.float64)
    scales = frame.scales.detach()
    shifts = frame.shifts.detach()
    assert frame.n_atoms == 5 + 9 + 17
    assert_close(scales[:5], torch.full((5,), 2.0, dtype=torch.float64))
    assert_close(scales[-17:], torch.full((17,), 0.5, dtype=torch.float64))
    assert_close(shifts[5:14], torch.linspace(0.0, 8.0, 9, dtype=torch.float64))


# ----------------------------------------------------------------------
# Learned dictionaries and unions.


def test_learned_gathers_rows():
    init = torch.arange(26, dtype=torch.float64).reshape(13, 2)
    frame = frames.Learned(GRID, init=init, normalize=False, dtype=torch.float64)
    rows = torch.tensor([[5, 0, 12], [3, 3, 7]])
    assert_close(frame(GRID[rows]), init[rows])


def test_learned_float32_grid_after_double():
    frame = frames.Learned(GRID, 2, generator=torch.Generator().manual_seed(0)).double()
    D = frame(GRID[torch.tensor([1, 4, 11])])
    assert D.shape == (3, 2)
    assert_close(frame.grid, GRID)


def test_learned_random_init_unit_columns():
    frame = frames.Learned(GRID, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    norms = torch.linalg.vector_norm(frame.dictionary.detach(), dim=0)
    assert_close(norms, torch.ones(4, dtype=torch.float64))


def test_union_concatenates_atoms():
    fourier = frames.Fourier(2, normalize=False, dtype=torch.float64)
    radial = frames.RadialBasis([0.2, 0.4, 0.9], 0.3, normalize=False, dtype=torch.float64)
    union = frames.Union([fourier, radial])
    t = as_tensor(random_points(0.0, 1.0))
    assert union.groups == [5, 3]
    assert_close(union(t), torch.cat([fourier(t), radial(t)], dim=1))
