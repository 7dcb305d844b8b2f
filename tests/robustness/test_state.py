"""Copies, warm starts and repeatability.

- A ``SparseCoding`` layer over a learnable frame, with ``lam`` an
  ``nn.Parameter``, survives ``copy.deepcopy``, pickle, ``torch.save`` and a
  ``state_dict`` round trip, and gives bitwise identical codes and gradients
  after each.
- A warm start (``init``) never changes the solution of the implicit and
  cvxpylayers backends, whatever its values. One of the wrong shape (another
  batch size, another number of atoms) raises a ``ValueError`` naming
  ``init`` before anything is solved.
- Two identical calls on the CPU return bitwise identical results.
"""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

import implicit_basis as ib
from implicit_basis import frames
from tests.robustness import cases
from tests.robustness.cases import F64, t

BACKENDS = ["implicit", "unrolled", "cvxpylayers"]


def learned_layer(backend: str) -> ib.SparseCoding:
    frame = frames.RadialBasis([0.15, 0.35, 0.5, 0.7, 0.9], 0.12, learn=True, dtype=F64)
    problem = ib.Lasso(nn.Parameter(torch.tensor(0.05, dtype=F64)))
    options = {"max_iter": 300} if backend == "unrolled" else {}
    return ib.SparseCoding(frame, problem, backend=backend, **options)


def signals():
    points = torch.linspace(0, 1, 17, dtype=F64)
    y = torch.exp(-((points - 0.45) ** 2) / 0.02) - 0.5 * torch.exp(-((points - 0.8) ** 2) / 0.01)
    return torch.stack([y, 0.3 * y, -y + 0.1]), points


def run_layer(layer):
    """Return the codes and the gradients of every parameter of the layer after one step."""
    layer.zero_grad()
    Y, points = signals()
    z = layer(Y, points)
    (z**2).sum().backward()
    return [z.detach()] + [p.grad.clone() for p in layer.parameters()]


