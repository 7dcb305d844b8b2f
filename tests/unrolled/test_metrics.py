import math

import pytest
import torch

from implicit_basis.synthetic import chen2018_samples, gaussian_dictionary
from implicit_basis.unrolled import LISTACP, nmse_db, nmse_per_layer


def test_nmse_zero_estimate_is_zero_db():
    z = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    assert nmse_db(torch.zeros_like(z), z) == pytest.approx(0.0, abs=1e-6)


def test_nmse_scaled_estimate():
    z = torch.tensor([[1.0, -2.0], [0.0, 3.0]], dtype=torch.float64)
    # ||0.9 z - z||^2 / ||z||^2 = 0.01, i.e. -20 dB.
    assert nmse_db(0.9 * z, z) == pytest.approx(-20.0)


def test_nmse_sums_over_batch():
    z = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    z_hat = torch.tensor([[0.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    assert nmse_db(z_hat, z) == pytest.approx(10.0 * math.log10(1.0 / 10.0))


def test_nmse_exact_is_minus_inf():
    z = torch.ones(2, 3)
    assert nmse_db(z, z) == -math.inf


def test_nmse_rejects_shape_mismatch():
    with pytest.raises(ValueError, match=r"z_hat and z_true must have the same shape, got \(2, 3\) and \(2, 4\)"):
        nmse_db(torch.ones(2, 3), torch.ones(2, 4))


def test_nmse_rejects_zero_reference():
    with pytest.raises(ValueError, match=r"z_true is zero everywhere, so the NMSE is undefined"):
        nmse_db(torch.ones(2, 3), torch.zeros(2, 3))


def test_nmse_per_layer_matches_manual():
    D = gaussian_dictionary(10, 20, generator=0, dtype=torch.float64)
    y, z = chen2018_samples(D, 30, p=0.2, generator=1)
    model = LISTACP(D, 3, lam=0.1)
    expected = [nmse_db(estimate, z) for estimate in model(y, return_all=True)]
    assert nmse_per_layer(model, y, z) == pytest.approx(expected)
