"""The problem suite: every shipped file, the instances it builds, and the errors of bad files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from implicit_basis import suite

SHIPPED = [
    "bpdn_gaussian",
    "chen2018",
    "ecg_gabor",
    "gaussian_bumps",
    "gaussian_lasso_128x512",
    "gaussian_lasso_256x1024",
    "gaussian_lasso_64x256",
    "union_group_lasso",
]

TINY = """
description = "tiny lasso"

[dictionary]
kind = "gaussian"
m = 6
k = 10
seed = 3

[codes]
kind = "bernoulli_gaussian"
p = 0.3

[noise]
snr_db = 20

[problem]
kind = "lasso"
lam = 0.2

[samples]
test = 5
seed = 1
train = 7
train_seed = 2
"""


def write(tmp_path, text, name="bad"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def edit(text, old, new):
    assert old in text, f"test setup: {old!r} not in the template"
    return text.replace(old, new)


# -----------------------------------------------------------------------------
# The shipped suite


def test_list_problems_shipped():
    assert set(SHIPPED) <= set(suite.list_problems())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_builds(name):
    spec = suite.load(name)
    for variant in spec.variants():
        inst = suite.instance(variant, samples=2)
        assert inst.y.shape[0] == 2
        assert inst.D.shape[-2] == inst.y.shape[1]
        assert bool(torch.isfinite(inst.y).all())
        assert inst.y.dtype == suite.DTYPES[spec.dtype]


def test_chen2018_variants():
    names = [variant.name for variant in suite.load("chen2018").variants()]
    assert names == ["chen2018@snr=inf", "chen2018@snr=40", "chen2018@snr=30", "chen2018@snr=20"]


def test_chen2018_generator():
    inst = suite.instance("chen2018@snr=20", dtype=torch.float64)
    assert inst.D.shape == (250, 500)
    assert inst.y.shape == (1000, 250)
    torch.testing.assert_close(inst.D.norm(dim=0), torch.ones(500, dtype=torch.float64))
    density = float((inst.z_true != 0).double().mean())
    assert abs(density - 0.1) < 0.005
    clean = inst.z_true @ inst.D.T
    ratio = ((inst.y - clean).norm(dim=1) / clean.std(dim=1, correction=0) / math.sqrt(250)).mean()
    assert abs(float(ratio) - 10 ** (-20 / 20)) < 0.01 * 10 ** (-20 / 20) * 3


def test_chen2018_noiseless_variant():
    inst = suite.instance("chen2018@snr=inf", samples=3, dtype=torch.float64)
    torch.testing.assert_close(inst.y, inst.z_true @ inst.D.T)
    assert bool((inst.noise_std == 0).all())


def test_lam_fraction_of_lam_max():
    inst = suite.instance("gaussian_lasso_64x256", samples=4)
    expected = 0.1 * np.abs(inst.y.numpy() @ inst.D.numpy()).max(axis=1)
    np.testing.assert_allclose(inst.penalties["lam"].numpy(), expected, rtol=1e-12)


def test_bpdn_sigma_from_noise():
    inst = suite.instance("bpdn_gaussian", samples=3)
    clean = inst.z_true @ inst.D.T
    std = clean.std(dim=1, correction=0) * 10 ** (-30 / 20)
    torch.testing.assert_close(inst.penalties["sigma"], std * math.sqrt(100))


def test_bumps_dictionary():
    inst = suite.instance("gaussian_bumps", samples=1)
    t = np.linspace(0.0, 1.0, 40)
    centres = np.linspace(0.0, 1.0, 30)
    atoms = np.exp(-0.5 * ((t[:, None] - centres[None, :]) / 0.06) ** 2)
    atoms /= np.linalg.norm(atoms, axis=0)
    np.testing.assert_allclose(inst.D.numpy(), atoms, atol=1e-12)


def test_union_groups_and_codes():
    inst = suite.instance("union_group_lasso", samples=16)
    assert inst.groups == [3, 3, 3, 3, 3, 2, 3, 3, 3, 3, 1]
    assert inst.D.shape == (48, 30)
    blocks = torch.split(inst.z_true, inst.groups, dim=1)
    for block in blocks:
        active = block != 0
        # A group is entirely active or entirely zero.
        assert bool((active.all(dim=1) | ~active.any(dim=1)).all())
    t = inst.t.numpy()
    assert np.all(np.diff(t) > 0)


def test_ecg_record_observed():
    import pywt

    inst = suite.instance("ecg_gabor")
    record = pywt.data.ecg().astype(np.float64)
    standardized = (record - record.mean()) / record.std()
    assert inst.signal.shape == (8, 1024)
    assert inst.observed.shape == (8, 1024)
    counts = inst.observed.sum(dim=1)
    assert bool((counts == round(0.3 * 1024)).all())
    np.testing.assert_allclose(inst.signal[0].numpy(), standardized, atol=1e-12)
    rows = np.nonzero(inst.observed[0].numpy())[0]
    np.testing.assert_allclose(inst.y[0].numpy(), standardized[rows], atol=1e-12)
    np.testing.assert_allclose(inst.t[0].numpy(), np.linspace(0.0, 1.0, 1024)[rows], atol=1e-15)
    assert inst.z_true is None
    assert inst.D.shape == (8, 307, 384)


def test_ecg_masks_differ():
    inst = suite.instance("ecg_gabor", samples=2)
    assert not torch.equal(inst.observed[0], inst.observed[1])


# -----------------------------------------------------------------------------
# Instances


def test_instance_reproducible(tmp_path):
    path = write(tmp_path, TINY, "tiny")
    first = suite.instance(path)
    second = suite.instance(path)
    torch.testing.assert_close(first.y, second.y)
    torch.testing.assert_close(first.z_true, second.z_true)


def test_instance_head_prefix(tmp_path):
    path = write(tmp_path, TINY, "tiny")
    whole = suite.instance(path)
    part = suite.instance(path, samples=2)
    torch.testing.assert_close(part.y, whole.y[:2])
    torch.testing.assert_close(part.penalties["lam"], whole.penalties["lam"][:2])
    torch.testing.assert_close(part.problem.lam, whole.penalties["lam"][:2])


def test_instance_float32_matches(tmp_path):
    path = write(tmp_path, TINY, "tiny")
    double = suite.instance(path)
    single = suite.instance(path, dtype=torch.float32)
    assert single.y.dtype == torch.float32
    torch.testing.assert_close(single.y, double.y.float())


def test_train_split_differs(tmp_path):
    path = write(tmp_path, TINY, "tiny")
    train = suite.instance(path, split="train")
    test = suite.instance(path)
    assert train.y.shape == (7, 6)
    assert not torch.allclose(train.y[:5], test.y)


def test_instance_samples_range(tmp_path):
    path = write(tmp_path, TINY, "tiny")
    with pytest.raises(ValueError, match=r"samples must be an int in \[1, 5\] for the test split; got 6"):
        suite.instance(path, samples=6)


def test_instance_of_snr_list():
    with pytest.raises(suite.SuiteError, match=r"chen2018 lists several SNRs; build one variant: chen2018@snr=inf"):
        suite.instance("chen2018")


def test_unknown_variant():
    with pytest.raises(suite.SuiteError, match=r"no variant 'snr=10'; the variants are: chen2018@snr=inf"):
        suite.load("chen2018@snr=10")


def test_load_by_path_and_env(tmp_path, monkeypatch):
    write(tmp_path, TINY, "mine")
    monkeypatch.setenv(suite.PATH_VARIABLE, str(tmp_path))
    assert "mine" in suite.list_problems()
    assert suite.load("mine").path == tmp_path / "mine.toml"


# -----------------------------------------------------------------------------
# Malformed files


def test_unknown_problem():
    with pytest.raises(suite.SuiteError, match=r"unknown problem 'nope'; known problems: .*chen2018"):
        suite.load("nope")


def test_missing_file(tmp_path):
    with pytest.raises(suite.SuiteError, match=r"absent\.toml: no such problem file"):
        suite.load(tmp_path / "absent.toml")


def test_invalid_toml(tmp_path):
    path = write(tmp_path, TINY + "\n[samples\n")
    with pytest.raises(suite.SuiteError, match=r"bad\.toml: invalid TOML"):
        suite.load(path)


def test_unknown_key(tmp_path):
    path = write(tmp_path, edit(TINY, "lam = 0.2", "lam = 0.2\nlamda = 0.3"))
    message = (
        r"bad\.toml: unknown key 'lamda' in \[problem\]; "
        r"allowed keys: kind, lam, lam_rule, nonneg\."
    )
    with pytest.raises(suite.SuiteError, match=message) as info:
        suite.load(path)
    assert info.value.key == "[problem] lamda"


def test_unknown_top_key(tmp_path):
    path = write(tmp_path, "seeds = 3\n" + TINY)
    with pytest.raises(suite.SuiteError, match=r"unknown key 'seeds' in the top level; allowed keys: description, source, dtype"):
        suite.load(path)


def test_unknown_section(tmp_path):
    path = write(tmp_path, TINY + "\n[solver]\ntol = 1\n")
    with pytest.raises(suite.SuiteError, match=r"unknown section \[solver\]; allowed sections: dictionary, frame"):
        suite.load(path)


def test_missing_key(tmp_path):
    path = write(tmp_path, edit(TINY, "k = 10\n", ""))
    with pytest.raises(suite.SuiteError, match=r"bad\.toml: missing key \[dictionary\] k\."):
        suite.load(path)


def test_missing_section(tmp_path):
    text = TINY[: TINY.index("[samples]")]
    path = write(tmp_path, text)
    with pytest.raises(suite.SuiteError, match=r"missing section \[samples\]"):
        suite.load(path)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("m = 6", "m = 0", r"invalid value for \[dictionary\] m: 0; expected an integer >= 1\."),
        ("m = 6", "m = 6.5", r"invalid value for \[dictionary\] m: 6\.5; expected an integer >= 1\."),
        ('kind = "gaussian"', 'kind = "uniform"',
         r"invalid value for \[dictionary\] kind: 'uniform'; expected one of 'gaussian'\."),
        ("p = 0.3", "p = 1.5", r"invalid value for \[codes\] p: 1\.5; expected a number in \[0, 1\]\."),
        ("snr_db = 20", "snr_db = -inf",
         r"invalid value for \[noise\] snr_db: -inf; expected a finite number or inf\."),
        ("snr_db = 20", "snr_db = [20, 20]",
         r"invalid value for \[noise\] snr_db: \[20, 20\]; expected a list without repeated values\."),
        ("lam = 0.2", "lam = 2.0", r"invalid value for \[problem\] lam: 2\.0; expected a number in \[0, 1\] \(a fraction of lam_max\)\."),
        ('kind = "lasso"', 'kind = "ridge"',
         r"invalid value for \[problem\] kind: 'ridge'; expected one of 'lasso', 'elastic_net'"),
        ("train_seed = 2", "train_seed = 1",
         r"invalid value for \[samples\] train_seed: 1; expected a seed other than \[samples\] seed"),
        ('description = "tiny lasso"', "description = 3",
         r"invalid value for description: 3; expected a string\."),
    ],
)
def test_bad_value(tmp_path, old, new, message):
    path = write(tmp_path, edit(TINY, old, new))
    with pytest.raises(suite.SuiteError, match=message):
        suite.load(path)


def test_absolute_lam_above_one(tmp_path):
    path = write(tmp_path, edit(TINY, "lam = 0.2", 'lam = 2.0\nlam_rule = "absolute"'))
    inst = suite.instance(path)
    torch.testing.assert_close(inst.penalties["lam"], torch.full((5,), 2.0, dtype=torch.float64))


def test_key_of_other_kind(tmp_path):
    path = write(tmp_path, edit(TINY, "lam = 0.2", "lam = 0.2\nsigma = 1.0"))
    with pytest.raises(suite.SuiteError, match=r"unknown key 'sigma' in \[problem\]; allowed keys: kind, lam"):
        suite.load(path)


def test_dictionary_and_frame(tmp_path):
    path = write(tmp_path, TINY + '\n[frame]\nfamily = "fourier"\nn_freqs = 2\n')
    with pytest.raises(suite.SuiteError, match=r"give exactly one of the sections \[dictionary\] and \[frame\]"):
        suite.load(path)


def test_frame_needs_points(tmp_path):
    text = edit(TINY, '[dictionary]\nkind = "gaussian"\nm = 6\nk = 10\nseed = 3\n',
                '[frame]\nfamily = "fourier"\nn_freqs = 2\n')
    path = write(tmp_path, text)
    with pytest.raises(suite.SuiteError, match=r"a \[frame\] needs exactly one of the sections \[points\] and \[data\]"):
        suite.load(path)


def test_frame_member_key(tmp_path):
    text = edit(
        TINY, '[dictionary]\nkind = "gaussian"\nm = 6\nk = 10\nseed = 3\n',
        '[frame]\nfamily = "union"\n[[frame.members]]\nfamily = "fourier"\nn_freq = 2\n'
        '[points]\nkind = "grid"\nm = 6\n',
    )
    path = write(tmp_path, text)
    message = r"unknown key 'n_freq' in \[frame\.members\.0\]; allowed keys: family, n_freqs, period, normalize"
    with pytest.raises(suite.SuiteError, match=message):
        suite.load(path)


def test_group_sizes_must_cover(tmp_path):
    text = edit(TINY, 'kind = "lasso"\nlam = 0.2', 'kind = "group_lasso"\nlam = 0.2\ngroups = [4, 4]')
    spec = suite.load(write(tmp_path, text))
    message = r"invalid value for \[problem\] groups: the sizes add up to 8 but the dictionary has 10 atoms"
    with pytest.raises(suite.SuiteError, match=message):
        suite.instance(spec)


def test_group_codes_need_groups(tmp_path):
    path = write(tmp_path, edit(TINY, 'kind = "bernoulli_gaussian"', 'kind = "group_bernoulli_gaussian"'))
    with pytest.raises(suite.SuiteError, match=r"invalid value for \[codes\] kind: 'group_bernoulli_gaussian'"):
        suite.load(path)


def test_data_has_no_codes(tmp_path):
    text = (
        'description = "x"\n[frame]\nfamily = "fourier"\nn_freqs = 2\n'
        '[data]\nsource = "pywt.ecg"\nobserved = 0.5\n[codes]\nkind = "bernoulli_gaussian"\np = 0.1\n'
        '[problem]\nkind = "lasso"\nlam = 0.1\n[samples]\ntest = 1\nseed = 0\n'
    )
    path = write(tmp_path, text)
    with pytest.raises(suite.SuiteError, match=r"section \[codes\] is for synthetic signals"):
        suite.load(path)


def test_unknown_data_source(tmp_path):
    text = (
        'description = "x"\n[frame]\nfamily = "fourier"\nn_freqs = 2\n'
        '[data]\nsource = "https://example.org/x.csv"\nobserved = 0.5\n'
        '[problem]\nkind = "lasso"\nlam = 0.1\n[samples]\ntest = 1\nseed = 0\n'
    )
    path = write(tmp_path, text)
    with pytest.raises(suite.SuiteError, match=r"invalid value for \[data\] source: .*expected one of 'pywt\.ecg'"):
        suite.load(path)


def test_noise_section_optional(tmp_path):
    text = TINY[: TINY.index("[noise]")] + TINY[TINY.index("[problem]"):]
    inst = suite.instance(write(tmp_path, text, "quiet"))
    torch.testing.assert_close(inst.y, inst.z_true @ inst.D.T)


def test_section_not_a_table(tmp_path):
    path = write(tmp_path, "noise = 20\n" + TINY.replace("[noise]\nsnr_db = 20\n", ""))
    with pytest.raises(suite.SuiteError, match=r"noise must be a section \[noise\] with its keys; got 20\."):
        suite.load(path)


FAMILIES = {
    "fourier": ('n_freqs = 3\nperiod = 2.0', lambda f: f.Fourier(3, 2.0, dtype=torch.float64)),
    "legendre": ("degree = 4\ndomain = [0.0, 2.0]", lambda f: f.Legendre(4, (0.0, 2.0), dtype=torch.float64)),
    "chebyshev": ("degree = 4\ndomain = [0.0, 2.0]", lambda f: f.Chebyshev(4, (0.0, 2.0), dtype=torch.float64)),
    "gabor": ("n_centres = 3\nfreqs = [1.0, 2.0]\ndomain = [0.0, 2.0]\nwidth = 0.3",
              lambda f: f.Gabor.grid((0.0, 2.0), 3, [1.0, 2.0], 0.3, dtype=torch.float64)),
    "wavelet": ('kind = "morlet"\nn_octaves = 2\ndomain = [0.0, 2.0]',
                lambda f: f.Wavelet.dyadic("morlet", (0.0, 2.0), 2, dtype=torch.float64)),
    "damped_sinusoids": ("freqs = [1.0, 3.0]\ndecays = 0.5\nonset = 0.2",
                         lambda f: f.DampedSinusoids([1.0, 3.0], 0.5, 0.2, dtype=torch.float64)),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_frame_family_keys(tmp_path, family):
    from implicit_basis import frames

    keys, build = FAMILIES[family]
    text = edit(
        TINY, '[dictionary]\nkind = "gaussian"\nm = 6\nk = 10\nseed = 3\n',
        f'[frame]\nfamily = "{family}"\n{keys}\n[points]\nkind = "grid"\nm = 9\ndomain = [0.0, 2.0]\n',
    )
    inst = suite.instance(write(tmp_path, text, family))
    t = torch.linspace(0.0, 2.0, 9, dtype=torch.float64)
    torch.testing.assert_close(inst.D, build(frames)(t))


def test_random_points_per_sample(tmp_path):
    text = edit(
        TINY, '[dictionary]\nkind = "gaussian"\nm = 6\nk = 10\nseed = 3\n',
        '[frame]\nfamily = "fourier"\nn_freqs = 2\n'
        '[points]\nkind = "random"\nm = 7\nseed = 4\nper_sample = true\ndomain = [-1.0, 1.0]\n',
    )
    inst = suite.instance(write(tmp_path, text, "scattered"))
    assert inst.t.shape == (5, 7)
    assert inst.D.shape == (5, 7, 5)
    assert not torch.equal(inst.t[0], inst.t[1])
    assert bool((inst.t >= -1).all())
    assert bool((inst.t <= 1).all())
    assert bool((inst.t.diff(dim=1) > 0).all())
