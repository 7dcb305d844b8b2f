import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from implicit_basis.synthetic import chen2018_samples, gaussian_dictionary
from implicit_basis.unrolled import fista, ista, lipschitz_constant
from implicit_basis.unrolled.shrinkage import soft_threshold


@pytest.fixture(scope="module")
def problem():
    D = gaussian_dictionary(20, 40, generator=0, dtype=torch.float64)
    y, _ = chen2018_samples(D, 3, p=0.15, snr_db=30.0, generator=1)
    return D, y


def sklearn_lasso(D: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    m = D.shape[0]
    # scikit-learn scales the squared error by 1/(2 m), so alpha = lam / m.
    codes = []
    for signal in y:
        model = Lasso(alpha=lam / m, fit_intercept=False, tol=1e-14, max_iter=1_000_000)
        model.fit(D.numpy(), signal.numpy())
        codes.append(model.coef_)
    return torch.tensor(np.array(codes), dtype=torch.float64)


@pytest.mark.parametrize("method", [ista, fista])
def test_converges_to_sklearn_lasso(problem, method):
    D, y = problem
    reference = sklearn_lasso(D, y, 0.1)
    z = method(y, D, 0.1, 1000)
    torch.testing.assert_close(z, reference, rtol=0, atol=1e-9)


def test_fista_beats_ista_early(problem):
    D, y = problem
    reference = sklearn_lasso(D, y, 0.1)
    error_ista = (ista(y, D, 0.1, 50) - reference).norm()
    error_fista = (fista(y, D, 0.1, 50) - reference).norm()
    assert error_fista < error_ista


def test_ista_first_iterate_closed_form(problem):
    D, y = problem
    L = float(np.linalg.norm(D.numpy(), 2) ** 2)
    expected = soft_threshold(y @ D / L, 0.1 / L)
    torch.testing.assert_close(ista(y, D, 0.1, 1), expected)


def numpy_fista(D: np.ndarray, y: np.ndarray, lam: float, n_iter: int) -> np.ndarray:
    # Beck and Teboulle's FISTA with constant step 1/L, one signal at a time.
    L = np.linalg.norm(D, 2) ** 2
    z_previous = np.zeros(D.shape[1])
    v = z_previous.copy()
    t = 1.0
    for _ in range(n_iter):
        u = v - D.T @ (D @ v - y) / L
        z = np.sign(u) * np.maximum(np.abs(u) - lam / L, 0.0)
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        v = z + (t - 1.0) / t_next * (z - z_previous)
        z_previous, t = z, t_next
    return z_previous


def test_fista_matches_numpy_reference(problem):
    D, y = problem
    expected = np.stack([numpy_fista(D.numpy(), signal.numpy(), 0.1, 12) for signal in y])
    torch.testing.assert_close(fista(y, D, 0.1, 12), torch.from_numpy(expected))


def test_fista_first_iterate_equals_ista(problem):
    D, y = problem
    torch.testing.assert_close(fista(y, D, 0.1, 1), ista(y, D, 0.1, 1))


def test_lipschitz_constant_matches_numpy(problem):
    D, _ = problem
    expected = torch.tensor(np.linalg.norm(D.numpy(), 2) ** 2, dtype=torch.float64)
    torch.testing.assert_close(lipschitz_constant(D), expected)


@pytest.mark.parametrize("method", [ista, fista])
def test_per_sample_lam(problem, method):
    D, y = problem
    lam = torch.tensor([0.05, 0.1, 0.3], dtype=torch.float64)
    z = method(y, D, lam, 30)
    for b in range(3):
        torch.testing.assert_close(z[b], method(y[b], D, float(lam[b]), 30))


@pytest.mark.parametrize("method", [ista, fista])
def test_per_sample_dictionary(problem, method):
    D, y = problem
    stack = torch.stack([D, 2.0 * D, D.flip(1)])
    z = method(y, stack, 0.1, 30)
    for b in range(3):
        torch.testing.assert_close(z[b], method(y[b : b + 1], stack[b], 0.1, 30)[0])


@pytest.mark.parametrize("method", [ista, fista])
def test_single_signal_shape(problem, method):
    D, y = problem
    assert method(y[0], D, 0.1, 5).shape == (40,)


@pytest.mark.parametrize("method", [ista, fista])
def test_return_all(problem, method):
    D, y = problem
    iterates = method(y, D, 0.1, 7, return_all=True)
    assert len(iterates) == 7
    torch.testing.assert_close(iterates[-1], method(y, D, 0.1, 7))
    torch.testing.assert_close(iterates[2], method(y, D, 0.1, 3))


@pytest.mark.parametrize("method", [ista, fista])
def test_float32_in_float32_out(problem, method):
    D, y = problem
    assert method(y.float(), D.float(), 0.1, 5).dtype == torch.float32


@pytest.mark.parametrize("method", [ista, fista])
def test_given_lipschitz_matches(problem, method):
    D, y = problem
    L = lipschitz_constant(D)
    torch.testing.assert_close(method(y, D, 0.1, 9, lipschitz=float(L)), method(y, D, 0.1, 9))


@pytest.mark.parametrize("method", [ista, fista])
def test_gradcheck(method):
    D = gaussian_dictionary(4, 6, generator=5, dtype=torch.float64).requires_grad_(True)
    y = torch.randn(2, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    y.requires_grad_(True)
    lam = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: method(a, b, c, 5), (y, D, lam))


def test_rejects_dtype_mismatch(problem):
    D, y = problem
    with pytest.raises(TypeError, match=r"y has dtype torch.float32 but the dictionary D has dtype torch.float64"):
        ista(y.float(), D, 0.1, 3)


def test_rejects_device_mismatch(problem):
    D, y = problem
    with pytest.raises(ValueError, match=r"y is on meta but the dictionary D is on cpu"):
        ista(y.to("meta"), D, 0.1, 3)


def test_rejects_wrong_m(problem):
    D, y = problem
    with pytest.raises(ValueError, match=r"y must have shape \(B, 20\) or \(20,\) to match D of shape \(20, 40\), got shape \(3, 19\)"):
        ista(y[:, :19], D, 0.1, 3)


def test_rejects_negative_lam(problem):
    D, y = problem
    with pytest.raises(ValueError, match=r"lam must be finite and >= 0, got -0.1"):
        ista(y, D, -0.1, 3)


def test_rejects_negative_lam_tensor(problem):
    D, y = problem
    lam = torch.tensor([0.1, -0.2, 0.1], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"lam must be finite and >= 0"):
        fista(y, D, lam, 3)


def test_rejects_lam_wrong_batch(problem):
    D, y = problem
    lam = torch.tensor([0.1, 0.2], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"lam must be a scalar or a tensor of shape \(3,\)"):
        ista(y, D, lam, 3)


def test_rejects_zero_iterations(problem):
    D, y = problem
    with pytest.raises(ValueError, match=r"n_iter must be an int >= 1, got 0"):
        ista(y, D, 0.1, 0)


def test_rejects_nan_signal(problem):
    D, y = problem
    y = y.clone()
    y[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"y contains NaN or inf"):
        fista(y, D, 0.1, 3)


def test_rejects_batch_mismatch_per_sample_dictionary(problem):
    D, y = problem
    with pytest.raises(ValueError, match=r"y has batch size 3 but the per-sample dictionary D has batch size 2"):
        ista(y, torch.stack([D, D]), 0.1, 3)


def test_rejects_integer_dictionary(problem):
    _, y = problem
    with pytest.raises(TypeError, match=r"D must have dtype float32 or float64, got torch.int64"):
        ista(y, torch.ones(20, 40, dtype=torch.int64), 0.1, 3)
