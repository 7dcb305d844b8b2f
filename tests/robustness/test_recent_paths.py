"""Hard cases of the lasso backward's factor reuse, the basis pursuit fallbacks and device strings.

Gradients with reused factors are checked against the backward that forms
and factors each support system itself. Basis pursuit codes are checked by
an independent certificate: feasibility, and a dual point found by a linear
program over the certificate conditions.
"""

from __future__ import annotations

import gc
import logging
import re
import weakref

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch.testing import assert_close

import implicit_basis as ib
import implicit_basis.diff.implicit as implicit_module
from implicit_basis.diff.implicit import DENSE_SUPPORT_LIMIT, attach_implicit_gradient
from implicit_basis.inputs import prepare_inputs
from implicit_basis.solvers import linalg

REUSE_LOGGER = "implicit_basis.coding.lasso"
REUSE_PATTERN = re.compile(r"reusing the forward's support factor on (\d+) of (\d+) samples")
# Reuse and the backward without factors solve the same systems with two
# separately formed factorisations, so they agree to rounding.
GRAD_RTOL = 1e-10


def _data(m, k, B, seed):
    generator = torch.Generator().manual_seed(seed)
    D = torch.randn(m, k, generator=generator, dtype=torch.float64)
    D = D / D.norm(dim=0)
    x = torch.randn(B, k, generator=generator, dtype=torch.float64)
    x = x * (torch.rand(B, k, generator=generator) < 0.15)
    y = x @ D.T + 0.05 * torch.randn(B, m, generator=generator, dtype=torch.float64)
    return y, D


def _sparse_signals(D, B, first, generator):
    """Return (x, D x) with x having ``first + b`` nonzeros in sample b."""
    k = D.shape[-1]
    x = torch.zeros(B, k, dtype=D.dtype)
    for b in range(B):
        atoms = torch.randperm(k, generator=generator)[: first + b]
        x[b, atoms] = torch.randn(len(atoms), generator=generator, dtype=D.dtype)
    return x, x @ D.T


def _gradients(make_problem, y0, D0, leaves0, *, reuse, init=None):
    """Return the gradients of ``<z, v>`` in y, D and the leaves, with or without the forward's factors."""
    y = y0.clone().requires_grad_()
    D = D0.clone().requires_grad_()
    leaves = {name: value.clone().requires_grad_() for name, value in leaves0.items()}
    problem = make_problem(leaves)
    if reuse:
        z = ib.sparse_code(y, D, problem, init=init)
    else:
        with torch.no_grad():
            z_star = ib.sparse_code(y, D, problem, init=init)
        z = attach_implicit_gradient(problem, prepare_inputs(y, D, problem), z_star, DENSE_SUPPORT_LIMIT)
    v = torch.linspace(-1.0, 1.0, z.numel(), dtype=torch.float64).reshape(z.shape)
    (z * v).sum().backward()
    grads = {"y": y.grad, "D": D.grad}
    grads.update({name: leaf.grad for name, leaf in leaves.items()})
    return grads


def _reused_counts(caplog):
    return [tuple(int(n) for n in match.groups()) for match in REUSE_PATTERN.finditer(caplog.text)]


def _assert_same(reused, fallback):
    for name, grad in fallback.items():
        scale = float(grad.abs().max())
        assert_close(reused[name], grad, rtol=GRAD_RTOL, atol=GRAD_RTOL * scale, msg=name)


def _certify(z, y, D):
    """Return (relative ||D z - y||, the smallest max |d_j^T nu| off the support with D_S^T nu = sign(z_S)).

    The second value is at most 1 exactly when ``z`` is a basis pursuit
    solution, given that ``z`` is feasible.
    """
    z, y, D = z.numpy(), y.numpy(), D.numpy()
    m = D.shape[0]
    support = z != 0
    off = D[:, ~support].T
    # Variables (nu, t): minimise t subject to D_S^T nu = sign(z_S) and |off nu| <= t.
    cost = np.zeros(m + 1)
    cost[-1] = 1.0
    ones = np.ones((off.shape[0], 1))
    result = linprog(
        cost,
        A_ub=np.vstack([np.hstack([off, -ones]), np.hstack([-off, -ones])]),
        b_ub=np.zeros(2 * off.shape[0]),
        A_eq=np.hstack([D[:, support].T, np.zeros((int(support.sum()), 1))]),
        b_eq=np.sign(z[support]),
        bounds=[(None, None)] * (m + 1),
        method="highs",
    )
    assert result.status == 0, result.message
    return np.linalg.norm(D @ z - y) / np.linalg.norm(y), result.x[-1]


