"""The cvxpylayers backend: codes and gradients of every problem kind.

Codes are compared with the reference solver (``tests.reference``: Clarabel,
then a polish on the support to machine precision). Gradients are compared
with central finite differences of that reference in float64, along the
scalar parameters, the weights and random directions in ``y`` and ``D``.
Each instance's KKT margin (the smallest relative slack of the strict
optimality conditions) is checked first, so that no step of the finite
differences crosses a support change.
"""

from __future__ import annotations

import copy
import logging
import math
import pickle

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import implicit_basis as ib
from implicit_basis.diff.cvxpylayers import DEFAULT_SOLVER_ARGS, solver_settings
from tests.reference import reference_batch, reference_solve

BACKEND = "cvxpylayers"
M, K = 10, 16
GROUPS = [[0, 1, 2, 3], [4, 5, 6], [7, 8], [9, 10, 11, 12, 13, 14, 15]]

# Finite differences of the reference: its relative KKT residual is about
# 1e-13, so a step of 1e-5 keeps both the rounding and the truncation error
# near 1e-8, well inside the 1e-5 tolerance on the gradients.
FD_STEP = 1e-5
GRAD_RTOL = 1e-5
# The reference is exact to machine precision; SCS at eps 1e-10 leaves
# errors of about 1e-10 on the codes.
CODE_ATOL = 1e-7
# Smallest KKT margin an instance needs before finite differences are used.
MIN_MARGIN = 0.05


def t(array, requires_grad=False):
    return torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


# ---------------------------------------------------------------------------
# Instances: one per problem kind and option, described by numpy data so
# that the same description builds the library's problem and the
# reference's keyword arguments.


def spec(name, seed):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((M, K))
    y = rng.standard_normal(M)
    lam = 0.3 * np.abs(D.T @ y).max()
    specs = {
        "lasso": dict(kind="lasso", scalars={"lam": lam}),
        "lasso_weighted": dict(
            kind="lasso",
            scalars={"lam": lam},
            weights=np.array([0.0, 1.0, 2.0, math.inf, 0.5, 1.5] + [1.0] * 10),
        ),
        "lasso_nonneg": dict(kind="lasso", scalars={"lam": 0.2 * lam}, nonneg=True),
        "elastic_net": dict(kind="elastic_net", scalars={"lam": lam, "l2": 0.7}),
        "group_lasso": dict(
            kind="group_lasso",
            scalars={"lam": lam},
            weights=np.array([0.5, 1.0, math.inf, 2.0]),
            groups=GROUPS,
        ),
        "sparse_group_lasso": dict(
            kind="sparse_group_lasso",
            scalars={"lam": lam, "l1_ratio": 0.4},
            weights=np.array([1.0, 2.5, 1.5, 2.0]),
            groups=GROUPS,
        ),
        "basis_pursuit": dict(kind="basis_pursuit", scalars={}),
        "basis_pursuit_denoising": dict(
            kind="basis_pursuit_denoising", scalars={"sigma": 0.3 * np.linalg.norm(y)}
        ),
    }
    return dict(specs[name], y=y, D=D)


# Seeds whose instances have a KKT margin of at least MIN_MARGIN (checked by
# test_instance_margin).
SEEDS = {
    "lasso": 4,
    "lasso_weighted": 3,
    "lasso_nonneg": 5,
    "elastic_net": 1,
    "group_lasso": 10,
    "sparse_group_lasso": 9,
    "basis_pursuit": 11,
    "basis_pursuit_denoising": 3,
}
NAMES = list(SEEDS)


def reference_kwargs(s, scalars=None, weights=None):
    kwargs = dict(s["scalars"] if scalars is None else scalars)
    w = s.get("weights") if weights is None else weights
    if w is not None:
        kwargs["weights"] = w
    if "groups" in s:
        kwargs["groups"] = s["groups"]
    if s.get("nonneg"):
        kwargs["nonneg"] = True
    return kwargs


