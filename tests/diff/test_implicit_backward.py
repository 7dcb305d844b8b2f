"""The implicit backward checked on its own: exact solutions from the reference
oracle go through the KKT vector-Jacobian product, whose result is compared with
central finite differences of the oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import implicit_basis as ib
from implicit_basis.diff.implicit import attach_implicit_gradient
from implicit_basis.inputs import prepare_inputs
from tests.reference import reference_solve

GROUPS = [[0, 1, 2], [3, 4], [5, 6, 7], [8, 9], [10, 11, 12, 13]]


def _reference_kwargs(kind, params):
    kwargs = dict(params)
    if kind in ("group_lasso", "sparse_group_lasso"):
        kwargs["groups"] = GROUPS
    return kwargs


def _problem(kind, tensors):
    if kind == "lasso":
        return ib.Lasso(tensors["lam"], weights=tensors.get("weights"))
    if kind == "nonneg_lasso":
        return ib.Lasso(tensors["lam"], nonneg=True)
    if kind == "elastic_net":
        return ib.ElasticNet(tensors["lam"], tensors["l2"])
    if kind == "group_lasso":
        return ib.GroupLasso(tensors["lam"], GROUPS, weights=tensors.get("weights"))
    if kind == "sparse_group_lasso":
        return ib.SparseGroupLasso(tensors["lam"], GROUPS, tensors["l1_ratio"])
    if kind == "basis_pursuit":
        return ib.BasisPursuit()
    return ib.BasisPursuitDenoising(tensors["sigma"])


def _oracle(kind, y, D, params):
    ref_kind = "lasso" if kind == "nonneg_lasso" else kind
    kwargs = _reference_kwargs(ref_kind, params)
    if kind == "nonneg_lasso":
        kwargs["nonneg"] = True
    result = reference_solve(ref_kind, y, D, **kwargs)
    assert result.polished
    return result.z


CASES = {
    "lasso": {"lam": 0.4, "weights": np.linspace(0.5, 1.5, 14)},
    "nonneg_lasso": {"lam": 0.3},
    "elastic_net": {"lam": 0.4, "l2": 0.3},
    "group_lasso": {"lam": 0.8, "weights": np.linspace(0.8, 1.6, 5)},
    "sparse_group_lasso": {"lam": 0.6, "l1_ratio": 0.4},
    "basis_pursuit": {},
    "basis_pursuit_denoising": {"sigma": 0.3},
}


def _instance(kind, seed):
    rng = np.random.default_rng(seed)
    m = 10
    D = rng.standard_normal((m, 14))
    x = np.zeros(14)
    x[[1, 4, 9]] = [1.0, -0.8, 0.6]
    y = D @ x + 0.1 * rng.standard_normal(m)
    if kind == "basis_pursuit":
        # A generic y: its support has m atoms, where the solution map is smooth.
        # A sparse y = D x sits where pieces of the map meet (|S| < m).
        y = rng.standard_normal(m)
    return y, D


@pytest.mark.parametrize("kind", sorted(CASES))
def test_backward_matches_finite_differences(kind):
    y_np, D_np = _instance(kind, 3)
    params_np = CASES[kind]
    z_np = _oracle(kind, y_np, D_np, params_np)

    y = torch.tensor(y_np, requires_grad=True)
    D = torch.tensor(D_np, requires_grad=True)
    tensors = {
        name: torch.tensor(value, requires_grad=True) for name, value in params_np.items()
    }
    problem = _problem(kind, tensors)
    batch = prepare_inputs(y, D, problem)
    z = attach_implicit_gradient(problem, batch, torch.tensor(z_np).unsqueeze(0), 2048)[0]
    weights = torch.tensor(np.random.default_rng(0).standard_normal(14))
    (z * weights).sum().backward()

    step = 1e-6
    rng = np.random.default_rng(1)

    def loss(y_value, D_value, params_value):
        return float(_oracle(kind, y_value, D_value, params_value) @ weights.numpy())

    for name, tensor in [("y", y), ("D", D)]:
        direction = rng.standard_normal(tensor.shape)
        plus = {"y": y_np, "D": D_np}
        minus = {"y": y_np, "D": D_np}
        plus[name] = plus[name] + step * direction
        minus[name] = minus[name] - step * direction
        fd = (loss(plus["y"], plus["D"], params_np) - loss(minus["y"], minus["D"], params_np)) / (2 * step)
        analytic = float((tensor.grad.numpy() * direction).sum())
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-8), name

    for name, value in params_np.items():
        direction = rng.standard_normal(np.shape(value))
        plus = dict(params_np, **{name: value + step * direction})
        minus = dict(params_np, **{name: value - step * direction})
        fd = (loss(y_np, D_np, plus) - loss(y_np, D_np, minus)) / (2 * step)
        analytic = float((tensors[name].grad.numpy() * direction).sum())
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-8), name


def _batched_gradients(kind, dense_limit, per_sample_D, dtype=torch.float64):
    rng = np.random.default_rng(5)
    B, m, k = 3, 10, 14
    D_np = rng.standard_normal((B, m, k)) if per_sample_D else rng.standard_normal((m, k))
    Y_np = rng.standard_normal((B, m))
    params_np = CASES[kind]
    rows = []
    for b in range(B):
        D_b = D_np[b] if per_sample_D else D_np
        rows.append(_oracle(kind, Y_np[b], D_b, params_np))
    y = torch.tensor(Y_np, dtype=dtype, requires_grad=True)
    D = torch.tensor(D_np, dtype=dtype, requires_grad=True)
    tensors = {
        name: torch.tensor(value, dtype=dtype, requires_grad=True) for name, value in params_np.items()
    }
    problem = _problem(kind, tensors)
    batch = prepare_inputs(y, D, problem)
    z_star = torch.tensor(np.stack(rows), dtype=dtype)
    z = attach_implicit_gradient(problem, batch, z_star, dense_limit)
    (z * torch.linspace(-1, 1, k, dtype=dtype)).sum().backward()
    grads = {"y": y.grad, "D": D.grad}
    grads.update({name: t.grad for name, t in tensors.items()})
    return grads


@pytest.mark.parametrize("kind", ["lasso", "group_lasso", "basis_pursuit_denoising"])
def test_conjugate_gradients_match_cholesky(kind):
    dense = _batched_gradients(kind, dense_limit=2048, per_sample_D=False)
    matrix_free = _batched_gradients(kind, dense_limit=1, per_sample_D=False)
    for name in dense:
        torch.testing.assert_close(matrix_free[name], dense[name], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", ["lasso", "sparse_group_lasso"])
def test_per_sample_dictionary_gradient_shape(kind):
    grads = _batched_gradients(kind, dense_limit=2048, per_sample_D=True)
    assert grads["D"].shape == (3, 10, 14)
    assert bool(torch.isfinite(grads["D"]).all())


def test_float32_gradients_stay_float32():
    grads = _batched_gradients("lasso", dense_limit=2048, per_sample_D=False, dtype=torch.float32)
    reference = _batched_gradients("lasso", dense_limit=2048, per_sample_D=False)
    for name, grad in grads.items():
        assert grad.dtype == torch.float32, name
        torch.testing.assert_close(grad.double(), reference[name], rtol=1e-4, atol=1e-5)


def test_duplicate_atoms_give_finite_minimum_norm_gradient():
    rng = np.random.default_rng(2)
    D = torch.tensor(rng.standard_normal((6, 5)), requires_grad=True)
    y = torch.tensor(rng.standard_normal(6), requires_grad=True)
    # Atoms 0 and 1 are identical and both carry half of the code: the support
    # system is singular, and its minimum-norm solution splits the gradient.
    D_dup = torch.cat([D[:, :1], D], dim=1)
    z_star = torch.tensor([[0.25, 0.25, 0.0, 0.4, 0.0, -0.3]], dtype=torch.float64)
    problem = ib.Lasso(0.1)
    batch = prepare_inputs(y, D_dup, problem)
    z = attach_implicit_gradient(problem, batch, z_star, 2048)
    z.sum().backward()
    assert bool(torch.isfinite(y.grad).all())
    assert bool(torch.isfinite(D.grad).all())


@pytest.mark.parametrize("kind", ["lasso", "elastic_net", "group_lasso", "basis_pursuit_denoising"])
@pytest.mark.parametrize("route", ["gathered", "full_products", "full_gram"])
def test_support_routes_agree(kind, route, monkeypatch):
    """Gathered columns, products through the full D, and the full Gram give one gradient."""
    import implicit_basis.support as support_module

    reference = _batched_gradients(kind, dense_limit=2048, per_sample_D=False)
    if route == "gathered":
        monkeypatch.setattr(support_module, "GATHER_COST", 0)
    elif route == "full_products":
        monkeypatch.setattr(support_module, "GATHER_COST", 10**6)
        monkeypatch.setattr(support_module, "prefers_full_gram", lambda B, s, k: False)
    else:
        monkeypatch.setattr(support_module, "GATHER_COST", 10**6)
        monkeypatch.setattr(support_module, "prefers_full_gram", lambda B, s, k: True)
    routed = _batched_gradients(kind, dense_limit=2048, per_sample_D=False)
    for name in reference:
        torch.testing.assert_close(routed[name], reference[name], rtol=1e-10, atol=1e-12)
