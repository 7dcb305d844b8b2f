"""Data and right values of the published cases, shared by the backend tests.

Each builder draws its data as the case states it: ``sn`` is
``rng.standard_normal`` with ``rng = np.random.default_rng(seed)``, drawn in
the order listed, float64. The printed right values have six decimals, so
they are compared to ``PRINTED``. The tight bars (codes to 1e-8, gradients
to 1e-6 relative) are checked against closed forms on the support, the
reference solver (``tests.reference``) or finite differences.
"""

from __future__ import annotations

import numpy as np
import torch

F64 = torch.float64

CODE_ATOL = 1e-8
GRAD_RTOL = 1e-6
PRINTED = 1e-6


def t(array, requires_grad: bool = False, dtype=F64) -> torch.Tensor:
    """Return a new tensor holding ``array``."""
    return torch.tensor(np.asarray(array), dtype=dtype, requires_grad=requires_grad)


def sparse(k: int, entries: dict) -> np.ndarray:
    """Return a length-``k`` vector with the given nonzero entries."""
    z = np.zeros(k)
    for j, value in entries.items():
        z[j] = value
    return z


def lasso_closed_form(y, D, z, lam):
    """Return (u, dL/dy, dL/dlam, dL/dD) for L = sum(z) from the support of ``z``.

    On the support S with signs s the code is z_S = G^-1 (D_S^T y - lam s),
    G = D_S^T D_S. With u = G^-1 1: dL/dy = D_S u, dL/dlam = -u^T s and
    dL/dD_S = r u^T - (D_S u) z_S^T with r = y - D z.
    """
    S = np.flatnonzero(z)
    D_S = D[:, S]
    u = np.linalg.solve(D_S.T @ D_S, np.ones(len(S)))
    r = y - D @ z
    grad_D = np.zeros_like(D)
    grad_D[:, S] = np.outer(r, u) - np.outer(D_S @ u, z[S])
    return u, D_S @ u, -u @ np.sign(z[S]), grad_D


def c01():
    """Coherent Gaussian frame, 40 x 30: (y, D, lam)."""
    points = np.linspace(0, 1, 40)
    centres = np.linspace(0, 1, 30)
    D = np.exp(-((points[:, None] - centres[None, :]) ** 2) / (2 * 0.06**2))
    D /= np.linalg.norm(D, axis=0)
    rng = np.random.default_rng(1)
    y = D @ sparse(30, {5: 1.0, 14: -0.7, 22: 0.8}) + 0.01 * rng.standard_normal(40)
    lam = 0.05 * np.abs(D.T @ y).max()
    return y, D, lam


C01_SUPPORT = [5, 14, 22, 23]
C01_VALUES = [0.955275, -0.653652, 0.753698, 0.003274]
C01_GRAD_Y_HEAD = [0.007898, 0.024613, 0.063902, 0.138214, 0.249042]


def c03():
    """Hypergradient data: (Xtr, ytr, Xval, yval)."""
    rng = np.random.default_rng(3)
    Xtr, Xval = rng.standard_normal((40, 60)), rng.standard_normal((20, 60))
    beta = sparse(60, {3: 2.0, 17: -1.5, 29: 1.0, 41: 0.8, 55: -0.5})
    ytr = Xtr @ beta + 0.1 * rng.standard_normal(40)
    yval = Xval @ beta + 0.1 * rng.standard_normal(20)
    return Xtr, ytr, Xval, yval


def c04():
    """Lasso at and around lam_max: (y, D, lam_max)."""
    rng = np.random.default_rng(4)
    D = rng.standard_normal((8, 12))
    y = rng.standard_normal(8)
    return y, D, float(np.abs(D.T @ y).max())


C05_Y = np.array([2.0, -1.5, 0.5, 0.25, 0.1, -0.3, 1.0, -0.5])
C05_Z = np.array([1.5, -1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0])
# dL/dy for L = sum(z) with D = I: 1 on the support, 0 elsewhere and at the ties 2 and 7.
C05_GRAD = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def c05_orthogonal():
    """The orthogonal variant: (Q y, Q)."""
    Q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((8, 8)))
    return Q @ C05_Y, Q


def c07():
    """Overcomplete lasso, 30 x 300: (y, D, lam)."""
    rng = np.random.default_rng(7)
    D = rng.standard_normal((30, 300)) / np.sqrt(30)
    y = D @ sparse(300, {10: 1.0, 70: -1.0, 150: 0.7, 260: -0.5}) + 0.01 * rng.standard_normal(30)
    lam = np.abs(D.T @ y).max() / 5
    return y, D, lam


C07_SUPPORT = [10, 70, 150, 260]
C07_VALUES = [0.831347, -0.719797, 0.570098, -0.233117]
C07_DZ_DLAM = [-0.705130, 1.159741, -0.495328, 1.019089]


def c08():
    """Basis pursuit with a rank-4 dictionary: (D, y_ok, y_bad)."""
    rng = np.random.default_rng(8)
    D = rng.standard_normal((6, 4)) @ rng.standard_normal((4, 10))
    y_bad = rng.standard_normal(6)
    y_ok = D @ sparse(10, {1: 1.0, 6: -2.0})
    return D, y_ok, y_bad


C08_CODE = [0, 0, 0, 0.060968, -0.281019, 0, -1.469891, 0, 0, -0.210556]
C08_GRAD = [-0.203911, 0.100739, 0.106664, -0.060296, -0.139482, -0.273142]


def c11():
    """Shared D with per-sample y and lam: (D, Y, lam)."""
    rng = np.random.default_rng(11)
    D = rng.standard_normal((6, 10))
    Y = rng.standard_normal((5, 6))
    lam = np.array([0.05, 0.1, 0.2, 0.4, 0.8]) * np.abs(Y @ D).max(axis=1)
    return D, Y, lam