def make_problem(s, scalars, weights=None):
    """Build the library's problem from tensors (or floats) for the scalars and weights."""
    kind = s["kind"]
    if kind == "lasso":
        return ib.Lasso(scalars["lam"], weights=weights, nonneg=s.get("nonneg", False))
    if kind == "elastic_net":
        return ib.ElasticNet(scalars["lam"], scalars["l2"])
    if kind == "group_lasso":
        return ib.GroupLasso(scalars["lam"], s["groups"], weights=weights)
    if kind == "sparse_group_lasso":
        return ib.SparseGroupLasso(scalars["lam"], s["groups"], scalars["l1_ratio"], weights=weights)
    if kind == "basis_pursuit":
        return ib.BasisPursuit()
    return ib.BasisPursuitDenoising(scalars["sigma"])


def reference(s, y=None, D=None, scalars=None, weights=None):
    y = s["y"] if y is None else y
    D = s["D"] if D is None else D
    return reference_solve(s["kind"], y, D, **reference_kwargs(s, scalars, weights))


def kkt_margin(s, ref) -> float:
    """Return the smallest relative slack of the strict optimality conditions at ``ref``.

    On the support: |z_j| / max |z| (and ||z_g|| / max |z| for active
    groups). Off it: (tau - |subgradient|) / tau for every penalised atom or
    group at zero, with the kind's own threshold tau.
    """
    y, D, z = s["y"], s["D"], ref.z
    kind, scalars = s["kind"], s["scalars"]
    top = np.abs(z).max()
    slacks = list(np.abs(z[z != 0]) / top)
    g = D.T @ (y - D @ z)
    if kind in ("lasso", "elastic_net", "basis_pursuit_denoising"):
        if kind == "basis_pursuit_denoising":
            tau = np.full(K, 1.0 / ref.mu)
        else:
            w = s.get("weights", np.ones(K))
            tau = scalars["lam"] * w
            g = g - scalars.get("l2", 0.0) * z
        if s.get("nonneg"):
            g = np.maximum(g, 0.0)
        off = (z == 0) & np.isfinite(tau) & (tau > 0)
        slacks += list((tau[off] - np.abs(g[off])) / tau[off])
    elif kind == "basis_pursuit":
        correlation = D.T @ ref.nu
        slacks += list(1.0 - np.abs(correlation[z == 0]))
    else:
        a = scalars.get("l1_ratio", 0.0)
        w = s.get("weights", np.sqrt([len(group) for group in s["groups"]]))
        tau1 = scalars["lam"] * a
        for group, weight in zip(s["groups"], w):
            tau_g = scalars["lam"] * (1 - a) * weight
            if not np.isfinite(tau_g):
                continue
            shrunk = np.sign(g[group]) * np.maximum(np.abs(g[group]) - tau1, 0.0)
            if np.all(z[group] == 0):
                slacks.append((tau_g - np.linalg.norm(shrunk)) / tau_g)
                continue
            slacks.append(np.linalg.norm(z[group]) / top)
            inside = [j for j in group if z[j] == 0]
            if inside:
                slacks += list((tau1 - np.abs(g[inside])) / tau1)
    return float(min(slacks))


def directions(s, rng):
    """Yield (label, dy, dD, dscalars, dweights): unit directions of the finite differences."""
    zero_y, zero_D = np.zeros(M), np.zeros((M, K))
    no_scalars = {name: 0.0 for name in s["scalars"]}
    dy = rng.standard_normal(M)
    yield "y", dy / np.linalg.norm(dy), zero_D, no_scalars, None
    dD = rng.standard_normal((M, K))
    yield "D", zero_y, dD / np.linalg.norm(dD), no_scalars, None
    for name in s["scalars"]:
        yield name, zero_y, zero_D, dict(no_scalars, **{name: 1.0}), None
    w = s.get("weights")
    if w is not None:
        movable = np.isfinite(w) & (w > 0)
        dw = np.where(movable, rng.standard_normal(w.shape), 0.0)
        yield "weights", zero_y, zero_D, no_scalars, dw / np.linalg.norm(dw)


def fd_derivative(s, c, dy, dD, dscalars, dw):
    """Central difference of c . z_ref along the direction, step FD_STEP (relative for scalars)."""
    steps = [FD_STEP]
    for name, direction in dscalars.items():
        if direction:
            steps.append(FD_STEP * s["scalars"][name])
    h = min(steps)
    values = []
    for sign in (1.0, -1.0):
        scalars = {name: v + sign * h * dscalars[name] for name, v in s["scalars"].items()}
        weights = None if dw is None else s["weights"] + sign * h * dw
        z = reference(s, s["y"] + sign * h * dy, s["D"] + sign * h * dD, scalars, weights).z
        values.append(c @ z)
    return (values[0] - values[1]) / (2 * h)


