"""Proximal operators against scalar-loop implementations of their argmin formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from implicit_basis.coding.prox import prox_elastic_net, prox_group_l2, prox_l1, prox_sparse_group

INDEX = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])


def soft(value, threshold):
    return math.copysign(max(abs(value) - threshold, 0.0), value)


def sample(seed, shape=(4, 10)):
    return torch.as_tensor(np.random.default_rng(seed).standard_normal(shape))


def test_prox_l1_zero_and_inf_thresholds():
    v = sample(1)
    tau = torch.as_tensor(np.random.default_rng(2).uniform(0, 1, (4, 10)))
    tau[:, 0] = 0.0
    tau[:, 1] = torch.inf
    out = prox_l1(v, tau)
    expected = torch.tensor([[soft(v[b, j].item(), tau[b, j].item()) for j in range(10)] for b in range(4)], dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert bool((out[:, 1] == 0).all())


def test_prox_l1_nonneg_matches_loop():
    v = sample(3)
    tau = torch.full((4, 1), 0.3, dtype=torch.float64)
    out = prox_l1(v, tau, nonneg=True)
    expected = torch.tensor([[max(v[b, j].item() - 0.3, 0.0) for j in range(10)] for b in range(4)], dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_prox_elastic_net_matches_loop():
    v = sample(4)
    tau = torch.full((4, 1), 0.2, dtype=torch.float64)
    ridge = torch.full((4, 1), 0.5, dtype=torch.float64)
    out = prox_elastic_net(v, tau, ridge)
    expected = torch.tensor([[soft(v[b, j].item(), 0.2) / 1.5 for j in range(10)] for b in range(4)], dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=1e-15, atol=0)


def group_loop(v, tau1, tau_g):
    out = torch.zeros_like(v)
    for b in range(v.shape[0]):
        for g in range(4):
            members = (INDEX == g).nonzero().flatten().tolist()
            shrunk = [soft(v[b, j].item(), tau1) for j in members]
            norm = math.sqrt(sum(s * s for s in shrunk))
            factor = max(0.0, 1 - tau_g[g] / norm) if norm > 0 else 0.0
            for j, s in zip(members, shrunk):
                out[b, j] = factor * s
    return out


def test_prox_group_matches_loop():
    v = sample(5)
    tau_g = [0.5, 10.0, 0.1, math.inf]
    out = prox_group_l2(v, torch.tensor([tau_g], dtype=torch.float64).expand(4, 4), INDEX, 4)
    torch.testing.assert_close(out, group_loop(v, 0.0, tau_g), rtol=1e-15, atol=0)
    assert bool((out[:, 3:5] == 0).all())


def test_prox_sparse_group_matches_loop():
    v = sample(6)
    tau_g = [0.5, 0.2, 0.1, 0.0]
    tau1 = torch.full((4, 1), 0.3, dtype=torch.float64)
    out = prox_sparse_group(v, tau1, torch.tensor([tau_g], dtype=torch.float64).expand(4, 4), INDEX, 4)
    torch.testing.assert_close(out, group_loop(v, 0.3, tau_g), rtol=1e-15, atol=0)


@pytest.mark.parametrize("seed", range(3))
def test_prox_sparse_group_is_the_argmin(seed):
    v = sample(seed, (1, 10))
    tau1, tau_g = 0.2, torch.tensor([[0.4, 0.3, 0.5, 0.1]], dtype=torch.float64)
    out = prox_sparse_group(v, torch.full((1, 1), tau1, dtype=torch.float64), tau_g, INDEX, 4)

    def objective(z):
        norms = torch.zeros(4, dtype=torch.float64).index_add(0, INDEX, z[0] ** 2).sqrt()
        return 0.5 * ((z - v) ** 2).sum() + tau1 * z.abs().sum() + (tau_g[0] * norms).sum()

    best = objective(out)
    for trial in range(200):
        perturbed = out + 1e-3 * sample(100 + trial, (1, 10))
        assert float(objective(perturbed)) >= float(best) - 1e-15
