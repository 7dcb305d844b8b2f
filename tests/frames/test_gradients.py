"""Gradients of every frame: gradcheck in float64, zero-norm atoms, positivity."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call
from torch.testing import assert_close

from implicit_basis import frames

from .families import GRID, LEARNABLE_NAMES, SMOOTH_NAMES, batched_points, make_frame, sample_mask, sample_points


def parameter_gradcheck(frame, t, mask):
    names, values = zip(*frame.named_parameters())
    inputs = tuple(value.detach().clone().requires_grad_() for value in values)

    def evaluate(*tensors):
        return functional_call(frame, dict(zip(names, tensors)), (t,), {"mask": mask})

    return gradcheck(evaluate, inputs)


@pytest.mark.parametrize("name", LEARNABLE_NAMES)
def test_gradcheck_parameters_masked(name):
    frame = make_frame(name)
    assert parameter_gradcheck(frame, sample_points(), sample_mask())


@pytest.mark.parametrize("name", LEARNABLE_NAMES)
def test_gradcheck_parameters_raw_batched(name):
    frame = make_frame(name, normalize=False)
    assert parameter_gradcheck(frame, batched_points(), None)


@pytest.mark.parametrize("name", SMOOTH_NAMES)
def test_gradcheck_t_masked(name):
    frame = make_frame(name)
    t = torch.tensor([0.05, 0.21, 0.37, 0.44, 0.58, 0.71, 0.86, 0.97], dtype=torch.float64)
    t.requires_grad_()
    assert gradcheck(lambda points: frame(points, sample_mask()), (t,))


@pytest.mark.parametrize("name", SMOOTH_NAMES)
def test_gradcheck_t_batched_mask(name):
    frame = make_frame(name)
    t = torch.tensor([0.12, 0.33, 0.49, 0.62, 0.91], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, False, True, True], [True, False, True, True, True]])
    assert gradcheck(lambda points: frame(points, mask), (t,))


def test_gradcheck_union_with_learned():
    union = frames.Union(
        [
            frames.Gabor(0.4, 0.2, 2.0, dtype=torch.float64),
            frames.Learned(GRID, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64),
        ]
    )
    assert parameter_gradcheck(union, sample_points(), sample_mask())


def test_learned_t_gradient_zero():
    frame = make_frame("learned")
    t = sample_points().requires_grad_()
    frame(t, sample_mask()).sum().backward()
    assert torch.equal(t.grad, torch.zeros_like(t))


def test_masked_rows_zero_gradient():
    frame = make_frame("gabor")
    t = sample_points().requires_grad_()
    mask = sample_mask()
    frame(t, mask).pow(2).mul(torch.arange(1.0, 5.0, dtype=torch.float64)).sum().backward()
    assert torch.equal(t.grad[~mask], torch.zeros(2, dtype=torch.float64))


def test_fourier_sine_zero_at_origin():
    # Every sine atom vanishes at t = 0, so it is a zero-norm atom.
    frame = frames.Fourier(2, learn=True, dtype=torch.float64)
    t = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    D = frame(t)
    D.sum().backward()
    sines = D[:, [2, 4]]
    assert torch.equal(sines, torch.zeros_like(sines))
    assert torch.isfinite(t.grad).all()
    assert torch.isfinite(frame.freqs.grad).all()
    assert torch.isfinite(frame.raw_period.grad).all()


def test_fourier_sine_zero_gradient_values():
    # At t = 0 the cosine atoms are stationary in t and in the frequencies, and the
    # sine atoms are treated as constant zeros, so every gradient is zero.
    frame = frames.Fourier(2, learn="freqs", dtype=torch.float64)
    t = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    (frame(t) * torch.arange(20.0, dtype=torch.float64).reshape(4, 5)).sum().backward()
    assert torch.equal(t.grad, torch.zeros_like(t))
    assert torch.equal(frame.freqs.grad, torch.zeros_like(frame.freqs))


def test_fully_masked_atoms_finite():
    frame = frames.RadialBasis([0.2, 0.8], 0.1, dtype=torch.float64)
    t = sample_points().requires_grad_()
    mask = torch.zeros(8, dtype=torch.bool)
    D = frame(t, mask)
    D.sum().backward()
    norms = frame.atom_norms(t, mask)
    assert torch.equal(D, torch.zeros_like(D))
    assert torch.equal(t.grad, torch.zeros_like(t))
    assert torch.equal(frame.centres.grad, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(frame.raw_widths.grad, torch.zeros(2, dtype=torch.float64))
    assert_close(norms, torch.ones(2, dtype=torch.float64))


def test_zero_atom_beside_live_atom():
    # Atom 0 of the learned dictionary is zero on the observed rows, atom 1 is not.
    init = torch.zeros(13, 2, dtype=torch.float64)
    init[:, 1] = torch.linspace(1.0, 2.0, 13, dtype=torch.float64)
    init[2, 0] = 5.0
    frame = frames.Learned(GRID, init=init, dtype=torch.float64)
    t = sample_points()
    D = frame(t)
    D.pow(3).sum().backward()
    grad = frame.dictionary.grad
    assert torch.equal(D[:, 0], torch.zeros(8, dtype=torch.float64))
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[:, 0], torch.zeros(13, dtype=torch.float64))
    assert_close(torch.linalg.vector_norm(D[:, 1]), torch.tensor(1.0, dtype=torch.float64))


def test_float32_underflowing_atom_zero():
    # The bump is at most exp(-60.5) ~ 5e-27 on the samples, so its squared norm
    # underflows to 0 in float32: the atom is treated as zero.
    frame = frames.RadialBasis([0.5, 2.0], 0.1)
    t = torch.linspace(0.0, 0.9, 6, requires_grad=True)
    D = frame(t)
    D.sum().backward()
    assert torch.equal(D[:, 1], torch.zeros(6))
    assert torch.isfinite(t.grad).all()
    assert frame.centres.grad[1] == 0


def test_widths_stay_positive_after_step():
    frame = frames.Gabor([0.3, 0.6], [0.1, 0.2], 2.0, dtype=torch.float64)
    optimizer = torch.optim.SGD(frame.parameters(), lr=100.0)
    (frame.widths.sum()).backward()
    optimizer.step()
    assert (frame.widths > 0).all()
    assert torch.isfinite(frame(sample_points())).all()


def test_learned_decays_are_softplus():
    frame = frames.DampedSinusoids([1.0, 2.0], [0.5, 3.0], dtype=torch.float64)
    expected = torch.tensor([0.5, 3.0], dtype=torch.float64)
    assert_close(frame.decays, expected)
    assert_close(torch.nn.functional.softplus(frame.raw_decays), expected)


class Expansion(torch.nn.Module):
    """Reconstruction of a fitted expansion at new points, as a module for functional_call."""

    def __init__(self, frame):
        super().__init__()
        self.frame = frame

    def forward(self, t_fit, t_new, z):
        return self.frame.evaluate(t_new, self.frame.atom_norms(t_fit)) @ z


def test_evaluate_gradient_through_norms():
    expansion = Expansion(make_frame("radial"))
    t_new = torch.tensor([0.15, 0.55], dtype=torch.float64, requires_grad=True)
    z = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    names, values = zip(*expansion.named_parameters())
    inputs = (t_new,) + tuple(value.detach().clone().requires_grad_() for value in values)

    def evaluate(points, *tensors):
        return functional_call(expansion, dict(zip(names, tensors)), (sample_points(), points, z))

    assert gradcheck(evaluate, inputs)