def solve_with_grads(s, c):
    """Return the backend's code and the gradients of c . z, keyed like the directions."""
    y, D = t(s["y"], True), t(s["D"], True)
    scalars = {name: t(v, True) for name, v in s["scalars"].items()}
    weights = None if s.get("weights") is None else t(s["weights"], True)
    z = ib.sparse_code(y, D, make_problem(s, scalars, weights), backend=BACKEND)
    leaves = [y, D, *scalars.values()] + ([weights] if weights is not None else [])
    grads = torch.autograd.grad(z @ t(c), leaves)
    named = dict(zip(["y", "D", *scalars, "weights"], grads))
    return z.detach().numpy(), named


# ---------------------------------------------------------------------------
# Codes and gradients of every kind


@pytest.mark.parametrize("name", NAMES)
def test_instance_margin(name):
    s = spec(name, SEEDS[name])
    ref = reference(s)
    assert ref.polished
    assert kkt_margin(s, ref) >= MIN_MARGIN


@pytest.mark.parametrize("name", NAMES)
def test_code_matches_reference(name):
    s = spec(name, SEEDS[name])
    z = ib.sparse_code(t(s["y"]), t(s["D"]), make_problem(s, s["scalars"], s.get("weights")),
                       backend=BACKEND)
    expected = reference(s).z
    np.testing.assert_allclose(z.numpy(), expected, rtol=0, atol=CODE_ATOL)
    np.testing.assert_array_equal(z.numpy() == 0, expected == 0)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_match_fd(name):
    s = spec(name, SEEDS[name])
    rng = np.random.default_rng(100)
    c = rng.standard_normal(K)
    _, grads = solve_with_grads(s, c)
    for label, dy, dD, dscalars, dw in directions(s, rng):
        expected = fd_derivative(s, c, dy, dD, dscalars, dw)
        got = float((grads["y"] * t(dy)).sum() + (grads["D"] * t(dD)).sum())
        got += sum(float(grads[n]) * dscalars[n] for n in s["scalars"])
        if dw is not None:
            got += float((grads["weights"] * t(dw)).sum())
        assert abs(got - expected) <= GRAD_RTOL * abs(expected), f"{label}: {got} vs {expected}"


@pytest.mark.parametrize("name", ["lasso", "group_lasso", "basis_pursuit_denoising"])
def test_off_support_gradients_exactly_zero(name):
    s = spec(name, SEEDS[name])
    rng = np.random.default_rng(101)
    z, grads = solve_with_grads(s, rng.standard_normal(K))
    off = z == 0
    assert off.any()
    assert bool((grads["D"][:, off] == 0).all())


def test_weights_gradient_off_support_zero():
    s = spec("lasso_weighted", SEEDS["lasso_weighted"])
    z, grads = solve_with_grads(s, np.ones(K))
    assert bool((grads["weights"][z == 0] == 0).all())


# ---------------------------------------------------------------------------
# Batches and per-sample parameters


PER_SAMPLE = {
    "lasso": "lam",
    "elastic_net": "l2",
    "sparse_group_lasso": "l1_ratio",
    "basis_pursuit_denoising": "sigma",
}


@pytest.mark.parametrize("name", list(PER_SAMPLE))
def test_per_sample_parameter(name):
    """Per-sample values (B,) give each row the reference code and its own derivative."""
    s = spec(name, SEEDS[name])
    param = PER_SAMPLE[name]
    rng = np.random.default_rng(102)
    Y = s["y"] + 0.01 * rng.standard_normal((3, M))
    values = s["scalars"][param] * np.array([0.98, 1.0, 1.02])
    scalars = dict(s["scalars"], **{param: t(values, True)})
    Y_t = t(Y, True)
    z = ib.sparse_code(Y_t, t(s["D"]), make_problem(s, scalars, s.get("weights")), backend=BACKEND)
    expected = reference_batch(s["kind"], Y, s["D"], **reference_kwargs(s, dict(s["scalars"], **{param: values})))
    np.testing.assert_allclose(z.detach().numpy(), expected.z, rtol=0, atol=CODE_ATOL)

    (grad,) = torch.autograd.grad(z.sum(), scalars[param])
    for b in range(3):
        h = FD_STEP * values[b]
        row = dict(s, y=Y[b], scalars=dict(s["scalars"], **{param: values[b]}))
        assert kkt_margin(row, reference(row)) >= MIN_MARGIN
        plus = reference(row, scalars=dict(row["scalars"], **{param: values[b] + h})).z.sum()
        minus = reference(row, scalars=dict(row["scalars"], **{param: values[b] - h})).z.sum()
        expected_b = (plus - minus) / (2 * h)
        assert abs(float(grad[b]) - expected_b) <= GRAD_RTOL * abs(expected_b)


