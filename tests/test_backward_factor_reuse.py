"""The implicit backward reusing the forward's support factors (lasso family, shared D).

The reference for every gradient is the same backward without the factors,
which forms and factors each support system itself, plus gradcheck (float64
finite differences of the whole solve) on small problems.
"""

from __future__ import annotations

import logging
import re

import pytest
import torch
from torch.testing import assert_close

import implicit_basis as ib
from implicit_basis.coding.lasso import lasso_family_vjp
from implicit_basis.diff.implicit import DENSE_SUPPORT_LIMIT, attach_implicit_gradient
from implicit_basis.inputs import prepare_inputs
from implicit_basis.solvers import solve

KINDS = ["lasso", "weighted_lasso", "nonneg_lasso", "elastic_net"]
REUSE_LOGGER = "implicit_basis.coding.lasso"
# Reuse and fallback solve the same system with two separately formed
# factorisations, so they agree to rounding.
RTOL = 1e-12


def _data(m, k, B, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    D = torch.randn(m, k, generator=generator, dtype=torch.float64)
    D = D / D.norm(dim=0)
    x = torch.randn(B, k, generator=generator, dtype=torch.float64)
    x = x * (torch.rand(B, k, generator=generator) < 0.15)
    y = x @ D.T + 0.05 * torch.randn(B, m, generator=generator, dtype=torch.float64)
    return y.to(dtype), D.to(dtype)


def _leaves(kind, y, D, fraction):
    """Return the penalty tensors of ``kind`` that require grad, by name."""
    lam = (fraction * ib.lam_max(y.detach(), D.detach())).clone().requires_grad_()
    leaves = {"lam": lam}
    k = D.shape[-1]
    if kind == "weighted_lasso":
        leaves["weights"] = torch.linspace(0.6, 1.4, k, dtype=y.dtype).requires_grad_()
    if kind == "elastic_net":
        leaves["l2"] = torch.tensor(0.2, dtype=y.dtype, requires_grad=True)
    return leaves


def _problem(kind, leaves):
    if kind == "elastic_net":
        return ib.ElasticNet(leaves["lam"], leaves["l2"])
    return ib.Lasso(leaves["lam"], weights=leaves.get("weights"), nonneg=kind == "nonneg_lasso")


def _gradients(kind, y0, D0, *, reuse, fraction=0.3, init=None):
    """Return the gradients of ``<z, v>`` in y, D and the penalties, with or without reuse."""
    y = y0.clone().requires_grad_()
    D = D0.clone().requires_grad_()
    leaves = _leaves(kind, y0, D0, fraction)
    problem = _problem(kind, leaves)
    if reuse:
        z, info = ib.sparse_code(y, D, problem, init=init, return_info=True)
    else:
        with torch.no_grad():
            z_star, info = ib.sparse_code(y, D, problem, init=init, return_info=True)
        batch = prepare_inputs(y, D, problem)
        z = attach_implicit_gradient(problem, batch, z_star, DENSE_SUPPORT_LIMIT)
    v = torch.linspace(-1.0, 1.0, z.numel(), dtype=torch.float64).reshape(z.shape).to(z.dtype)
    (z * v).sum().backward()
    grads = {"y": y.grad, "D": D.grad}
    grads.update({name: leaf.grad for name, leaf in leaves.items()})
    return grads, info


def _reused_counts(caplog):
    """Return the (reused, total) sample counts of every backward logged in ``caplog``."""
    pattern = re.compile(r"reusing the forward's support factor on (\d+) of (\d+) samples")
    return [tuple(int(n) for n in match.groups()) for match in pattern.finditer(caplog.text)]


def _assert_same(reused, fallback):
    assert reused.keys() == fallback.keys()
    for name, grad in reused.items():
        scale = float(fallback[name].abs().max())
        assert_close(grad, fallback[name], rtol=RTOL, atol=RTOL * scale, msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_reuse_matches_fallback(kind, caplog):
    y, D = _data(20, 40, 6, seed=1)
    fallback, _ = _gradients(kind, y, D, reuse=False)
    with caplog.at_level(logging.DEBUG, logger=REUSE_LOGGER):
        reused, info = _gradients(kind, y, D, reuse=True)
    assert bool(info.support.any(-1).all())
    assert _reused_counts(caplog) == [(6, 6)]
    _assert_same(reused, fallback)


@pytest.mark.parametrize("kind", KINDS)
def test_reuse_float32_matches_fallback(kind, caplog):
    y, D = _data(20, 40, 6, seed=2, dtype=torch.float32)
    fallback, _ = _gradients(kind, y, D, reuse=False)
    with caplog.at_level(logging.DEBUG, logger=REUSE_LOGGER):
        reused, _ = _gradients(kind, y, D, reuse=True)
    assert _reused_counts(caplog) == [(6, 6)]
    for name, grad in reused.items():
        assert grad.dtype == torch.float32, name
        assert_close(grad, fallback[name], rtol=1e-6, atol=1e-6 * float(fallback[name].abs().max()), msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_reuse_gradcheck(kind, caplog):
    """gradcheck compares the reusing backward with central differences of the solve."""
    y0, D0 = _data(8, 12, 2, seed=3)
    leaves = _leaves(kind, y0, D0, 0.3)
    names = sorted(leaves)

    def code(y, D, *values):
        return ib.sparse_code(y, D, _problem(kind, dict(zip(names, values))))

    inputs = (y0.clone().requires_grad_(), D0.clone().requires_grad_(), *(leaves[name] for name in names))
    with caplog.at_level(logging.DEBUG, logger=REUSE_LOGGER):
        assert torch.autograd.gradcheck(code, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
    counts = _reused_counts(caplog)
    assert counts
    assert all(reused == total for reused, total in counts)


@pytest.mark.parametrize("kind", KINDS)
def test_support_change_between_rounds(kind, caplog):
    """A warm start on a wrong support is corrected by the polish rounds, and the last round's factor is kept."""
    y, D = _data(20, 40, 6, seed=4)
    with torch.no_grad():
        exact = ib.sparse_code(y, D, _problem(kind, _leaves(kind, y, D, 0.3)))
    # Drop the smallest entry of each code, so the first polish round starts on a wrong support.
    init = exact.clone()
    smallest = torch.where(exact != 0, exact.abs(), torch.full_like(exact, torch.inf)).argmin(-1)
    init[torch.arange(init.shape[0]), smallest] = 0.0
    fallback, _ = _gradients(kind, y, D, reuse=False, init=init)
    with caplog.at_level(logging.DEBUG, logger=REUSE_LOGGER):
        reused, info = _gradients(kind, y, D, reuse=True, init=init)
    # 2 to 9 iterations are polish rounds only (proximal gradient runs 10 at a time),
    # so the support changed between the rounds of those samples.
    corrected = (info.iterations >= 2) & (info.iterations < 10)
    assert bool(corrected.any())
    assert _reused_counts(caplog) == [(6, 6)]
    _assert_same(reused, fallback)


@pytest.mark.parametrize("route", ["gathered", "full_products"])
def test_refinement_step_matches_fallback(route, monkeypatch, caplog):
    """With refinement forced, the residual from D_S (either product route) gives the fallback's gradient."""
    import implicit_basis.solvers.linalg as linalg_module
    import implicit_basis.support as support_module

    monkeypatch.setattr(linalg_module, "_REFINE_ABOVE", 0.0)
    monkeypatch.setattr(support_module, "GATHER_COST", 0 if route == "gathered" else 10**6)
    y, D = _data(20, 40, 6, seed=5)
    fallback, _ = _gradients("elastic_net", y, D, reuse=False)
    with caplog.at_level(logging.DEBUG, logger=REUSE_LOGGER):
        reused, _ = _gradients("elastic_net", y, D, reuse=True)
    assert _reused_counts(caplog) == [(6, 6)]
    _assert_same(reused, fallback)


def _solved(kind, y, D, **options):
    problem = _problem(kind, {name: leaf.detach() for name, leaf in _leaves(kind, y, D, 0.3).items()})
    batch = prepare_inputs(y, D, problem)
    return batch, solve(problem, batch.y, batch.D, batch.params, return_factor=True, **options)


@pytest.mark.parametrize("kind", ["weighted_lasso", "elastic_net"])
def test_factor_reproduces_support_gram(kind):
    y, D = _data(20, 40, 6, seed=6)
    batch, (z, _, factor) = _solved(kind, y, D)
    assert bool(factor.known.all())
    l2 = float(batch.params["l2"][0]) if kind == "elastic_net" else 0.0
    for b in range(z.shape[0]):
        support = z[b].nonzero().squeeze(-1)
        count = int(factor.counts[b])
        assert factor.index[b, :count].tolist() == support.tolist()
        L = factor.blocks[int(factor.block[b])][int(factor.position[b])][:count, :count]
        G = D[:, support].T @ D[:, support] + l2 * torch.eye(count, dtype=D.dtype)
        assert_close(L @ L.T, G, rtol=0, atol=1e-13)


def test_factor_limit_leaves_large_supports_out():
    y, D = _data(20, 40, 6, seed=6)
    _, (z, _, factor) = _solved("lasso", y, D, factor_limit=5)
    counts = (z != 0).sum(-1)
    assert bool((counts > 5).any())
    assert bool((factor.known == (counts <= 5)).all())
    assert all(block.shape[-1] <= 5 for block in factor.blocks)


def test_no_factor_for_per_sample_dictionary():
    y, D = _data(20, 40, 3, seed=7)
    _, (_, _, factor) = _solved("lasso", y, D.expand(3, -1, -1).clone())
    assert factor is None


def test_no_factor_for_group_lasso():
    y, D = _data(20, 40, 3, seed=7)
    problem = ib.GroupLasso(0.2, [4] * 10)
    batch = prepare_inputs(y, D, problem)
    _, _, factor = solve(problem, batch.y, batch.D, batch.params, return_factor=True)
    assert factor is None


def test_mismatched_supports_fall_back(caplog):
    """Samples whose support differs from the factor's, or whose factor is unknown, form their own systems."""
    y, D = _data(20, 40, 6, seed=8)
    batch, (z, _, factor) = _solved("lasso", y, D)
    changed = z.clone()
    # Sample 0 loses one support atom, as a float32 cast of a tiny entry would.
    changed[0, changed[0].nonzero()[0, 0]] = 0.0
    factor.known[1] = False
    # Sample 2 keeps its support size but swaps one atom for another.
    changed[2, (z[2] == 0).nonzero()[0, 0]] = z[2, z[2].nonzero()[0, 0]]
    changed[2, z[2].nonzero()[0, 0]] = 0.0
    v = torch.linspace(-1.0, 1.0, z.numel(), dtype=torch.float64).reshape(z.shape)
    needs = frozenset({"y", "D", "lam"})
    expected, _ = lasso_family_vjp(v, changed, batch.y, batch.D, batch.params, needs, DENSE_SUPPORT_LIMIT)
    with caplog.at_level(logging.DEBUG, logger=REUSE_LOGGER):
        grads, _ = lasso_family_vjp(v, changed, batch.y, batch.D, batch.params, needs, DENSE_SUPPORT_LIMIT, factor)
    assert _reused_counts(caplog) == [(3, 6)]
    _assert_same(grads, expected)


def test_dense_limit_below_support_uses_conjugate_gradients(caplog):
    """A support above ``dense_limit`` keeps the matrix-free backward; no factor is used."""
    y, D = _data(20, 40, 6, seed=9)
    problem = ib.Lasso(0.3 * ib.lam_max(y, D))
    y_reuse, D_reuse = y.clone().requires_grad_(), D.clone().requires_grad_()
    with caplog.at_level(logging.DEBUG, logger=REUSE_LOGGER):
        z = ib.sparse_code(y_reuse, D_reuse, problem, dense_limit=1)
        z.sum().backward()
    assert _reused_counts(caplog) == []
    y_dense, D_dense = y.clone().requires_grad_(), D.clone().requires_grad_()
    with torch.no_grad():
        z_star = ib.sparse_code(y_dense, D_dense, problem)
    batch = prepare_inputs(y_dense, D_dense, problem)
    attach_implicit_gradient(problem, batch, z_star, DENSE_SUPPORT_LIMIT).sum().backward()
    assert_close(y_reuse.grad, y_dense.grad, rtol=1e-9, atol=1e-11)
    assert_close(D_reuse.grad, D_dense.grad, rtol=1e-9, atol=1e-11)