def test_reuse_mixed_batch(caplog):
    """Empty supports, unpenalised and forced-zero atoms and a wrong warm start in one batch."""
    y, D = _data(20, 40, 6, seed=0)
    lam = ib.lam_max(y, D) * torch.tensor([0.3, 0.5, 1.0, 1.5, 0.05, 0.2], dtype=torch.float64)
    weights = torch.linspace(0.5, 1.5, 40, dtype=torch.float64)
    weights[[0, 1]] = 0.0
    weights[[5, 7]] = torch.inf
    generator = torch.Generator().manual_seed(5)
    init = torch.randn(6, 40, generator=generator, dtype=torch.float64)
    init = init * (torch.rand(6, 40, generator=generator) < 0.3)
    leaves = {"lam": lam, "weights": weights}

    def make(leaves):
        return ib.Lasso(leaves["lam"], weights=leaves["weights"])

    fallback = _gradients(make, y, D, leaves, reuse=False, init=init)
    with caplog.at_level(logging.DEBUG, logger=REUSE_LOGGER):
        reused = _gradients(make, y, D, leaves, reuse=True, init=init)
    counts = _reused_counts(caplog)
    assert len(counts) == 1
    assert counts[0][0] > 0
    _assert_same(reused, fallback)


def test_reuse_elastic_net_duplicates(caplog):
    """Duplicate atoms leave the elastic net's systems regular, so their factors are reused."""
    y, D = _data(20, 40, 6, seed=0)
    D[:, 3] = D[:, 2]
    D[:, 10] = D[:, 11]
    y = y + 2 * D[:, 2]
    leaves = {
        "lam": 0.1 * ib.lam_max(y, D),
        "l2": torch.linspace(0.01, 1.0, 6, dtype=torch.float64),
    }

    def make(leaves):
        return ib.ElasticNet(leaves["lam"], leaves["l2"])

    fallback = _gradients(make, y, D, leaves, reuse=False)
    with caplog.at_level(logging.DEBUG, logger=REUSE_LOGGER):
        reused = _gradients(make, y, D, leaves, reuse=True)
    assert _reused_counts(caplog) == [(6, 6)]
    _assert_same(reused, fallback)


def test_reuse_gradcheck_forced_atoms():
    """gradcheck with per-sample lam (one sample above lam_max) and fixed 0 and inf weights."""
    y, D = _data(8, 14, 3, seed=1)
    lam = ib.lam_max(y, D) * torch.tensor([0.3, 0.5, 1.3], dtype=torch.float64)
    fixed = torch.linspace(0.5, 1.5, 14, dtype=torch.float64)
    fixed[[0, 3]] = 0.0
    fixed[5] = torch.inf
    fixed_entries = (fixed == 0) | torch.isinf(fixed)

    def code(y, D, lam, free):
        return ib.sparse_code(y, D, ib.Lasso(lam, weights=torch.where(fixed_entries, fixed, free)))

    free = torch.where(fixed_entries, torch.ones_like(fixed), fixed)
    inputs = (y.requires_grad_(), D.requires_grad_(), lam.requires_grad_(), free.requires_grad_())
    assert torch.autograd.gradcheck(code, inputs, eps=1e-7, atol=1e-6, rtol=1e-5)


