"""Problem kinds: construction, groups, and the oracles (objective, gap, residual, lam_max).

The oracles are checked against the reference solver (``tests.reference``:
Clarabel, then a polish on the support to machine precision) and against
closed forms. At the reference optimum the gap and the residual vanish, and
away from it they are positive. The gap bounds the suboptimality, and
``lam_max`` is where the reference code becomes zero.
"""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

import implicit_basis as ib
from implicit_basis.coding.basis_pursuit import distance_to_range
from tests.reference import objective_value, reference_batch, reference_solve

M, K = 10, 16
GROUPS = [[0, 1, 2, 3], [4, 5, 6], [7, 8], [9, 10, 11, 12, 13, 14, 15]]
ATOM_WEIGHTS = [0.0, 1.0, 2.0, math.inf, 0.5] + [1.0] * 11
GROUP_WEIGHTS = [0.0, 1.0, math.inf, 2.0]


def instance(seed=0, m=M, k=K):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(m), rng.standard_normal((m, k))


def configs(y, D):
    """Return {name: (problem, reference kind, reference keyword arguments)}."""
    lam = 0.3 * np.abs(D.T @ y).max()
    sigma = 0.3 * np.linalg.norm(y)
    w, gw = np.array(ATOM_WEIGHTS), np.array(GROUP_WEIGHTS)
    return {
        "lasso": (ib.Lasso(lam), "lasso", dict(lam=lam)),
        "lasso_weighted": (
            ib.Lasso(lam, weights=torch.tensor(w)), "lasso", dict(lam=lam, weights=w)
        ),
        "lasso_nonneg": (ib.Lasso(lam, nonneg=True), "lasso", dict(lam=lam, nonneg=True)),
        "elastic_net": (ib.ElasticNet(lam, 0.7), "elastic_net", dict(lam=lam, l2=0.7)),
        "group_lasso": (ib.GroupLasso(lam, GROUPS), "group_lasso", dict(lam=lam, groups=GROUPS)),
        "group_lasso_weighted": (
            ib.GroupLasso(lam, GROUPS, weights=gw),
            "group_lasso",
            dict(lam=lam, groups=GROUPS, weights=gw),
        ),
        "sparse_group_lasso": (
            ib.SparseGroupLasso(lam, GROUPS, 0.4),
            "sparse_group_lasso",
            dict(lam=lam, groups=GROUPS, l1_ratio=0.4),
        ),
        "basis_pursuit": (ib.BasisPursuit(), "basis_pursuit", {}),
        "basis_pursuit_denoising": (
            ib.BasisPursuitDenoising(sigma), "basis_pursuit_denoising", dict(sigma=sigma)
        ),
    }


NAMES = list(configs(*instance()))
PENALISED = [n for n in NAMES if not n.startswith("basis_pursuit")]


def setup(name, seed=0):
    y, D = instance(seed)
    problem, kind, kwargs = configs(y, D)[name]
    return y, D, problem, kind, kwargs


def t(array):
    return torch.as_tensor(np.asarray(array), dtype=torch.float64)


def feasible_perturbation(name, z, rng, size=0.05):
    """Return z plus noise that keeps forced atoms at zero and a non-negative code >= 0."""
    noisy = z + size * rng.standard_normal(z.shape)
    if name == "lasso_weighted":
        noisy[3] = 0.0
    if name == "group_lasso_weighted":
        noisy[GROUPS[2]] = 0.0
    if name == "lasso_nonneg":
        noisy = np.abs(noisy)
    return noisy


# ---------------------------------------------------------------------------
# Construction and storage


def test_parameter_registered():
    lam = nn.Parameter(torch.tensor(0.5))
    problem = ib.Lasso(lam)
    assert dict(problem.named_parameters())["lam"] is lam


def test_plain_tensor_is_buffer():
    problem = ib.Lasso(torch.tensor([0.5, 1.0]))
    assert_close(problem.state_dict()["lam"], torch.tensor([0.5, 1.0]))


def test_buffer_follows_to():
    problem = ib.Lasso(torch.tensor(0.5, dtype=torch.float32)).to(torch.float64)
    assert problem.lam.dtype == torch.float64


def test_graph_tensor_kept():
    log_lam = torch.tensor(0.0, requires_grad=True)
    lam = log_lam.exp()
    problem = ib.Lasso(lam)
    assert problem.lam is lam
    assert "lam" not in problem.state_dict()


def test_float_stored_as_float():
    assert ib.ElasticNet(1, 0.5).l2 == 0.5


def test_repr_lasso():
    assert repr(ib.Lasso(0.5, nonneg=True)) == "Lasso(lam=0.5, nonneg=True)"