C11_ROWS = [
    {0: 0.369117, 1: -0.112912, 4: -0.181064, 5: 0.398400, 6: -0.146772, 8: 0.248514},
    {2: 0.428473, 5: -0.251805, 6: -0.181558},
    {1: -0.275130, 6: 0.612973, 8: -0.442174, 9: -0.045005},
    {4: 0.292393, 6: 0.304450},
    {1: 0.161567},
]
C11_GRAD_LAM = [-0.333961, 0.188202, 0.764442, -0.255905, -0.202316]
C11_GRAD_D_ROW0 = [-0.047161, 0.154406, -0.189756, 0, 0.049892, 0.081006, 0.253157, 0, -0.053379, 0.032145]
C11_GRAD_Y_ROW0 = [0.104181, 0.470086, -0.644160, -0.150774, -0.215683, -0.065203]


def c12():
    """float32 data: (D, y, lam) as float32 arrays."""
    rng = np.random.default_rng(12)
    D = rng.standard_normal((10, 20)).astype(np.float32)
    y = rng.standard_normal(10).astype(np.float32)
    lam = np.float32(0.2 * np.abs(D.astype(np.float64).T @ y.astype(np.float64)).max())
    return D, y, lam


C12_SUPPORT = [1, 9, 12, 14, 15, 17, 18]
C12_VALUES = [0.065765, 0.059540, 0.374046, 0.221034, -0.118433, 0.167539, 0.271591]


def c14():
    """Tall and wide least-squares limits: (y, D, y2, D2, x_true)."""
    rng = np.random.default_rng(14)
    D = rng.standard_normal((30, 10))
    y = rng.standard_normal(30)
    D2 = rng.standard_normal((5, 10))
    x_true = sparse(10, {2: 1.0, 7: -1.0})
    return y, D, D2 @ x_true, D2, x_true


C14_LEAST_SQUARES = [
    -0.049965, 0.118591, 0.098812, -0.135335, 0.242093, -0.187359, -0.538094, 0.178277, -0.202935, -0.065988,
]
C14_DL_DLAM = 0.134248
C14_GRAD_Y_HEAD = [-0.140422, 0.038854, 0.128381, 0.085291, 0.235542]
C14_MIN_NORM = [0.2501, -0.0142, 0.6151, -0.2501, 0.3482, 0.3391, 0.2682, -0.7136, 0.0657, -0.0582]


def c15():
    """(D, y, lam) with lam = 0.3 lam_max."""
    rng = np.random.default_rng(15)
    D = rng.standard_normal((8, 12))
    y = rng.standard_normal(8)
    return D, y, 0.3 * np.abs(D.T @ y).max()


C15_ZERO_ATOM = {4: -0.067273, 9: 0.233470, 11: -0.389397}


def c16():
    """Zero signal: (y, D)."""
    rng = np.random.default_rng(16)
    return np.zeros(5), rng.standard_normal((5, 8))


def c18():
    """Group lasso data: (D, y)."""
    rng = np.random.default_rng(18)
    return rng.standard_normal((10, 7)), rng.standard_normal(10)


C18_GROUPS = [[0, 1], [2, 3, 4], [5, 6]]
C18_UNIT = [0.048947, 0.087262, 0.097574, 0.028148, 0.003106, 0.253834, 0.158923]
C18_ZERO_WEIGHT = [0.003350, 0.026953, 0.234158, 0.190167, 0.055937, 0.157223, 0.081366]
C18_INF_WEIGHT = [0.080117, 0.150440, 0, 0, 0, 0.230023, 0.093894]


def gaussian_dictionary(centres, width, points):
    """Return unit-norm Gaussian atoms exp(-(t - c)^2 / (2 w^2)) as columns."""
    D = torch.exp(-((points[:, None] - centres[None, :]) ** 2) / (2 * width**2))
    return D / D.norm(dim=0)


def c19():
    """Parametric frame data: (points, c0, x_true, y) as tensors."""
    points = torch.linspace(0, 1, 40, dtype=F64)
    c0 = torch.linspace(0.05, 0.95, 12, dtype=F64)
    rng = np.random.default_rng(19)
    x_true = t(sparse(12, {2: 1.0, 6: -0.6, 9: 0.8}))
    y = gaussian_dictionary(c0, 0.06, points) @ x_true + 0.01 * t(rng.standard_normal(40))
    return points, c0, x_true, y


C19_CODE = [0, 0.070405, 0.867220, 0.078511, 0, -0.027625, -0.526768, 0, 0, 0.714000, 0.027708, 0]
C19_DL_DC = [0, 0.260465, -0.099686, -0.264329, 0, 0.031056, 0.450538, 0, 0, -0.561821, -0.054010, 0]


def c21(B: int | None = None):
    """Device case: (y, D, lam) with lam = 0.3 lam_max; y is (B, 8) when B is given."""
    rng = np.random.default_rng(21)
    D = rng.standard_normal((8, 12))
    y = rng.standard_normal(8)
    if B is not None:
        y = np.concatenate([y[None], rng.standard_normal((B - 1, 8))])
    lam = 0.3 * np.abs(np.atleast_2d(y) @ D).max()
    return y, D, lam


def c25():
    """scikit-learn conventions: (X, y)."""
    rng = np.random.default_rng(25)
    X = rng.standard_normal((50, 20))
    y = X @ sparse(20, {1: 2.0, 7: -1.0, 12: 0.5}) + 0.3 * rng.standard_normal(50)
    return X, y


C25_CODE = {1: 1.955259, 4: 0.003552, 7: -0.919814, 12: 0.435588, 14: -0.027436}