def test_batched_D_rows():
    s = spec("lasso", SEEDS["lasso"])
    rng = np.random.default_rng(103)
    D3 = s["D"] + 0.1 * rng.standard_normal((3, M, K))
    z = ib.sparse_code(t(s["y"]), t(D3), ib.Lasso(s["scalars"]["lam"]), backend=BACKEND)
    for b in range(3):
        expected = reference_solve("lasso", s["y"], D3[b], lam=s["scalars"]["lam"]).z
        np.testing.assert_allclose(z[b].numpy(), expected, rtol=0, atol=CODE_ATOL)


def test_shared_D_gradient_sums_rows():
    """The gradient of a shared D is the sum of the per-sample gradients of a batched D."""
    s = spec("lasso", SEEDS["lasso"])
    rng = np.random.default_rng(104)
    Y = t(s["y"] + 0.05 * rng.standard_normal((3, M)))
    c = t(rng.standard_normal((3, K)))
    problem = ib.Lasso(s["scalars"]["lam"])
    D = t(s["D"], True)
    (shared,) = torch.autograd.grad((ib.sparse_code(Y, D, problem, backend=BACKEND) * c).sum(), D)
    D3 = t(np.broadcast_to(s["D"], (3, M, K)).copy(), True)
    (rows,) = torch.autograd.grad((ib.sparse_code(Y, D3, problem, backend=BACKEND) * c).sum(), D3)
    assert_close(shared, rows.sum(0), rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------
# The layer cache


def test_layer_cached_per_structure():
    s = spec("lasso", SEEDS["lasso"])
    problem = ib.Lasso(1.0)
    y, D = t(s["y"]), t(s["D"])
    ib.sparse_code(y, D, problem, backend=BACKEND)
    first = dict(problem._cache)
    ib.sparse_code(2 * y, D, problem, backend=BACKEND)
    assert len(problem._cache) == 1
    assert next(iter(problem._cache.values()))[0] is next(iter(first.values()))[0]
    ib.sparse_code(y[:8], D[:8], problem, backend=BACKEND)
    ib.sparse_code(y, D.expand(2, -1, -1), problem, backend=BACKEND)
    assert len(problem._cache) == 3


def test_cache_per_instance():
    s = spec("lasso", SEEDS["lasso"])
    first, second = ib.Lasso(1.0), ib.Lasso(1.0)
    ib.sparse_code(t(s["y"]), t(s["D"]), first, backend=BACKEND)
    assert len(first._cache) == 1
    assert second._cache == {}


def test_group_structure_keys_cache():
    s = spec("group_lasso", SEEDS["group_lasso"])
    problem = ib.GroupLasso(1.0, GROUPS)
    ib.sparse_code(t(s["y"]), t(s["D"]), problem, backend=BACKEND)
    other = ib.GroupLasso(1.0, [8, 8])
    assert problem.cache_key() != other.cache_key()


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda p: pickle.loads(pickle.dumps(p))])
def test_copy_drops_cache_and_solves(clone):
    s = spec("lasso", SEEDS["lasso"])
    problem = ib.Lasso(s["scalars"]["lam"])
    z = ib.sparse_code(t(s["y"]), t(s["D"]), problem, backend=BACKEND)
    copied = clone(problem)
    assert copied._cache == {}
    assert_close(ib.sparse_code(t(s["y"]), t(s["D"]), copied, backend=BACKEND), z)


# ---------------------------------------------------------------------------
# diffcp hazards: tiny incoming gradients, inaccurate solves, the solve-only path


