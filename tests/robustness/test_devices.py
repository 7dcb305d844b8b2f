"""Outputs and gradients on the input's device, for every backend (case C21).

These need a CUDA device and are skipped without one. The checks that tensors
on different devices raise in the forward pass, before any solve, run on
every machine in ``test_invalid.py`` (with the meta device standing in for a
second device).

The implicit and unrolled backends compute on the input's device; the
cvxpylayers backend solves on the CPU and moves the results back, as its
module docstring states. Either way codes and every ``.grad`` must come back on
the input's device, equal to the CPU run.
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import implicit_basis as ib
from implicit_basis import frames
from tests.robustness import cases
from tests.robustness.cases import F64, t

BACKENDS = ["implicit", "cvxpylayers", "unrolled"]
CUDA = "cuda:0"

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def options(backend):
    return {"max_iter": 500} if backend == "unrolled" else {}


def run(device, backend, B=None):
    """Solve C21 on ``device``; return the codes and the leaves (y, D, lam) with their .grad."""
    y, D, lam = cases.c21(B)
    leaves = [t(value).to(device).requires_grad_(True) for value in (y, D, lam)]
    y_t, D_t, lam_t = leaves
    z = ib.sparse_code(y_t, D_t, ib.Lasso(lam_t), backend=backend, **options(backend))
    (z * z).sum().backward()
    return z.detach(), leaves


@requires_cuda
@pytest.mark.parametrize("backend", BACKENDS)
def test_c21_mixed_devices_raise_in_forward(no_solver, backend):
    y, D, lam = cases.c21()
    with pytest.raises(ValueError, match=r"y is on cpu but D is on cuda:0; move both to one device"):
        ib.sparse_code(t(y), t(D).to(CUDA), ib.Lasso(lam), backend=backend)


@requires_cuda
@pytest.mark.parametrize("backend", BACKENDS)
def test_c21_lam_on_other_device(no_solver, backend):
    y, D, lam = cases.c21()
    with pytest.raises(ValueError, match=r"lam is on cuda:0 but the signals are on cpu"):
        ib.sparse_code(t(y), t(D), ib.Lasso(t(lam).to(CUDA)), backend=backend)


@requires_cuda
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("B", [None, 64], ids=["single", "batch64"])
def test_c21_cuda_matches_cpu(backend, B):
    z, leaves = run(CUDA, backend, B)
    z_cpu, leaves_cpu = run("cpu", backend, B)
    assert z.device == torch.device(CUDA)
    assert z.dtype == F64
    for leaf in leaves:
        assert leaf.grad.device == torch.device(CUDA)
    assert_close(z.cpu(), z_cpu, rtol=0, atol=1e-10)
    for leaf, leaf_cpu in zip(leaves, leaves_cpu):
        assert_close(leaf.grad.cpu(), leaf_cpu.grad, rtol=1e-8, atol=1e-10)


@requires_cuda
@pytest.mark.parametrize("backend", ["implicit", "cvxpylayers"])
def test_cuda_basis_pursuit(backend):
    D, y_ok, _ = cases.c08()
    results = []
    for device in (CUDA, "cpu"):
        y = t(y_ok).to(device).requires_grad_(True)
        z = ib.sparse_code(y, t(D).to(device), ib.BasisPursuit(), backend=backend)
        z.abs().sum().backward()
        assert z.device == torch.device(device)
        assert y.grad.device == torch.device(device)
        results.append((z.detach().cpu(), y.grad.cpu()))
    assert_close(results[0][0], results[1][0], rtol=0, atol=1e-10)


@requires_cuda
@pytest.mark.parametrize("backend", BACKENDS)
def test_cuda_layer_parameters(backend):
    """A layer moved to the GPU keeps every parameter and gradient there."""
    frame = frames.RadialBasis([0.2, 0.5, 0.8], 0.1, learn=True, dtype=F64)
    layer = ib.SparseCoding(frame, ib.Lasso(torch.nn.Parameter(torch.tensor(0.05, dtype=F64))), backend=backend,
                            **options(backend))
    points = torch.linspace(0, 1, 12, dtype=F64)
    y = torch.sin(6 * points)
    expected = layer(y, points).detach()
    layer = layer.to(CUDA)
    z = layer(y.to(CUDA), points.to(CUDA))
    z.sum().backward()
    assert z.device == torch.device(CUDA)
    for name, parameter in layer.named_parameters():
        assert parameter.grad.device == torch.device(CUDA), name
    assert_close(z.detach().cpu(), expected, rtol=0, atol=1e-10)
