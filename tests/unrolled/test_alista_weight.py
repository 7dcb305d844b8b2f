import numpy as np
import pytest
import torch

from implicit_basis.synthetic import gaussian_dictionary
from implicit_basis.unrolled import analytic_weight


def lstsq_weight(D: np.ndarray) -> np.ndarray:
    # Definition, atom by atom: solve (D D^T) u = d_i in the least-squares
    # sense (minimum-norm when singular), then scale so that u^T d_i = 1.
    G = D @ D.T
    columns = []
    for i in range(D.shape[1]):
        u = np.linalg.lstsq(G, D[:, i], rcond=None)[0]
        columns.append(u / (D[:, i] @ u))
    return np.stack(columns, axis=1)


def coherence_descent(D: np.ndarray, steps: int) -> np.ndarray:
    # Projected gradient on ||W^T D - I||_F^2 / 2 subject to diag(W^T D) = 1,
    # the iterative solver of the published ALISTA weight (unit-norm atoms).
    n = D.shape[1]
    W = D.copy()
    eta = 1.0 / np.linalg.norm(D, 2) ** 2
    for _ in range(steps):
        W = W - eta * D @ (D.T @ W - np.eye(n))
        W = W + (1.0 - np.sum(D * W, axis=0)) * D
    return W


@pytest.fixture(scope="module")
def D():
    return gaussian_dictionary(10, 20, generator=0, dtype=torch.float64)


def test_unit_diagonal(D):
    W = analytic_weight(D)
    torch.testing.assert_close(torch.diagonal(W.T @ D), torch.ones(20, dtype=torch.float64))


def test_matches_lstsq(D):
    expected = torch.from_numpy(lstsq_weight(D.numpy()))
    torch.testing.assert_close(analytic_weight(D), expected)


def test_minimises_frobenius_coherence(D):
    expected = torch.from_numpy(coherence_descent(D.numpy(), 3000))
    torch.testing.assert_close(analytic_weight(D), expected, rtol=1e-6, atol=1e-8)


def test_rank_deficient_matches_lstsq():
    # Rows 0 and 1 are equal, so D D^T is singular.
    D = gaussian_dictionary(6, 12, generator=1, dtype=torch.float64)
    D[1] = D[0]
    W = analytic_weight(D)
    expected = torch.from_numpy(lstsq_weight(D.numpy()))
    torch.testing.assert_close(W, expected)


def test_rank_deficient_unit_diagonal():
    D = gaussian_dictionary(6, 12, generator=1, dtype=torch.float64)
    D[1] = D[0]
    W = analytic_weight(D)
    torch.testing.assert_close(torch.diagonal(W.T @ D), torch.ones(12, dtype=torch.float64))


def test_float32_dictionary(D):
    W = analytic_weight(D.float())
    assert W.dtype == torch.float32
    torch.testing.assert_close(W, analytic_weight(D).float())


def test_rejects_zero_column(D):
    D = D.clone()
    D[:, 3] = 0.0
    with pytest.raises(ValueError, match=r"D has zero columns \[3\]"):
        analytic_weight(D)


def test_rejects_vector():
    with pytest.raises(ValueError, match=r"D must have shape \(m, n\) with atoms as columns, got shape \(5,\)"):
        analytic_weight(torch.ones(5))