@pytest.mark.parametrize("factor", [1e-9, 1e-12])
def test_tiny_loss_keeps_gradient(factor):
    """diffcp zeroes adjoints below 1e-8; the backend normalises the incoming gradient."""
    s = spec("lasso", SEEDS["lasso"])
    y, D, lam = t(s["y"], True), t(s["D"], True), t(s["scalars"]["lam"], True)
    z = ib.sparse_code(y, D, ib.Lasso(lam), backend=BACKEND)
    reference_grads = torch.autograd.grad(z.sum(), [y, D, lam], retain_graph=True)
    tiny_grads = torch.autograd.grad(factor * z.sum(), [y, D, lam])
    for tiny, expected in zip(tiny_grads, reference_grads):
        assert_close(tiny / factor, expected, rtol=1e-9, atol=0)


def test_tiny_loss_per_sample():
    """Rows whose losses differ by 1e12 each keep their own gradient."""
    s = spec("lasso", SEEDS["lasso"])
    Y = t(np.stack([s["y"], -s["y"]]), True)
    z = ib.sparse_code(Y, t(s["D"]), ib.Lasso(s["scalars"]["lam"]), backend=BACKEND)
    (plain,) = torch.autograd.grad(z.sum(), Y, retain_graph=True)
    (mixed,) = torch.autograd.grad((z * t([[1.0], [1e-12]])).sum(), Y)
    assert_close(mixed[0], plain[0], rtol=1e-9, atol=0)
    assert_close(mixed[1] / 1e-12, plain[1], rtol=1e-9, atol=0)


def test_backward_twice():
    s = spec("lasso", SEEDS["lasso"])
    y = t(s["y"], True)
    z = ib.sparse_code(y, t(s["D"]), ib.Lasso(s["scalars"]["lam"]), backend=BACKEND)
    (first,) = torch.autograd.grad(z.sum(), y, retain_graph=True)
    (second,) = torch.autograd.grad(z.sum(), y)
    assert_close(first, second)


def test_no_grad_matches():
    s = spec("elastic_net", SEEDS["elastic_net"])
    problem = make_problem(s, s["scalars"])
    y, D = t(s["y"], True), t(s["D"])
    with torch.no_grad():
        z = ib.sparse_code(y, D, problem, backend=BACKEND)
    assert not z.requires_grad
    assert_close(z, ib.sparse_code(y, D, problem, backend=BACKEND).detach())


def test_inaccurate_solve_reports_samples():
    s = spec("lasso", SEEDS["lasso"])
    Y = t(np.stack([s["y"], -s["y"]]))
    with pytest.raises(ib.SolverFailedError, match=r"failed on 2 sample\(s\): sample 0: SCS stopped inaccurate \(iteration limit 2 reached\); sample 1") as error:
        ib.sparse_code(Y, t(s["D"]), ib.Lasso(s["scalars"]["lam"]), backend=BACKEND, max_iter=2)
    assert error.value.samples == [0, 1]
    assert bool(torch.isnan(error.value.z).all())
    assert error.value.info.converged.tolist() == [False, False]


def test_large_gap_reported():
    """diffcp ignores Clarabel's status; the duality gap check catches the unfinished solve."""
    s = spec("lasso", SEEDS["lasso"])
    Y = t(np.stack([s["y"], np.zeros(M)]))
    with pytest.raises(ib.SolverFailedError, match=r"sample 0: the solver returned a point with relative duality gap") as error:
        ib.sparse_code(Y, t(s["D"]), ib.Lasso(s["scalars"]["lam"]), backend=BACKEND,
                       solver_args={"solve_method": "Clarabel"}, max_iter=1)
    assert error.value.samples == [0]
    assert bool((error.value.z[1] == 0).all())


# ---------------------------------------------------------------------------
# Infeasible basis pursuit: the other samples keep their codes


def rank_deficient(seed=8):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((6, 4)) @ rng.standard_normal((4, 10))
    y_bad = rng.standard_normal(6)
    x = np.zeros(10)
    x[[1, 6]] = [1.0, -2.0]
    return D, D @ x, y_bad


