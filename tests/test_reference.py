"""Tests of the reference solver against values computed independently of it.

The expected numbers of the published cases (Gaussian-bump and random
dictionaries, a rank-deficient basis pursuit, weighted group lasso, a
regression lasso) were computed outside this repository and are given to six
decimals, so they are compared with an absolute tolerance of 1e-6. The
other checks use closed forms on orthonormal dictionaries, scikit-learn's
coordinate descent, and the optimality conditions themselves.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.linear_model import ElasticNet, Lasso

from tests import reference as ref
from tests.reference import kkt_residual, objective_value, reference_batch, reference_solve

SIX_DECIMALS = 1e-6


def soft(v, theta):
    return np.sign(v) * np.maximum(np.abs(v) - theta, 0.0)


def orthonormal(m, k, seed):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((m, k)))
    return Q


# ---------------------------------------------------------------------------
# Published cases


def gaussian_bumps_case():
    t = np.linspace(0, 1, 40)
    centres = np.linspace(0, 1, 30)
    D = np.exp(-((t[:, None] - centres[None, :]) ** 2) / (2 * 0.06**2))
    D /= np.linalg.norm(D, axis=0)
    rng = np.random.default_rng(1)
    x0 = np.zeros(30)
    x0[[5, 14, 22]] = [1.0, -0.7, 0.8]
    y = D @ x0 + 0.01 * rng.standard_normal(40)
    lam = 0.05 * np.abs(D.T @ y).max()
    return y, D, lam


def random_wide_case():
    rng = np.random.default_rng(7)
    D = rng.standard_normal((30, 300)) / np.sqrt(30)
    x0 = np.zeros(300)
    x0[[10, 70, 150, 260]] = [1.0, -1.0, 0.7, -0.5]
    y = D @ x0 + 0.01 * rng.standard_normal(30)
    lam = np.abs(D.T @ y).max() / 5
    return y, D, lam


def rank_deficient_case():
    rng = np.random.default_rng(8)
    D = rng.standard_normal((6, 4)) @ rng.standard_normal((4, 10))
    y_bad = rng.standard_normal(6)
    return D, y_bad


def group_case():
    rng = np.random.default_rng(18)
    return rng.standard_normal((10, 7)), rng.standard_normal(10)


def regression_case():
    rng = np.random.default_rng(25)
    X = rng.standard_normal((50, 20))
    beta = np.zeros(20)
    beta[[1, 7, 12]] = [2.0, -1.0, 0.5]
    y = X @ beta + 0.3 * rng.standard_normal(50)
    return X, y


def test_bumps_lam():
    y, D, lam = gaussian_bumps_case()
    assert_allclose(lam, 0.0502348, atol=SIX_DECIMALS)


def test_bumps_support():
    y, D, lam = gaussian_bumps_case()
    result = reference_solve("lasso", y, D, lam=lam)
    assert_array_equal(np.flatnonzero(result.support), [5, 14, 22, 23])


def test_bumps_values():
    y, D, lam = gaussian_bumps_case()
    result = reference_solve("lasso", y, D, lam=lam)
    expected = np.zeros(30)
    expected[[5, 14, 22, 23]] = [0.955275, -0.653652, 0.753698, 0.003274]
    assert_allclose(result.z, expected, rtol=0, atol=SIX_DECIMALS)


def test_bumps_exact_zeros():
    y, D, lam = gaussian_bumps_case()
    result = reference_solve("lasso", y, D, lam=lam)
    off = np.setdiff1d(np.arange(30), [5, 14, 22, 23])
    assert np.all(result.z[off] == 0.0)


def test_bumps_polish_accepted():
    y, D, lam = gaussian_bumps_case()
    result = reference_solve("lasso", y, D, lam=lam)
    assert result.polished
    assert result.kkt_residual <= 1e-12


def test_random_wide_support():
    y, D, lam = random_wide_case()
    result = reference_solve("lasso", y, D, lam=lam)
    assert_array_equal(np.flatnonzero(result.support), [10, 70, 150, 260])


def test_random_wide_values():
    y, D, lam = random_wide_case()
    assert_allclose(lam, 0.2430366, atol=SIX_DECIMALS)
    result = reference_solve("lasso", y, D, lam=lam)
    expected = [0.831347, -0.719797, 0.570098, -0.233117]
    assert_allclose(result.z[[10, 70, 150, 260]], expected, rtol=0, atol=SIX_DECIMALS)


def test_bp_infeasible_raises():
    D, y_bad = rank_deficient_case()
    with pytest.raises(ValueError, match=r"distance to range\(D\) is 0\.448959"):
        reference_solve("basis_pursuit", y_bad, D)


def test_bp_rank_deficient_solution():
    D, _ = rank_deficient_case()
    x_true = np.zeros(10)
    x_true[[1, 6]] = [1.0, -2.0]
    result = reference_solve("basis_pursuit", D @ x_true, D)
    expected = [0, 0, 0, 0.060968, -0.281019, 0, -1.469891, 0, 0, -0.210556]
    assert_allclose(result.z, expected, rtol=0, atol=SIX_DECIMALS)


def test_bp_rank_deficient_value():
    D, _ = rank_deficient_case()
    x_true = np.zeros(10)
    x_true[[1, 6]] = [1.0, -2.0]
    result = reference_solve("basis_pursuit", D @ x_true, D)
    assert_allclose(result.objective, 2.0224342, rtol=0, atol=1e-7)


GROUP_EXPECTED = {
    "unit": ([1.0, 1.0, 1.0], [0.048947, 0.087262, 0.097574, 0.028148, 0.003106, 0.253834, 0.158923]),
    "unpenalised": ([1.0, 0.0, 2.0], [0.003350, 0.026953, 0.234158, 0.190167, 0.055937, 0.157223, 0.081366]),
    "forced_zero": ([1.0, np.inf, 2.0], [0.080117, 0.150440, 0, 0, 0, 0.230023, 0.093894]),
}


@pytest.mark.parametrize("variant", sorted(GROUP_EXPECTED))
def test_group_lasso_weights(variant):
    D, y = group_case()
    weights, expected = GROUP_EXPECTED[variant]
    groups = [[0, 1], [2, 3, 4], [5, 6]]
    result = reference_solve("group_lasso", y, D, lam=1.0, groups=groups, weights=weights)
    assert result.polished
    assert_allclose(result.z, expected, rtol=0, atol=SIX_DECIMALS)


def test_group_lasso_empty_group():
    D, y = group_case()
    _, expected = GROUP_EXPECTED["unpenalised"]
    groups = [[0, 1], [], [2, 3, 4], [5, 6]]
    weights = [1.0, 5.0, 0.0, 2.0]
    result = reference_solve("group_lasso", y, D, lam=1.0, groups=groups, weights=weights)
    assert_allclose(result.z, expected, rtol=0, atol=SIX_DECIMALS)


def test_group_lasso_forced_zero():
    D, y = group_case()
    result = reference_solve("group_lasso", y, D, lam=1.0, groups=[[0, 1], [2, 3, 4], [5, 6]],
                             weights=[1.0, np.inf, 2.0])
    assert np.all(result.z[2:5] == 0.0)


def test_regression_lasso_values():
    X, y = regression_case()
    result = reference_solve("lasso", y, X, lam=2.5)
    expected = np.zeros(20)
    expected[[1, 4, 7, 12, 14]] = [1.955259, 0.003552, -0.919814, 0.435588, -0.027436]
    assert_allclose(result.z, expected, rtol=0, atol=SIX_DECIMALS)


def test_regression_lasso_sklearn():
    X, y = regression_case()
    result = reference_solve("lasso", y, X, lam=2.5)
    model = Lasso(alpha=2.5 / 50, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y)
    assert_allclose(result.z, model.coef_, rtol=0, atol=1e-8)


def test_bp_exact_recovery():
    rng = np.random.default_rng(14)
    # Draws of a tall problem that precede the wide one in the published case.
    rng.standard_normal((30, 10))
    rng.standard_normal(30)
    D2 = rng.standard_normal((5, 10))
    x_true = np.zeros(10)
    x_true[[2, 7]] = [1.0, -1.0]
    result = reference_solve("basis_pursuit", D2 @ x_true, D2)
    assert_allclose(result.z, x_true, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# scikit-learn


def regression_data(seed=3, n=40, k=15):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, k))
    beta = np.r_[np.zeros(k - 5), rng.standard_normal(5)]
    y = X @ beta + 0.1 * rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize(("alpha", "l1_ratio"), [(0.05, 0.5), (0.2, 0.3), (0.01, 0.9)])
def test_elastic_net_matches_sklearn(alpha, l1_ratio):
    X, y = regression_data()
    n = X.shape[0]
    lam = n * alpha * l1_ratio
    l2 = n * alpha * (1 - l1_ratio)
    result = reference_solve("elastic_net", y, X, lam=lam, l2=l2)
    model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=False, tol=1e-14,
                       max_iter=100_000).fit(X, y)
    assert_allclose(result.z, model.coef_, rtol=0, atol=1e-10)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
def test_nonneg_lasso_matches_sklearn(alpha):
    X, y = regression_data()
    result = reference_solve("lasso", y, X, lam=X.shape[0] * alpha, nonneg=True)
    model = Lasso(alpha=alpha, positive=True, fit_intercept=False, tol=1e-14, max_iter=100_000)
    model.fit(X, y)
    assert_allclose(result.z, model.coef_, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------
# Closed forms on orthonormal dictionaries: D^T D = I, so each problem
# separates into per-atom or per-group shrinkage of c = D^T y.


def orthonormal_data(seed=5):
    D = orthonormal(12, 8, seed)
    y = np.random.default_rng(seed + 100).standard_normal(12)
    return D, y, D.T @ y


def test_orthonormal_weighted_lasso():
    D, y, c = orthonormal_data()
    w = np.array([1.0, 0.0, np.inf, 0.5, 2.0, 1.0, 0.0, 3.0])
    lam = 0.4
    result = reference_solve("lasso", y, D, lam=lam, weights=w)
    expected = np.where(np.isinf(w), 0.0, soft(c, lam * np.where(np.isinf(w), 0.0, w)))
    assert_allclose(result.z, expected, rtol=0, atol=1e-14)


def test_orthonormal_nonneg_lasso():
    D, y, c = orthonormal_data()
    w = np.array([1.0, 0.0, np.inf, 0.5, 2.0, 1.0, 0.0, 3.0])
    lam = 0.2
    result = reference_solve("lasso", y, D, lam=lam, weights=w, nonneg=True)
    expected = np.where(np.isinf(w), 0.0, np.maximum(c - lam * np.where(np.isinf(w), 0.0, w), 0.0))
    assert_allclose(result.z, expected, rtol=0, atol=1e-14)


def test_orthonormal_elastic_net():
    D, y, c = orthonormal_data()
    result = reference_solve("elastic_net", y, D, lam=0.3, l2=0.7)
    assert_allclose(result.z, soft(c, 0.3) / 1.7, rtol=0, atol=1e-14)


GROUPS = [[0, 1, 2], [3], [4, 5], [6, 7]]


def block_soft(c, groups, thresholds):
    z = np.zeros_like(c)
    for idx, theta in zip(groups, thresholds):
        norm = np.linalg.norm(c[idx])
        if np.isfinite(theta) and norm > theta:
            z[idx] = c[idx] * (1 - theta / norm)
    return z


def test_orthonormal_group_lasso():
    D, y, c = orthonormal_data()
    w = np.array([1.0, 0.0, np.inf, 0.5])
    result = reference_solve("group_lasso", y, D, lam=0.5, groups=GROUPS, weights=w)
    assert_allclose(result.z, block_soft(c, GROUPS, 0.5 * w), rtol=0, atol=1e-14)


def test_orthonormal_group_lasso_default_weights():
    D, y, c = orthonormal_data()
    result = reference_solve("group_lasso", y, D, lam=0.4, groups=[3, 1, 2, 2])
    thresholds = 0.4 * np.sqrt([3, 1, 2, 2])
    assert_allclose(result.z, block_soft(c, GROUPS, thresholds), rtol=0, atol=1e-14)


@pytest.mark.parametrize("a", [0.0, 0.4, 1.0])
def test_orthonormal_sparse_group_lasso(a):
    D, y, c = orthonormal_data()
    lam = 0.3
    result = reference_solve("sparse_group_lasso", y, D, lam=lam, groups=GROUPS, l1_ratio=a)
    thresholds = lam * (1 - a) * np.sqrt([3, 1, 2, 2])
    expected = block_soft(soft(c, lam * a), GROUPS, thresholds)
    assert_allclose(result.z, expected, rtol=0, atol=1e-14)


def test_orthonormal_bpdn():
    D = orthonormal(8, 8, seed=6)
    y = np.random.default_rng(6).standard_normal(8)
    c = D.T @ y
    sigma = 0.5 * np.linalg.norm(y)
    # min ||z||_1 s.t. ||z - c|| <= sigma is soft(c, tau) with ||min(|c|, tau)|| = sigma.
    def slack(t):
        return np.linalg.norm(np.minimum(np.abs(c), t)) - sigma

    tau = scipy.optimize.brentq(slack, 0, np.abs(c).max())
    result = reference_solve("basis_pursuit_denoising", y, D, sigma=sigma)
    assert_allclose(result.z, soft(c, tau), rtol=0, atol=1e-12)
    assert_allclose(result.mu, 1 / tau, rtol=1e-10)


# ---------------------------------------------------------------------------
# Basis pursuit denoising


def underdetermined(seed=9, m=20, k=60, nonzeros=4):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, k))
    y = D[:, :nonzeros] @ rng.standard_normal(nonzeros) + 0.05 * rng.standard_normal(m)
    return D, y


@pytest.mark.parametrize("sigma", [0.05, 0.2, 1.0])
def test_bpdn_constraint_active(sigma):
    D, y = underdetermined()
    result = reference_solve("basis_pursuit_denoising", y, D, sigma=sigma)
    assert result.polished
    assert_allclose(np.linalg.norm(D @ result.z - y), sigma, rtol=1e-12)


@pytest.mark.parametrize("sigma", [0.05, 0.2, 1.0])
def test_bpdn_near_clarabel(sigma):
    D, y = underdetermined()
    result = reference_solve("basis_pursuit_denoising", y, D, sigma=sigma)
    assert_allclose(result.z, result.clarabel_z, rtol=0, atol=1e-6)


def test_bpdn_equals_lasso_at_inverse_mu():
    D, y = underdetermined()
    result = reference_solve("basis_pursuit_denoising", y, D, sigma=0.2)
    lasso = reference_solve("lasso", y, D, lam=1 / result.mu)
    assert_allclose(result.z, lasso.z, rtol=0, atol=1e-12)


def test_bpdn_zero_inside_ball():
    D, y = underdetermined()
    result = reference_solve("basis_pursuit_denoising", y, D, sigma=np.linalg.norm(y))
    assert np.all(result.z == 0.0)
    assert result.mu == 0.0


def test_bpdn_infeasible_raises():
    X, y = regression_data()
    with pytest.raises(ValueError, match=r"distance of y to range\(D\) is 0\.\d+ >= sigma = 0\.01"):
        reference_solve("basis_pursuit_denoising", y, X, sigma=0.01)


# ---------------------------------------------------------------------------
# Basis pursuit dual certificate


def bp_result():
    D, y = underdetermined(seed=11, m=12, k=30, nonzeros=3)
    y = D[:, :3] @ np.array([1.0, -2.0, 0.5])
    return D, y, reference_solve("basis_pursuit", y, D)


def test_bp_dual_on_support():
    D, y, result = bp_result()
    S = result.support
    assert_allclose(D[:, S].T @ result.nu, np.sign(result.z[S]), rtol=0, atol=1e-12)


def test_bp_dual_feasible():
    D, y, result = bp_result()
    assert np.abs(D.T @ result.nu).max() <= 1 + 1e-12


def test_bp_zero_duality_gap():
    D, y, result = bp_result()
    assert_allclose(y @ result.nu, np.abs(result.z).sum(), rtol=1e-12)


def test_bp_residual_public():
    D, y, result = bp_result()
    assert kkt_residual("basis_pursuit", result.z, y, D, nu=result.nu) <= 1e-12


def test_bp_residual_needs_nu():
    D, y, result = bp_result()
    with pytest.raises(ValueError, match="basis_pursuit needs the dual vector nu"):
        kkt_residual("basis_pursuit", result.z, y, D)


def test_bpdn_residual_public():
    D, y = underdetermined()
    result = reference_solve("basis_pursuit_denoising", y, D, sigma=0.2)
    residual = kkt_residual("basis_pursuit_denoising", result.z, y, D, sigma=0.2, mu=result.mu)
    assert residual <= 1e-12


# ---------------------------------------------------------------------------
# Sparse group lasso limits and KKT residuals


def test_sgl_ratio_one_is_lasso():
    X, y = regression_data()
    groups = [list(range(0, 5)), list(range(5, 10)), list(range(10, 15))]
    sgl = reference_solve("sparse_group_lasso", y, X, lam=5.0, groups=groups, l1_ratio=1.0)
    lasso = reference_solve("lasso", y, X, lam=5.0)
    assert_allclose(sgl.z, lasso.z, rtol=0, atol=1e-13)


def test_sgl_ratio_zero_is_group_lasso():
    X, y = regression_data()
    groups = [list(range(0, 5)), list(range(5, 10)), list(range(10, 15))]
    sgl = reference_solve("sparse_group_lasso", y, X, lam=5.0, groups=groups, l1_ratio=0.0)
    group = reference_solve("group_lasso", y, X, lam=5.0, groups=groups)
    assert_allclose(sgl.z, group.z, rtol=0, atol=1e-13)


KKT_CASES = {
    "lasso": {"lam": 3.0},
    "weighted": {"lam": 3.0, "weights": np.r_[0.0, np.inf, np.linspace(0.5, 2, 58)]},
    "nonneg": {"lam": 2.0, "nonneg": True},
    "elastic_net": {"lam": 2.0, "l2": 0.5},
    "group_lasso": {"lam": 4.0, "groups": [5] * 12},
    "sparse_group_lasso": {"lam": 4.0, "groups": [5] * 12, "l1_ratio": 0.5},
}


@pytest.mark.parametrize("name", sorted(KKT_CASES))
def test_kkt_residual_after_polish(name):
    D, y = underdetermined(seed=12)
    params = dict(KKT_CASES[name])
    kind = name if name in ("elastic_net", "group_lasso", "sparse_group_lasso") else "lasso"
    result = reference_solve(kind, y, D, **params)
    assert result.polished
    assert result.kkt_residual <= 1e-12
    assert kkt_residual(kind, result.z, y, D, **params) <= 1e-12


@pytest.mark.parametrize("name", sorted(KKT_CASES))
def test_objective_below_perturbations(name):
    D, y = underdetermined(seed=12)
    params = dict(KKT_CASES[name])
    kind = name if name in ("elastic_net", "group_lasso", "sparse_group_lasso") else "lasso"
    result = reference_solve(kind, y, D, **params)
    rng = np.random.default_rng(0)
    trials = []
    for _ in range(20):
        z = result.z + 1e-3 * rng.standard_normal(60)
        z = np.where(result.z == 0, z * (rng.random(60) < 0.5), z)
        if params.get("nonneg"):
            z = np.maximum(z, 0.0)
        if "weights" in params:
            z[np.isinf(params["weights"])] = 0.0
        trials.append(objective_value(kind, z, y, D, **params))
    assert_allclose(result.objective, objective_value(kind, result.z, y, D, **params), rtol=1e-15)
    assert result.objective < min(trials)


def test_kkt_residual_detects_perturbation():
    X, y = regression_data()
    result = reference_solve("lasso", y, X, lam=5.0)
    z = result.z.copy()
    z[result.support] *= 1 + 1e-4
    assert kkt_residual("lasso", z, y, X, lam=5.0) > 1e-7


def test_kkt_residual_infeasible_is_inf():
    X, y = regression_data()
    z = np.zeros(15)
    z[0] = -1.0
    assert kkt_residual("lasso", z, y, X, lam=5.0, nonneg=True) == np.inf


def test_lam_above_lam_max_gives_zero():
    X, y = regression_data()
    result = reference_solve("lasso", y, X, lam=np.abs(X.T @ y).max() * 1.01)
    assert np.all(result.z == 0.0)
    assert result.polished


def test_large_problem_polished():
    # A 256 x 1024 lasso with about 26 nonzeros: the polish must scale past toy sizes.
    rng = np.random.default_rng(0)
    D = rng.standard_normal((256, 1024)) / 16
    x0 = np.zeros(1024)
    x0[rng.choice(1024, 30, replace=False)] = rng.standard_normal(30)
    y = D @ x0 + 0.01 * rng.standard_normal(256)
    result = reference_solve("lasso", y, D, lam=0.1 * np.abs(D.T @ y).max())
    assert result.polished
    assert result.kkt_residual <= 1e-12


# ---------------------------------------------------------------------------
# Support correction and the rejected polish


def parsed(kind, y, D, **params):
    names = ("lam", "weights", "nonneg", "l2", "groups", "l1_ratio", "sigma")
    return ref._parse(kind, y, D, **{name: params.get(name) for name in names})


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("lasso", {"lam": 5.0}),
        ("group_lasso", {"lam": 5.0, "groups": [5, 5, 5]}),
        ("sparse_group_lasso", {"lam": 5.0, "groups": [5, 5, 5], "l1_ratio": 0.5}),
    ],
)
@pytest.mark.parametrize("start", ["zero", "random"])
def test_polish_corrects_bad_support(kind, params, start):
    X, y = regression_data()
    expected = reference_solve(kind, y, X, **params).z
    z0 = np.zeros(15) if start == "zero" else np.random.default_rng(1).standard_normal(15)
    z, residual, message, rounds = ref._polish_penalised(parsed(kind, y, X, **params), z0, 1e-10)
    assert message == ""
    assert rounds > 0
    assert_allclose(z, expected, rtol=0, atol=1e-12)


def test_duplicate_atoms_not_polished():
    X, y = regression_data()
    D = np.c_[X[:, :5], X[:, :1]]
    result = reference_solve("lasso", y, D, lam=2.0)
    assert not result.polished
    assert "rank deficient" in result.message
    assert_allclose(result.z, result.clarabel_z, rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------
# Batches


def test_batch_shared_dictionary():
    X, y = regression_data()
    Y = np.stack([y, 2 * y, -y])
    lam = np.array([5.0, 3.0, 8.0])
    batch = reference_batch("lasso", Y, X, lam=lam)
    expected = np.stack([reference_solve("lasso", Y[b], X, lam=lam[b]).z for b in range(3)])
    assert_allclose(batch.z, expected, rtol=0, atol=0)


def test_batch_per_sample_dictionary():
    X, y = regression_data()
    Ds = np.stack([X, X[:, ::-1], 0.5 * X])
    Y = np.stack([y, y, y])
    batch = reference_batch("basis_pursuit_denoising", Y, Ds, sigma=1.0)
    single = [reference_solve("basis_pursuit_denoising", y, D, sigma=1.0) for D in Ds]
    expected = np.stack([result.z for result in single])
    assert_allclose(batch.z, expected, rtol=0, atol=0)
    assert batch.polished.all()


def test_batch_wrong_rows_raises():
    X, y = regression_data()
    with pytest.raises(ValueError, match="lam given per sample must have 2 rows"):
        reference_batch("lasso", np.stack([y, y]), X, lam=[1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------
# Input checks


@pytest.mark.parametrize(
    ("kind", "params", "match"),
    [
        ("ridge", {}, "kind must be one of"),
        ("lasso", {}, "lasso requires lam"),
        ("lasso", {"lam": 1.0, "sigma": 0.5}, "lasso does not take sigma"),
        ("lasso", {"lam": -1.0}, r"lam must be a finite number in \[0, inf\)"),
        ("lasso", {"lam": 1.0, "weights": np.ones(3)}, r"weights must have shape \(15,\)"),
        ("lasso", {"lam": 1.0, "weights": -np.ones(15)}, "weights must be >= 0"),
        ("group_lasso", {"lam": 1.0, "groups": [[0, 1], [1, 2]]}, "repeated atoms: \\[1\\]"),
        ("group_lasso", {"lam": 1.0, "groups": [4, 4]}, "sum to k = 15"),
        (
            "sparse_group_lasso",
            {"lam": 1.0, "groups": [15], "l1_ratio": 1.5},
            r"l1_ratio must be a finite number in \[0, 1\]",
        ),
    ],
)
def test_invalid_parameters_raise(kind, params, match):
    X, y = regression_data()
    with pytest.raises(ValueError, match=match):
        reference_solve(kind, y, X, **params)


def test_shape_mismatch_raises():
    X, y = regression_data()
    with pytest.raises(ValueError, match="Atoms are the columns of D"):
        reference_solve("lasso", y, X.T, lam=1.0)


def test_nan_raises():
    X, y = regression_data()
    y = y.copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"y contains non-finite values: y\[3\]"):
        reference_solve("lasso", y, X, lam=1.0)