def test_factor_freed_after_backward(monkeypatch):
    """The saved factors survive a retain_graph backward and are freed by the last one."""
    references = []
    tensors = linalg.SupportFactor.tensors

    def recording(self):
        saved = tensors(self)
        references.extend(weakref.ref(t) for t in saved)
        return saved

    monkeypatch.setattr(linalg.SupportFactor, "tensors", recording)
    y0, D = _data(20, 40, 6, seed=0)
    y = y0.clone().requires_grad_()
    z = ib.sparse_code(y, D, ib.Lasso(0.3 * ib.lam_max(y0, D)))
    assert references
    (z**2).sum().backward(retain_graph=True)
    first = y.grad.clone()
    gc.collect()
    assert all(ref() is not None for ref in references)
    y.grad = None
    (z**2).sum().backward()
    assert_close(y.grad, first, rtol=0.0, atol=0.0)
    gc.collect()
    assert all(ref() is None for ref in references)


def test_no_factor_without_grad(monkeypatch):
    """A forward under no_grad, or on inputs without grad, keeps no factor."""
    factors_made = []
    tensors = linalg.SupportFactor.tensors

    def recording(self):
        factors_made.append(True)
        return tensors(self)

    monkeypatch.setattr(linalg.SupportFactor, "tensors", recording)
    y, D = _data(20, 40, 6, seed=0)
    problem = ib.Lasso(0.3 * ib.lam_max(y, D))
    with torch.no_grad():
        ib.sparse_code(y.clone().requires_grad_(), D, problem)
    ib.sparse_code(y, D, problem)
    assert factors_made == []


def test_layer_training_matches_fallback(monkeypatch):
    """Frame-parameter gradients of a few SGD steps equal those of the backward without factors."""
    torch.manual_seed(0)
    frame = ib.frames.DampedSinusoids(torch.linspace(1, 8, 10), torch.full((10,), 0.5), dtype=torch.float64)
    lam = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    layer = ib.SparseCoding(frame, ib.Lasso(lam, nonneg=True))
    params = [*frame.parameters(), lam]
    optimiser = torch.optim.SGD(params, lr=1e-3)
    t = torch.linspace(0, 1, 32, dtype=torch.float64)
    harmonics = torch.arange(1, 9, dtype=torch.float64)
    y = torch.sin(6 * torch.pi * torch.outer(harmonics, t)) + 0.1 * torch.randn(8, 32, dtype=torch.float64)
    attach = implicit_module.attach_implicit_gradient

    def step_gradients():
        for p in params:
            p.grad = None
        z = layer(y, t)
        loss = ((layer.reconstruct(z, t, t=t) - y) ** 2).sum() + (z**2).sum()
        loss.backward()
        return [p.grad.clone() for p in params]

    for _ in range(3):
        reused = step_gradients()
        with monkeypatch.context() as patch:
            patch.setattr(
                implicit_module,
                "attach_implicit_gradient",
                lambda problem, batch, z_star, limit, factor=None: attach(problem, batch, z_star, limit),
            )
            fallback = step_gradients()
        for got, expected in zip(reused, fallback):
            scale = float(expected.abs().max())
            assert_close(got, expected, rtol=GRAD_RTOL, atol=GRAD_RTOL * scale)
        optimiser.step()


# Offsets from 3e-10 to 1e-8 need the linear program to see y scaled up:
# at HiGHS' absolute tolerances it picked a wrong basis there.
@pytest.mark.parametrize("offset", [0.0, 1e-10, 3e-10, 1e-9, 3e-9, 1e-8, 1e-6, 1e-4])
def test_basis_pursuit_off_span_certified(offset):
    """y a little off the span of a sparse support: every code converges, feasible and optimal."""
    generator = torch.Generator().manual_seed(1000)
    D = torch.randn(20, 40, generator=generator, dtype=torch.float64)
    D = D / D.norm(dim=0)
    _, y = _sparse_signals(D, 4, 3, generator)
    noise = torch.randn(4, 20, generator=generator, dtype=torch.float64)
    y = y + offset * y.norm(dim=-1, keepdim=True) * noise / noise.norm(dim=-1, keepdim=True)
    z, info = ib.sparse_code(y, D, ib.BasisPursuit(), return_info=True)
    assert bool(info.converged.all())
    for b in range(4):
        feasibility, correlation = _certify(z[b], y[b], D)
        assert feasibility <= 1e-10
        assert correlation <= 1 + 1e-8