def test_bp_infeasible_sample_in_batch():
    D, y_ok, y_bad = rank_deficient()
    Y = np.stack([y_ok, y_bad, 2 * y_ok])
    distance = np.linalg.norm(y_bad - D @ np.linalg.lstsq(D, y_bad, rcond=None)[0])
    with pytest.raises(ib.InfeasibleProblemError, match=rf"for sample 1 \(distance of y to range\(D\) {distance:.6f}") as error:
        ib.sparse_code(t(Y), t(D), ib.BasisPursuit(), backend=BACKEND)
    e = error.value
    assert e.samples == [1]
    assert e.distances[0] == pytest.approx(distance, rel=1e-9)
    assert e.info.converged.tolist() == [True, False, True]
    assert bool(torch.isnan(e.z[1]).all())
    expected = reference_solve("basis_pursuit", y_ok, D).z
    np.testing.assert_allclose(e.z[0].detach().numpy(), expected, atol=CODE_ATOL)
    np.testing.assert_allclose(e.z[2].detach().numpy(), 2 * expected, atol=CODE_ATOL)


def test_bpdn_sigma_below_distance():
    D, y_ok, y_bad = rank_deficient()
    distance = np.linalg.norm(y_bad - D @ np.linalg.lstsq(D, y_bad, rcond=None)[0])
    sigma = t([2 * distance, 0.5 * distance])
    Y = t(np.stack([y_bad, y_bad]))
    with pytest.raises(ib.InfeasibleProblemError, match=rf"for sample 1 \(distance of y to range\(D\) {distance:.6g} > sigma = {0.5 * distance:.6g}\)") as error:
        ib.sparse_code(Y, t(D), ib.BasisPursuitDenoising(sigma), backend=BACKEND)
    expected = reference_solve("basis_pursuit_denoising", y_bad, D, sigma=2 * distance).z
    np.testing.assert_allclose(error.value.z[0].detach().numpy(), expected, atol=CODE_ATOL)


# ---------------------------------------------------------------------------
# Scale invariance: tolerances act relative to the data