def test_repr_groups():
    text = repr(ib.SparseGroupLasso(1.0, [[0, 2], [1]], 0.3))
    assert text == "SparseGroupLasso(lam=1, l1_ratio=0.3, groups=Groups([[0, 2], [1]]))"


def test_repr_tensor_parameter():
    assert repr(ib.BasisPursuitDenoising(torch.ones(3))) == "BasisPursuitDenoising(sigma=tensor(3,))"


def test_cache_key_structure():
    keys = {
        ib.Lasso(1.0).cache_key(),
        ib.Lasso(2.0).cache_key(),
        ib.Lasso(1.0, nonneg=True).cache_key(),
        ib.GroupLasso(1.0, [2, 2]).cache_key(),
        ib.GroupLasso(1.0, [[0, 2], [1, 3]]).cache_key(),
    }
    assert len(keys) == 4


def test_copies_drop_cache():
    problem = ib.Lasso(0.5)
    problem._cache["layer"] = object()
    assert copy.deepcopy(problem)._cache == {}
    assert pickle.loads(pickle.dumps(problem))._cache == {}
    assert "layer" in problem._cache


# ---------------------------------------------------------------------------
# Groups


def test_groups_from_sizes():
    groups = ib.Groups([3, 1, 2])
    assert groups.members == [[0, 1, 2], [3], [4, 5]]
    assert groups.contiguous


def test_groups_from_tensor_lists():
    groups = ib.Groups([torch.tensor([2, 0]), torch.tensor([1])])
    assert groups.members == [[2, 0], [1]]
    assert not groups.contiguous


def test_groups_index():
    index = ib.Groups([[2, 0], [1, 3]]).index(4)
    assert index.tolist() == [0, 1, 0, 1]


def test_groups_default_weights():
    weights = ib.Groups([4, 1]).default_weights()
    assert_close(weights, torch.tensor([2.0, 1.0], dtype=torch.float64))


def test_groups_copy():
    groups = ib.Groups([[1], [0]])
    assert ib.Groups(groups).key() == groups.key()


# ---------------------------------------------------------------------------
# cvxpy formulations


@pytest.mark.parametrize("name", NAMES)
def test_formulation_is_dpp(name):
    _, _, problem, _, _ = setup(name)
    formulation = problem.cvxpy_formulation(M, K)
    assert formulation.problem.is_dpp()
    assert [p.name() for p in formulation.parameters][:2] == ["D", "y"]


@pytest.mark.parametrize("name", PENALISED + ["basis_pursuit_denoising"])
def test_rescale_matches_reference(name):
    """The rescaled parameters give the code of the rescaled data, z * d / s."""
    y, D, problem, kind, kwargs = setup(name)
    d, s = 3.0, 0.2
    batch = ib.inputs.prepare_inputs(t(y), t(D), problem)
    scaled = problem.rescale(batch.params, t([d]), t([s]))
    scaled_kwargs = dict(kwargs)
    for key in ("lam", "l2", "sigma"):
        if key in kwargs:
            scaled_kwargs[key] = float(scaled[key][0])
    expected = reference_solve(kind, y, D, **kwargs).z * d / s
    got = reference_solve(kind, y / s, D / d, **scaled_kwargs).z
    np.testing.assert_allclose(got, expected, atol=1e-9)


# ---------------------------------------------------------------------------
# Objective, duality gap and residual


@pytest.mark.parametrize("name", NAMES)
def test_objective_matches_reference(name):
    y, D, problem, kind, kwargs = setup(name)
    z = feasible_perturbation(name, np.zeros(K), np.random.default_rng(1), size=0.5)
    expected = objective_value(kind, z, y, D, **kwargs)
    assert_close(problem.objective(t(z), t(y), t(D)), t(expected))


@pytest.mark.parametrize("name", NAMES)
def test_gap_zero_at_optimum(name):
    y, D, problem, kind, kwargs = setup(name)
    z = reference_solve(kind, y, D, **kwargs).z
    assert float(problem.duality_gap(t(z), t(y), t(D))) <= 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_residual_zero_at_optimum(name):
    y, D, problem, kind, kwargs = setup(name)
    z = reference_solve(kind, y, D, **kwargs).z
    assert float(problem.residual(t(z), t(y), t(D))) <= 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_gap_positive_off_optimum(name):
    y, D, problem, kind, kwargs = setup(name)
    z = reference_solve(kind, y, D, **kwargs).z
    z = feasible_perturbation(name, z, np.random.default_rng(2))
    assert float(problem.duality_gap(t(z), t(y), t(D))) > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_residual_positive_off_optimum(name):
    y, D, problem, kind, kwargs = setup(name)
    z = reference_solve(kind, y, D, **kwargs).z
    z = feasible_perturbation(name, z, np.random.default_rng(2))
    assert float(problem.residual(t(z), t(y), t(D))) > 1e-4


