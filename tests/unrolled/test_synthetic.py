import math

import pytest
import torch

from implicit_basis.synthetic import (
    bernoulli_gaussian_codes,
    chen2018_sampler,
    chen2018_samples,
    gaussian_dictionary,
)


def test_dictionary_shape_and_dtype():
    D = gaussian_dictionary(7, 11, generator=0, dtype=torch.float64)
    assert D.shape == (7, 11)
    assert D.dtype == torch.float64


def test_dictionary_default_dtype():
    assert gaussian_dictionary(3, 4, generator=0).dtype == torch.get_default_dtype()


def test_dictionary_unit_columns():
    D = gaussian_dictionary(7, 11, generator=0, dtype=torch.float64)
    torch.testing.assert_close(D.norm(dim=0), torch.ones(11, dtype=torch.float64))


def test_dictionary_seed_equals_generator():
    from_seed = gaussian_dictionary(5, 6, generator=3)
    from_generator = gaussian_dictionary(5, 6, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(from_seed, from_generator, rtol=0, atol=0)


def test_dictionary_seeds_differ():
    assert not torch.equal(gaussian_dictionary(5, 6, generator=3), gaussian_dictionary(5, 6, generator=4))


def test_dictionary_columns_are_uniform_directions():
    # A normalised Gaussian column is uniform on the sphere, where
    # E[D_ij^4] = 3 / (m (m + 2)), 0.125 for m = 4.
    D = gaussian_dictionary(4, 20000, generator=0, dtype=torch.float64)
    assert float(D.pow(4).mean()) == pytest.approx(0.125, rel=0.03)


def test_codes_sparsity():
    x = bernoulli_gaussian_codes(400, 250, 0.1, generator=0, dtype=torch.float64)
    fraction = float((x != 0).double().mean())
    # 100000 Bernoulli(0.1) draws: standard deviation of the mean is about 0.001.
    assert fraction == pytest.approx(0.1, abs=0.004)


def test_codes_nonzero_values_standard_normal():
    x = bernoulli_gaussian_codes(400, 250, 0.5, generator=0, dtype=torch.float64)
    values = x[x != 0]
    assert float(values.mean()) == pytest.approx(0.0, abs=0.02)
    assert float(values.std()) == pytest.approx(1.0, abs=0.02)


def test_codes_extreme_probabilities():
    assert bool((bernoulli_gaussian_codes(3, 5, 0.0, generator=0) == 0).all())
    assert bool((bernoulli_gaussian_codes(3, 5, 1.0, generator=0) != 0).all())


def test_noiseless_samples_are_exact():
    D = gaussian_dictionary(8, 16, generator=0, dtype=torch.float64)
    y, x = chen2018_samples(D, 10, generator=1)
    torch.testing.assert_close(y, x @ D.T, rtol=0, atol=0)


def test_noise_is_per_sample():
    D = gaussian_dictionary(8, 16, generator=0, dtype=torch.float64)
    y, x = chen2018_samples(D, 10, p=0.3, snr_db=20.0, generator=5)

    # Redraw the same stream: codes first, then the noise.
    generator = torch.Generator().manual_seed(5)
    codes = bernoulli_gaussian_codes(10, 16, 0.3, generator=generator, dtype=torch.float64)
    noise = torch.randn(10, 8, generator=generator, dtype=torch.float64)
    clean = codes @ D.T
    std = clean.std(dim=1, correction=0, keepdim=True) * 10.0 ** (-20.0 / 20.0)

    torch.testing.assert_close(x, codes, rtol=0, atol=0)
    torch.testing.assert_close(y, clean + std * noise)


def test_noise_level_matches_snr():
    D = gaussian_dictionary(50, 100, generator=0, dtype=torch.float64)
    y, x = chen2018_samples(D, 4000, p=0.1, snr_db=30.0, generator=1)
    clean = x @ D.T
    keep = clean.std(dim=1) > 0
    noise = y - clean
    ratio = noise[keep].var(dim=1, correction=0) / clean[keep].var(dim=1, correction=0)
    # Mean of 4000 scaled chi-square(50)/50 ratios: about 0.3% relative spread.
    assert float(ratio.mean()) == pytest.approx(10.0 ** (-3.0), rel=0.03)


def test_samples_follow_dictionary_dtype():
    D = gaussian_dictionary(8, 16, generator=0, dtype=torch.float32)
    y, x = chen2018_samples(D, 4, snr_db=40.0, generator=1)
    assert y.dtype == torch.float32
    assert x.dtype == torch.float32


def test_samples_shapes():
    D = gaussian_dictionary(8, 16, generator=0)
    y, x = chen2018_samples(D, 4, generator=1)
    assert y.shape == (4, 8)
    assert x.shape == (4, 16)


def test_sampler_draws_fresh_batches():
    D = gaussian_dictionary(8, 16, generator=0)
    sample = chen2018_sampler(D, 4, generator=2)
    first, _ = sample()
    second, _ = sample()
    assert not torch.equal(first, second)


def test_sampler_reproducible():
    D = gaussian_dictionary(8, 16, generator=0)
    a = chen2018_sampler(D, 4, snr_db=30.0, generator=2)
    b = chen2018_sampler(D, 4, snr_db=30.0, generator=2)
    a()
    b()
    torch.testing.assert_close(a()[0], b()[0], rtol=0, atol=0)


def test_rejects_probability_above_one():
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        bernoulli_gaussian_codes(2, 3, 1.5, generator=0)


def test_rejects_nan_snr():
    D = gaussian_dictionary(4, 5, generator=0)
    with pytest.raises(ValueError, match=r"snr_db must be a finite number or math.inf, got nan"):
        chen2018_samples(D, 2, snr_db=math.nan, generator=0)


def test_rejects_generator_type():
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator, an int seed or None, got str"):
        gaussian_dictionary(3, 4, generator="seed")


def test_rejects_half_dtype():
    with pytest.raises(TypeError, match=r"dtype must be torch.float32 or torch.float64, got torch.float16"):
        gaussian_dictionary(3, 4, generator=0, dtype=torch.float16)


def test_rejects_zero_size():
    with pytest.raises(ValueError, match=r"m must be an int >= 1, got 0"):
        gaussian_dictionary(0, 4, generator=0)


def test_rejects_vector_dictionary():
    with pytest.raises(ValueError, match=r"D must be a tensor of shape \(m, n\), got \(4,\)"):
        chen2018_samples(torch.ones(4), 2, generator=0)
