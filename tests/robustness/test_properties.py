"""Properties that must hold on every problem, degenerate ones included.

Hypothesis draws problems of every kind (``tests.robustness.instances``):
duplicate, opposite and zero atoms, zero groups and signals, rank-deficient
dictionaries, entries exactly at their threshold, and lam from 0 to above
lam_max. The examples are derandomized, so every run checks the same ones.
Each test checks one family of properties:

- values and gradients are finite, the optimality residual is at rounding
  level, and the code matches the reference solver (exact zeros included)
  wherever the solution is not degenerate;
- the code is unchanged by ``(c D, c y, c^2 lam)`` and by ``(Q D, Q y)``
  with Q orthogonal, and permuting atoms or samples permutes it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

import implicit_basis as ib
from tests.robustness.instances import KINDS, PENALISED, Instance, instances

# Residual (relative KKT violation) an exact solve must reach; the implicit
# backend polishes to about 1e-15.
RESIDUAL = 1e-9
# Codes within this (relative to the largest entry) of each other count as equal.
CODE_RTOL = 1e-9

PROPERTY_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def solve_with_gradients(instance: Instance, backend: str = "implicit", **options):
    """Solve the instance and differentiate a random linear function of the codes.

    Returns (z, info, grads) where grads maps "y", "D" and the scalar
    parameters to their gradients.
    """
    Y = torch.tensor(instance.Y, requires_grad=True)
    D = torch.tensor(instance.D, requires_grad=True)
    scalars = {
        name: torch.tensor(np.asarray(instance.params.get(name, 0.2), dtype=np.float64), requires_grad=True)
        for name in instance.differentiable()
    }
    problem = instance.problem(scalars)
    z, info = ib.sparse_code(Y, D, problem, backend=backend, return_info=True, **options)
    weights = torch.tensor(np.random.default_rng(0).standard_normal(z.shape))
    inputs = [Y, D, *scalars.values()]
    found = torch.autograd.grad((z * weights).sum(), inputs, allow_unused=True)
    grads = dict(zip(["y", "D", *scalars], found))
    return z.detach(), info, grads


def solve_codes(instance: Instance, Y=None, D=None, backend: str = "implicit", **options):
    Y = instance.Y if Y is None else Y
    D = instance.D if D is None else D
    return ib.sparse_code(torch.tensor(Y), torch.tensor(D), instance.problem(), backend=backend, **options)


def assert_same_codes(actual, expected):
    scale = max(float(expected.abs().max()), 1.0)
    assert_close(actual, expected, rtol=0, atol=CODE_RTOL * scale)


def assert_same_solutions(instance: Instance, actual, expected):
    """Compare codes where the solution is unique, and the fits D z in every case."""
    D = torch.tensor(instance.D)
    assert_same_codes(actual @ D.T, expected @ D.T)
    if instance.unique_solution():
        assert_same_codes(actual, expected)


# ---------------------------------------------------------------------------
# The solution itself


@pytest.mark.parametrize("kind", KINDS)
@settings(PROPERTY_SETTINGS, max_examples=25)
@given(data=st.data())
def test_implicit_finite_optimal_exact_zeros(kind, data):
    instance = data.draw(instances(kinds=(kind,)), label="instance")
    z, info, grads = solve_with_gradients(instance)
    assert bool(torch.isfinite(z).all())
    for name, grad in grads.items():
        assert grad is not None, name
        assert bool(torch.isfinite(grad).all()), name

    problem = instance.problem()
    Y, D = torch.tensor(instance.Y), torch.tensor(instance.D)
    residual = problem.residual(z, Y, D)
    assert float(residual.max()) <= RESIDUAL
    assert torch.equal(info.support, z != 0)

    for b, ref in enumerate(instance.references()):
        if bool(info.degenerate[b]) or not ref.polished:
            continue
        expected = torch.tensor(ref.z)
        assert_close(z[b], expected, rtol=0, atol=1e-8 * max(1.0, float(expected.abs().max())))
        assert torch.equal(z[b] != 0, expected != 0)


@pytest.mark.parametrize("kind", PENALISED)
@settings(PROPERTY_SETTINGS, max_examples=12)
@given(data=st.data())
def test_at_and_above_lam_max_zero(kind, data):
    """At lam = lam_max the penalised code is zero (to rounding); above it, exactly zero.

    Samples with lam_max at rounding level (relative to ``||D^T y||_inf``) are
    left out: there lam is numerically 0, and the least-squares solutions need
    not have a zero penalised part.
    """
    instance = data.draw(instances(kinds=(kind,)), label="instance")
    Y, D = torch.tensor(instance.Y), torch.tensor(instance.D)
    lam_max = ib.lam_max(Y, D, instance.problem({"lam": 1.0}))
    penalised = torch.tensor(instance.penalised_atoms())
    z_at = ib.sparse_code(Y, D, instance.problem({"lam": lam_max}))
    z_above = ib.sparse_code(Y, D, instance.problem({"lam": 1.5 * lam_max}))
    size = max(float(Y.abs().max()), 1.0)
    scale = (Y @ D).abs().amax(-1)
    for b in range(instance.B):
        if float(lam_max[b]) <= 1e-10 * float(scale[b]):
            continue
        assert float(z_at[b].abs()[penalised].sum()) <= 1e-10 * size
        assert bool((z_above[b][penalised] == 0).all())


# ---------------------------------------------------------------------------
# Invariances and equivariances


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(instance=instances(), c=st.sampled_from([1e-30, 1e-3, 0.5, 7.0, 1e3, 1e30]))
def test_scale_invariance(instance, c):
    """(c D, c y, c^2 lam) gives the same code (c sigma for denoising, c^2 l2 for the ridge)."""
    expected = solve_codes(instance)
    scaled = dict(instance.params)
    for name in ("lam", "l2"):
        if name in scaled:
            scaled[name] = c**2 * np.asarray(scaled[name])
    if "sigma" in scaled:
        scaled["sigma"] = c * np.asarray(scaled["sigma"])
    other = Instance(instance.kind, instance.degeneracy, c * instance.Y, c * instance.D, scaled)
    assert_same_solutions(instance, solve_codes(other), expected)


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(instance=instances())
def test_rotation_invariance(instance):
    """(Q D, Q y) with Q orthogonal gives the same code."""
    m = instance.D.shape[0]
    Q, _ = np.linalg.qr(np.random.default_rng(m).standard_normal((m, m)))
    expected = solve_codes(instance)
    assert_same_solutions(instance, solve_codes(instance, Y=instance.Y @ Q.T, D=Q @ instance.D), expected)


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(instance=instances(), seed=st.integers(0, 1000))
def test_permutation_equivariance(instance, seed):
    """Permuting the atoms (with their weights or groups) and the samples permutes the codes."""
    rng = np.random.default_rng(seed)
    k, B = instance.k, instance.B
    order = rng.permutation(k)
    rows = rng.permutation(B)
    params = dict(instance.params)
    if "weights" in params:
        params["weights"] = np.asarray(params["weights"])[order]
    if "groups" in params:
        # The groups as index lists in the new atom numbering.
        position = np.argsort(order)
        start, groups = 0, []
        for size in params["groups"]:
            groups.append(sorted(int(position[j]) for j in range(start, start + size)))
            start += size
        params["groups"] = groups
    for name in ("lam", "sigma"):
        if name in params:
            params[name] = np.asarray(params[name])[rows]
    other = Instance(instance.kind, instance.degeneracy, instance.Y[rows], instance.D[:, order], params)
    expected = solve_codes(instance)
    actual = solve_codes(other)
    # The permuted problem's codes, put back in the original atom order.
    restored = torch.zeros_like(actual)
    restored[:, torch.as_tensor(order)] = actual
    assert_same_solutions(instance, restored, expected[rows])


# ---------------------------------------------------------------------------
# The other backends


@pytest.mark.parametrize("kind", PENALISED)
@settings(PROPERTY_SETTINGS, max_examples=10)
@given(data=st.data())
def test_unrolled_finite_with_exact_zeros(kind, data):
    """Unrolled steps give finite values and gradients, and codes with exact zeros."""
    instance = data.draw(instances(kinds=(kind,)), label="instance")
    z, _, grads = solve_with_gradients(instance, "unrolled", max_iter=200)
    assert bool(torch.isfinite(z).all())
    for name, grad in grads.items():
        assert grad is not None, name
        assert bool(torch.isfinite(grad).all()), name
    # Where the steps have converged on a unique, non-degenerate solution, the
    # zeros are exactly those of the implicit backend's code.
    expected, info = solve_codes(instance, return_info=True)
    Y, D = torch.tensor(instance.Y), torch.tensor(instance.D)
    residual = instance.problem().residual(z, Y, D)
    for b in range(instance.B):
        if float(residual[b]) <= 1e-12 and not bool(info.degenerate[b]):
            assert torch.equal(z[b] != 0, expected[b] != 0)


@settings(PROPERTY_SETTINGS, max_examples=24)
@given(instance=instances(max_batch=2))
def test_cvxpylayers_finite_and_optimal(instance):
    z, info, grads = solve_with_gradients(instance, "cvxpylayers")
    assert bool(torch.isfinite(z).all())
    for name, grad in grads.items():
        assert grad is not None, name
        assert bool(torch.isfinite(grad).all()), name
    problem = instance.problem()
    residual = problem.residual(z, torch.tensor(instance.Y), torch.tensor(instance.D))
    assert float(residual.max()) <= 1e-6
    assert bool(info.converged.all())