@pytest.mark.parametrize("name", PENALISED)
def test_gap_bounds_suboptimality(name):
    """Weak duality: gap * max(P(0), P(z)) >= P(z) - P(z*) at any feasible z."""
    y, D, problem, kind, kwargs = setup(name)
    optimum = reference_solve(kind, y, D, **kwargs)
    rng = np.random.default_rng(3)
    for _ in range(5):
        z = feasible_perturbation(name, optimum.z, rng, size=0.2)
        primal = objective_value(kind, z, y, D, **kwargs)
        scale = max(primal, 0.5 * float(y @ y))
        gap = float(problem.duality_gap(t(z), t(y), t(D)))
        assert gap * scale >= primal - optimum.objective - 1e-12


@pytest.mark.parametrize("name, atoms", [
    ("lasso_nonneg", {0: -0.1}),
    ("lasso_weighted", {3: 0.1}),
    ("group_lasso_weighted", {7: 0.1}),
])
def test_infeasible_code_infinite(name, atoms):
    y, D, problem, _, _ = setup(name)
    z = torch.zeros(K, dtype=torch.float64)
    for j, value in atoms.items():
        z[j] = value
    assert math.isinf(float(problem.objective(z, t(y), t(D))))
    assert math.isinf(float(problem.duality_gap(z, t(y), t(D))))
    assert math.isinf(float(problem.residual(z, t(y), t(D))))


def test_forced_atom_residual_zero():
    """A forced-zero atom at zero satisfies its optimality condition, whatever D^T r is."""
    y, D, problem, kind, kwargs = setup("lasso_weighted")
    z = reference_solve(kind, y, D, **kwargs).z
    assert abs(D[:, 3] @ (y - D @ z)) > 0.1
    assert float(problem.residual(t(z), t(y), t(D))) <= 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_batched_oracles_match_rows(name):
    y, D, problem, kind, kwargs = setup(name)
    rng = np.random.default_rng(4)
    Y = np.stack([y, y + 0.1 * rng.standard_normal(M)])
    Z = reference_batch(kind, Y, D, **kwargs).z
    Z[1] = feasible_perturbation(name, Z[1], rng)
    for oracle in ("objective", "duality_gap", "residual"):
        batched = getattr(problem, oracle)(t(Z), t(Y), t(D))
        rows = torch.stack([getattr(problem, oracle)(t(Z[b]), t(Y[b]), t(D)) for b in range(2)])
        assert_close(batched, rows)


@pytest.mark.parametrize("name", ["lasso", "elastic_net", "sparse_group_lasso"])
def test_oracles_scale_invariant(name):
    """(c D, c y, c^2 penalties) has the same code and the same relative gap and residual."""
    y, D, problem, kind, kwargs = setup(name)
    c = 1e3
    scaled_params = {"lam": kwargs["lam"] * c**2}
    if name == "elastic_net":
        scaled = ib.ElasticNet(scaled_params["lam"], 0.7 * c**2)
    elif name == "sparse_group_lasso":
        scaled = ib.SparseGroupLasso(scaled_params["lam"], GROUPS, 0.4)
    else:
        scaled = ib.Lasso(scaled_params["lam"])
    z = feasible_perturbation(name, reference_solve(kind, y, D, **kwargs).z, np.random.default_rng(5))
    for oracle in ("duality_gap", "residual"):
        base = getattr(problem, oracle)(t(z), t(y), t(D))
        assert_close(getattr(scaled, oracle)(t(z), t(c * y), t(c * D)), base)


def test_bp_oracles_scale_invariant():
    y, D, problem, kind, kwargs = setup("basis_pursuit")
    z = reference_solve(kind, y, D).z
    z = feasible_perturbation("basis_pursuit", z, np.random.default_rng(6))
    for oracle in ("duality_gap", "residual"):
        base = getattr(problem, oracle)(t(z), t(y), t(D))
        assert_close(getattr(problem, oracle)(t(z), t(1e-3 * y), t(1e-3 * D)), base)


# ---------------------------------------------------------------------------
# lam_max


def test_lam_max_lasso_closed_form():
    y, D = instance()
    assert_close(ib.lam_max(t(y), t(D)), t(np.abs(D.T @ y).max()))