def test_basis_pursuit_degenerate_flag():
    """Codes with fewer nonzeros than rank(D) are flagged degenerate, per-sample and rank-deficient D."""
    generator = torch.Generator().manual_seed(7)
    D = torch.randn(3, 16, 8, generator=generator, dtype=torch.float64)
    D = D @ torch.randn(3, 8, 36, generator=generator, dtype=torch.float64)
    D = D / D.norm(dim=1, keepdim=True)
    x = torch.zeros(3, 36, dtype=torch.float64)
    for b, count in enumerate([1, 2, 12]):
        x[b, torch.randperm(36, generator=generator)[:count]] = 1.0 + b
    y = torch.einsum("bmk,bk->bm", D, x)
    z, info = ib.sparse_code(y, D, ib.BasisPursuit(), return_info=True)
    nonzeros = (z != 0).sum(-1)
    rank = torch.linalg.matrix_rank(D)
    assert torch.equal(info.degenerate, nonzeros < rank)
    assert bool(info.degenerate[:2].all())
    assert not bool(info.degenerate[2])


def test_basis_pursuit_infeasible_names_samples():
    """An off-range sample raises with its index and distance. The other samples are solved."""
    generator = torch.Generator().manual_seed(7)
    D = torch.randn(16, 8, generator=generator, dtype=torch.float64)
    D = D @ torch.randn(8, 36, generator=generator, dtype=torch.float64)
    D = D / D.norm(dim=0)
    _, y = _sparse_signals(D, 4, 2, generator)
    y[1] = y[1] + 1e-3 * y[1].norm() * torch.randn(16, generator=generator, dtype=torch.float64)
    with pytest.raises(ib.InfeasibleProblemError, match=r"infeasible for samples 1 \(distance") as raised:
        ib.sparse_code(y, D, ib.BasisPursuit())
    error = raised.value
    assert error.samples == [1]
    assert bool(torch.isnan(error.z[1]).all())
    for b in (0, 2, 3):
        feasibility, correlation = _certify(error.z[b], y[b], D)
        assert feasibility <= 1e-10
        assert correlation <= 1 + 1e-8


def test_basis_pursuit_float32_recovery():
    """float32 compressed sensing recovers the sparse code to the rounding level, flagged degenerate."""
    generator = torch.Generator().manual_seed(0)
    D = torch.randn(24, 60, generator=generator)
    D = D / D.norm(dim=0)
    x, y = _sparse_signals(D, 4, 2, generator)
    z, info = ib.sparse_code(y, D, ib.BasisPursuit(), return_info=True)
    assert z.dtype == torch.float32
    assert bool(info.converged.all())
    assert bool(info.degenerate.all())
    assert_close(z, x, rtol=0.0, atol=1e-5)


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
@pytest.mark.parametrize(
    "make",
    [
        lambda: ib.Lasso(torch.tensor(0.1), weights=torch.ones(6)),
        lambda: ib.ElasticNet(torch.tensor([0.1, 0.2, 0.3]), torch.tensor(0.5)),
        lambda: ib.GroupLasso(torch.tensor(0.1), [2, 2, 2], weights=torch.ones(3)),
        lambda: ib.SparseGroupLasso(torch.tensor(0.1), [3, 3], torch.tensor(0.5)),
        lambda: ib.BasisPursuitDenoising(torch.tensor(0.1)),
    ],
    ids=["lasso", "elastic_net", "group_lasso", "sparse_group_lasso", "denoising"],
)
def test_resolve_device_string(make, device):
    params = make().resolve(3, 6, torch.float64, device)
    for name, value in params.items():
        if isinstance(value, torch.Tensor):
            assert value.device.type == "cpu", name


@pytest.mark.parametrize("device", ["meta", "cuda"])
def test_resolve_other_device_rejected(device):
    problem = ib.Lasso(torch.tensor(0.1))
    with pytest.raises(ValueError, match=f"lam is on cpu but the signals are on {device}"):
        problem.resolve(3, 6, torch.float64, device)