@pytest.mark.parametrize("c", [1e-4, 1e4])
def test_lasso_scale_invariance(c):
    s = spec("lasso", SEEDS["lasso"])
    lam = s["scalars"]["lam"]
    z = ib.sparse_code(t(s["y"]), t(s["D"]), ib.Lasso(lam), backend=BACKEND)
    same = ib.sparse_code(t(c * s["y"]), t(c * s["D"]), ib.Lasso(c**2 * lam), backend=BACKEND)
    scaled = ib.sparse_code(t(c * s["y"]), t(s["D"]), ib.Lasso(c * lam), backend=BACKEND)
    assert_close(same, z, rtol=1e-8, atol=1e-9)
    assert_close(scaled / c, z, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("c", [1e-4, 1e4])
def test_elastic_net_scale_invariance(c):
    s = spec("elastic_net", SEEDS["elastic_net"])
    lam, l2 = s["scalars"]["lam"], s["scalars"]["l2"]
    z = ib.sparse_code(t(s["y"]), t(s["D"]), ib.ElasticNet(lam, l2), backend=BACKEND)
    same = ib.sparse_code(t(c * s["y"]), t(c * s["D"]), ib.ElasticNet(c**2 * lam, c**2 * l2),
                          backend=BACKEND)
    assert_close(same, z, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("c", [1e-4, 1e4])
def test_group_lasso_scale_invariance(c):
    s = spec("sparse_group_lasso", SEEDS["sparse_group_lasso"])
    lam = s["scalars"]["lam"]
    z = ib.sparse_code(t(s["y"]), t(s["D"]), ib.SparseGroupLasso(lam, GROUPS, 0.4), backend=BACKEND)
    same = ib.sparse_code(t(c * s["y"]), t(c * s["D"]), ib.SparseGroupLasso(c**2 * lam, GROUPS, 0.4),
                          backend=BACKEND)
    assert_close(same, z, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("c", [1e-4, 1e4])
def test_basis_pursuit_scale_invariance(c):
    s = spec("basis_pursuit", SEEDS["basis_pursuit"])
    z = ib.sparse_code(t(s["y"]), t(s["D"]), ib.BasisPursuit(), backend=BACKEND)
    same = ib.sparse_code(t(c * s["y"]), t(c * s["D"]), ib.BasisPursuit(), backend=BACKEND)
    scaled = ib.sparse_code(t(c * s["y"]), t(s["D"]), ib.BasisPursuit(), backend=BACKEND)
    assert_close(same, z, rtol=1e-8, atol=1e-9)
    assert_close(scaled / c, z, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("c", [1e-4, 1e4])
def test_bpdn_scale_invariance(c):
    s = spec("basis_pursuit_denoising", SEEDS["basis_pursuit_denoising"])
    sigma = s["scalars"]["sigma"]
    z = ib.sparse_code(t(s["y"]), t(s["D"]), ib.BasisPursuitDenoising(sigma), backend=BACKEND)
    same = ib.sparse_code(t(c * s["y"]), t(c * s["D"]), ib.BasisPursuitDenoising(c * sigma),
                          backend=BACKEND)
    assert_close(same, z, rtol=1e-8, atol=1e-9)


def test_gradient_scales_with_data():
    """At (c D, c y, c^2 lam) the code is the same, so dz/d(c y) = dz/dy / c."""
    s = spec("lasso", SEEDS["lasso"])
    c = 1e3
    lam = s["scalars"]["lam"]
    y = t(s["y"], True)
    (grad,) = torch.autograd.grad(ib.sparse_code(y, t(s["D"]), ib.Lasso(lam), backend=BACKEND).sum(), y)
    y_c = t(c * s["y"], True)
    z_c = ib.sparse_code(y_c, t(c * s["D"]), ib.Lasso(c**2 * lam), backend=BACKEND)
    (grad_c,) = torch.autograd.grad(z_c.sum(), y_c)
    assert_close(grad_c * c, grad, rtol=1e-7, atol=1e-10)


# ---------------------------------------------------------------------------
# Exact zeros, dtypes and devices


@pytest.mark.parametrize("name", ["lasso", "lasso_nonneg", "elastic_net", "sparse_group_lasso"])
@pytest.mark.parametrize("factor", [1.01, 1.5])
def test_above_lam_max_all_zero(name, factor):
    """Above lam_max the code is exactly 0 and every gradient exactly 0."""
    s = spec(name, SEEDS[name])
    y, D = t(s["y"], True), t(s["D"], True)
    lam_max = ib.lam_max(y.detach(), D.detach(), make_problem(s, s["scalars"]))
    scalars = {n: t(v, True) for n, v in s["scalars"].items()}
    scalars["lam"] = (factor * lam_max).requires_grad_(True)
    z = ib.sparse_code(y, D, make_problem(s, scalars), backend=BACKEND)
    grads = torch.autograd.grad(z.sum(), [y, D, *scalars.values()])
    assert bool((z == 0).all())
    for grad in grads:
        assert bool((grad == 0).all())


def test_bpdn_sigma_above_norm_all_zero():
    s = spec("basis_pursuit_denoising", SEEDS["basis_pursuit_denoising"])
    y, sigma = t(s["y"], True), t(1.01 * np.linalg.norm(s["y"]), True)
    z = ib.sparse_code(y, t(s["D"]), ib.BasisPursuitDenoising(sigma), backend=BACKEND)
    grads = torch.autograd.grad(z.sum(), [y, sigma])
    assert bool((z == 0).all())
    for grad in grads:
        assert bool((grad == 0).all())


def test_float32_in_float32_out():
    s = spec("lasso", SEEDS["lasso"])
    y = torch.tensor(s["y"], dtype=torch.float32, requires_grad=True)
    D = torch.tensor(s["D"], dtype=torch.float32, requires_grad=True)
    lam = torch.tensor(s["scalars"]["lam"], dtype=torch.float32, requires_grad=True)
    z = ib.sparse_code(y, D, ib.Lasso(lam), backend=BACKEND)
    z.sum().backward()
    assert z.dtype == torch.float32
    assert y.grad.dtype == torch.float32
    assert D.grad.dtype == torch.float32
    assert lam.grad.dtype == torch.float32
    expected = reference_solve("lasso", y.detach().double().numpy(), D.detach().double().numpy(),
                               lam=lam.detach().item()).z
    np.testing.assert_allclose(z.detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_info_fields():
    s = spec("group_lasso", SEEDS["group_lasso"])
    problem = make_problem(s, s["scalars"], s["weights"])
    z, info = ib.sparse_code(t(s["y"]), t(s["D"]), problem, backend=BACKEND, return_info=True)
    assert info.backend == "cvxpylayers"
    assert bool(info.converged)
    assert float(info.gap) <= 1e-9
    assert int(info.iterations) == -1
    assert info.support.tolist() == (z != 0).tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_return_on_cuda():
    s = spec("lasso", SEEDS["lasso"])
    y = torch.tensor(s["y"], device="cuda", requires_grad=True)
    D = torch.tensor(s["D"], device="cuda", requires_grad=True)
    z = ib.sparse_code(y, D, ib.Lasso(s["scalars"]["lam"]), backend=BACKEND)
    z.sum().backward()
    assert z.device.type == "cuda"
    assert y.grad.device.type == "cuda"
    assert D.grad.device.type == "cuda"
    expected = ib.sparse_code(t(s["y"]), t(s["D"]), ib.Lasso(s["scalars"]["lam"]), backend=BACKEND)
    assert_close(z.detach().cpu(), expected, rtol=0, atol=1e-10)


def test_lam_graph_reaches_leaf():
    s = spec("lasso", SEEDS["lasso"])
    log_lam = t(math.log(s["scalars"]["lam"]), True)
    z = ib.sparse_code(t(s["y"]), t(s["D"]), ib.Lasso(log_lam.exp()), backend=BACKEND)
    (grad_log,) = torch.autograd.grad(z.sum(), log_lam)
    lam = t(s["scalars"]["lam"], True)
    z = ib.sparse_code(t(s["y"]), t(s["D"]), ib.Lasso(lam), backend=BACKEND)
    (grad,) = torch.autograd.grad(z.sum(), lam)
    assert_close(grad_log, grad * s["scalars"]["lam"])


# ---------------------------------------------------------------------------
# Settings


def test_settings_defaults():
    assert solver_settings(None, None, None) == DEFAULT_SOLVER_ARGS


def test_settings_tol_and_max_iter_scs():
    settings = solver_settings({"n_jobs_forward": 2}, 1e-6, 50)
    assert settings["eps"] == 1e-6
    assert settings["max_iters"] == 50
    assert settings["n_jobs_forward"] == 2


def test_settings_clarabel_drops_scs_keys():
    settings = solver_settings({"solve_method": "clarabel"}, 1e-9, 30)
    assert settings["solve_method"] == "Clarabel"
    assert "eps" not in settings
    assert settings["tol_gap_rel"] == 1e-9
    assert settings["max_iter"] == 30
    assert settings["mode"] == DEFAULT_SOLVER_ARGS["mode"]


def test_settings_unknown_solver():
    with pytest.raises(ValueError, match=r"solve_method'\] must be one of SCS, Clarabel; got 'ECOS'"):
        solver_settings({"solve_method": "ECOS"}, None, None)


def test_settings_not_dict():
    with pytest.raises(TypeError, match=r"solver_args must be a dict of diffcp settings; got list"):
        solver_settings([("eps", 1e-6)], None, None)


@pytest.mark.parametrize("tol", [0.0, -1e-6, math.nan])
def test_settings_bad_tol(tol):
    with pytest.raises(ValueError, match=r"tol must be a positive finite float"):
        solver_settings(None, tol, None)


@pytest.mark.parametrize("max_iter", [0, 2.5, True])
def test_settings_bad_max_iter(max_iter):
    with pytest.raises(ValueError, match=r"max_iter must be a positive integer"):
        solver_settings(None, None, max_iter)


def test_unknown_option():
    s = spec("lasso", SEEDS["lasso"])
    with pytest.raises(TypeError, match=r"unknown options for the cvxpylayers backend: eps"):
        ib.sparse_code(t(s["y"]), t(s["D"]), ib.Lasso(1.0), backend=BACKEND, eps=1e-6)


def test_clarabel_tight_matches_reference():
    s = spec("lasso", SEEDS["lasso"])
    args = {"solve_method": "Clarabel", "tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}
    z = ib.sparse_code(t(s["y"]), t(s["D"]), ib.Lasso(s["scalars"]["lam"]), backend=BACKEND,
                       solver_args=args)
    np.testing.assert_allclose(z.numpy(), reference(s).z, atol=1e-6)


def test_small_lam_logged(caplog):
    s = spec("lasso", SEEDS["lasso"])
    lam = t(1e-10 * s["scalars"]["lam"], True)
    with caplog.at_level(logging.WARNING, logger="implicit_basis.diff.cvxpylayers"):
        ib.sparse_code(t(s["y"]), t(s["D"]), ib.Lasso(lam), backend=BACKEND)
    assert "lam is below 1e-08 * lam_max on samples [0]" in caplog.text