def test_lam_max_nonneg_one_sided():
    y, D = instance()
    assert_close(ib.lam_max(t(y), t(D), ib.Lasso(1.0, nonneg=True)), t((D.T @ y).max()))


def test_lam_max_weighted_projects_unpenalised():
    y, D = instance()
    w = np.array(ATOM_WEIGHTS)
    r = y - D[:, 0] * (D[:, 0] @ y) / (D[:, 0] @ D[:, 0])
    finite = (w > 0) & np.isfinite(w)
    expected = np.max(np.abs(D.T @ r)[finite] / w[finite])
    got = ib.lam_max(t(y), t(D), ib.Lasso(1.0, weights=torch.tensor(w)))
    assert_close(got, t(expected))


def test_lam_max_group_closed_form():
    y, D = instance()
    expected = max(np.linalg.norm(D[:, g].T @ y) / np.sqrt(len(g)) for g in GROUPS)
    assert_close(ib.lam_max(t(y), t(D), ib.GroupLasso(1.0, GROUPS)), t(expected))


def test_lam_max_sparse_group_equation():
    """At lam_max, the binding group satisfies ||soft(D_g^T y, lam a)|| = lam (1 - a) sqrt(|g|)."""
    y, D = instance()
    a = 0.4
    lam = float(ib.lam_max(t(y), t(D), ib.SparseGroupLasso(1.0, GROUPS, a)))
    v = D.T @ y
    slack = []
    for g in GROUPS:
        shrunk = np.sign(v[g]) * np.maximum(np.abs(v[g]) - lam * a, 0.0)
        slack.append(lam * (1 - a) * np.sqrt(len(g)) - np.linalg.norm(shrunk))
    assert min(slack) >= -1e-10
    assert min(slack) <= 1e-10


def test_lam_max_batched():
    y, D = instance()
    Y = np.stack([y, 2 * y, -y])
    got = ib.lam_max(t(Y), t(D))
    assert_close(got, t(np.abs(Y @ D).max(axis=1)))


@pytest.mark.parametrize("name", PENALISED)
def test_lam_max_zeroes_reference(name):
    """The reference code is zero (unpenalised atoms aside) just above lam_max, not below."""
    y, D, problem, kind, kwargs = setup(name)
    lam_max = float(ib.lam_max(t(y), t(D), problem))
    # The reference's polish does not converge within 1e-5 above lam_max on
    # the sparse group lasso, so the margin is 1e-3 on both sides. The
    # closed-form tests above pin lam_max itself to 1e-10.
    above = dict(kwargs, lam=lam_max * (1 + 1e-3))
    below = dict(kwargs, lam=lam_max * (1 - 1e-3))
    far = dict(kwargs, lam=lam_max * 100)
    z_far = reference_solve(kind, y, D, **far).z
    assert np.abs(reference_solve(kind, y, D, **above).z - z_far).max() <= 1e-9
    assert np.abs(reference_solve(kind, y, D, **below).z - z_far).max() > 1e-6


def test_lam_max_zero_signal():
    _, D = instance()
    assert float(ib.lam_max(torch.zeros(M, dtype=torch.float64), t(D))) == 0.0


@pytest.mark.parametrize("problem", [ib.BasisPursuit(), ib.BasisPursuitDenoising(0.1)])
def test_lam_max_constrained_kinds(problem):
    y, D = instance()
    with pytest.raises(ValueError, match=r"has no penalty weight, so lam_max is undefined"):
        ib.lam_max(t(y), t(D), problem)


# ---------------------------------------------------------------------------
# Basis pursuit feasibility


def test_distance_to_range():
    rng = np.random.default_rng(8)
    D = rng.standard_normal((6, 4)) @ rng.standard_normal((4, 10))
    y = rng.standard_normal(6)
    coefficients = np.linalg.lstsq(D, y, rcond=None)[0]
    expected = np.linalg.norm(y - D @ coefficients)
    got = distance_to_range(t(y)[None], t(D))
    assert_close(got, t([expected]))


def test_infeasibility_mask():
    rng = np.random.default_rng(8)
    D = rng.standard_normal((6, 4)) @ rng.standard_normal((4, 10))
    Y = np.stack([D @ rng.standard_normal(10), rng.standard_normal(6)])
    problem = ib.BasisPursuitDenoising(torch.tensor([0.0, 10.0], dtype=torch.float64))
    batch = ib.inputs.prepare_inputs(t(Y), t(D), problem)
    _, bad = problem.infeasibility(batch.y, batch.D, batch.params)
    assert bad.tolist() == [False, False]
    _, bad = ib.BasisPursuit().infeasibility(batch.y, batch.D, {})
    assert bad.tolist() == [False, True]