def assert_identical(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert torch.equal(a, e)


def round_trip_pickle(layer):
    return pickle.loads(pickle.dumps(layer))


def round_trip_save(layer):
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "clone", [copy.deepcopy, round_trip_pickle, round_trip_save], ids=["deepcopy", "pickle", "save"]
)
def test_layer_copies_identical(backend, clone):
    layer = learned_layer(backend)
    expected = run_layer(layer)
    copied = clone(layer)
    assert copied.problem.lam is not layer.problem.lam
    assert isinstance(copied.problem.lam, nn.Parameter)
    assert_identical(run_layer(copied), expected)
    # The original is untouched by the copy's step.
    assert_identical(run_layer(layer), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_state_dict_round_trip(backend):
    source = learned_layer(backend)
    with torch.no_grad():
        source.problem.lam.fill_(0.03)
        source.frame.centres.add_(0.01)
    expected = run_layer(source)
    target = learned_layer(backend)
    target.load_state_dict(source.state_dict())
    assert set(target.state_dict()) == {"frame.centres", "frame.raw_widths", "problem.lam"}
    assert_identical(run_layer(target), expected)


def test_deepcopy_shares_graph_tensor():
    """A lam computed from the caller's leaf survives a deep copy, and gradients still reach the leaf."""
    raw = torch.tensor(-2.0, dtype=F64, requires_grad=True)
    frame = frames.RadialBasis([0.15, 0.35, 0.5, 0.7, 0.9], 0.12, dtype=F64)
    layer = ib.SparseCoding(frame, ib.Lasso(nn.functional.softplus(raw)))
    copied = copy.deepcopy(layer)
    assert copied.problem.lam is layer.problem.lam
    Y, points = signals()
    copied(Y, points).sum().backward()
    assert raw.grad is not None
    assert bool(torch.isfinite(raw.grad))


# ---------------------------------------------------------------------------
# Warm starts


def warm_start_problem():
    D, Y, lam = cases.c11()
    return t(Y), t(D), t(lam)


def starts(B: int, k: int):
    rng = np.random.default_rng(4)
    return {
        "zeros": torch.zeros(B, k, dtype=F64),
        "random": t(rng.standard_normal((B, k))),
        "huge": t(1e6 * rng.standard_normal((B, k))),
        "shared": t(rng.standard_normal(k)),
        "float32": torch.tensor(rng.standard_normal((B, k)), dtype=torch.float32),
    }


@pytest.mark.parametrize("backend", ["implicit", "cvxpylayers"])
@pytest.mark.parametrize("name", ["zeros", "random", "huge", "shared", "float32"])
def test_warm_start_never_changes_answer(backend, name):
    Y, D, lam = warm_start_problem()
    init = starts(5, 10)[name]
    results = []
    for start in (None, init):
        Y_t, lam_t = Y.clone().requires_grad_(True), lam.clone().requires_grad_(True)
        z = ib.sparse_code(Y_t, D, ib.Lasso(lam_t), backend=backend, init=start)
        results.append([z.detach(), *torch.autograd.grad(z.sum(), [Y_t, lam_t])])
    cold, warm = results
    assert torch.equal(cold[0] == 0, warm[0] == 0)
    for a, b in zip(warm, cold):
        assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_warm_start_from_other_solution():
    """A start at the solution of another lam, or of other signals, gives the same code."""
    Y, D, lam = warm_start_problem()
    cold = ib.sparse_code(Y, D, ib.Lasso(lam))
    for init in (ib.sparse_code(Y, D, ib.Lasso(0.1 * lam)), ib.sparse_code(Y.flip(0), D, ib.Lasso(lam))):
        warm = ib.sparse_code(Y, D, ib.Lasso(lam), init=init)
        assert torch.equal(warm == 0, cold == 0)
        assert_close(warm, cold, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_warm_start_after_batch_size_change(backend):
    """The codes of a batch of 5 as the start of a batch of 3: a clear error, never silently used."""
    Y, D, lam = warm_start_problem()
    previous = ib.sparse_code(Y, D, ib.Lasso(lam), backend="implicit")
    message = r"init has batch size 5 but the signals have 3; pass init of shape \(10,\) or \(3, 10\)"
    with pytest.raises(ValueError, match=message):
        ib.sparse_code(Y[:3], D, ib.Lasso(lam[:3]), backend=backend, init=previous)


@pytest.mark.parametrize("backend", BACKENDS)
def test_warm_start_after_atom_count_change(backend):
    Y, D, lam = warm_start_problem()
    previous = ib.sparse_code(Y, D, ib.Lasso(lam), backend="implicit")
    with pytest.raises(ValueError, match=r"init must have shape \(8,\) or \(B, 8\); got \(5, 10\)"):
        ib.sparse_code(Y, D[:, :8], ib.Lasso(lam), backend=backend, init=previous)


def test_unrolled_init_is_first_iterate():
    """The unrolled backend's result depends on its start (documented); it converges to the same code."""
    Y, D, lam = warm_start_problem()
    init = starts(5, 10)["random"]
    short = [ib.sparse_code(Y, D, ib.Lasso(lam), backend="unrolled", max_iter=5, init=start) for start in (None, init)]
    assert not torch.equal(short[0], short[1])
    assert "does change the result" in ib.sparse_code.__doc__
    long = [
        ib.sparse_code(Y, D, ib.Lasso(lam), backend="unrolled", max_iter=3000, init=start) for start in (None, init)
    ]
    assert_close(long[0], long[1], rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------
# Repeatability


def repeat_problem():
    rng = np.random.default_rng(23)
    D = rng.standard_normal((20, 50)) / np.sqrt(20)
    X = np.zeros((16, 50))
    for b in range(16):
        X[b, rng.choice(50, 3, replace=False)] = rng.standard_normal(3)
    Y = X @ D.T + 0.01 * rng.standard_normal((16, 20))
    lam = 0.1 * np.abs(Y @ D).max(axis=1)
    return Y, D, lam


PROBLEMS = {
    "lasso": lambda lam: ib.Lasso(lam),
    "group_lasso": lambda lam: ib.GroupLasso(lam, [5] * 10),
    "elastic_net": lambda lam: ib.ElasticNet(lam, 0.1),
}


def run_twice(backend, make, **options):
    Y, D, lam = repeat_problem()
    outputs = []
    for _ in range(2):
        Y_t, D_t, lam_t = t(Y, True), t(D, True), t(lam, True)
        z = ib.sparse_code(Y_t, D_t, make(lam_t), backend=backend, **options)
        grads = torch.autograd.grad((z * z).sum(), [Y_t, D_t, lam_t])
        outputs.append([z.detach(), *grads])
    return outputs


@pytest.mark.parametrize("kind", list(PROBLEMS))
def test_implicit_repeat_bitwise(kind):
    first, second = run_twice("implicit", PROBLEMS[kind])
    assert_identical(first, second)


@pytest.mark.parametrize("kind", list(PROBLEMS))
def test_unrolled_repeat_bitwise(kind):
    first, second = run_twice("unrolled", PROBLEMS[kind], max_iter=100)
    assert_identical(first, second)


def test_implicit_repeat_bitwise_basis_pursuit():
    Y, D, _ = repeat_problem()
    D = D[:, :30]
    outputs = []
    for _ in range(2):
        Y_t = t(Y, True)
        z = ib.sparse_code(Y_t, t(D), ib.BasisPursuit())
        outputs.append([z.detach(), torch.autograd.grad(z.abs().sum(), Y_t)[0]])
    assert_identical(*outputs)
