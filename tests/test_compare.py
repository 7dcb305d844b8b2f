"""The comparison harness on tiny problems: records, errors, reference, reports."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from implicit_basis import suite
from implicit_basis.compare import (
    RECORD_FIELDS,
    CompareConfig,
    Method,
    compare,
    format_table,
    make_methods,
    plot,
    reference_gradients,
    reference_solutions,
    write_json,
)
from implicit_basis.compare.measure import support_scores
from tests.reference import reference_batch, reference_solve

TINY = """
description = "tiny lasso"

[dictionary]
kind = "gaussian"
m = 8
k = 16
seed = 5

[codes]
kind = "bernoulli_gaussian"
p = 0.2

[noise]
snr_db = 30

[problem]
kind = "lasso"
lam = 0.1

[samples]
test = 4
seed = 6
train = 64
train_seed = 7
"""

TINY_GROUPS = TINY.replace('kind = "lasso"\nlam = 0.1', 'kind = "group_lasso"\nlam = 0.1\ngroups = [4, 4, 4, 4]')

TINY_ECG = """
description = "ECG in a small Fourier frame"

[frame]
family = "fourier"
n_freqs = 10
period = 1.0

[data]
source = "pywt.ecg"
observed = 0.3

[problem]
kind = "lasso"
lam = 0.05

[samples]
test = 1
seed = 3
"""


class Broken(Method):
    """A method whose forward raises."""

    def forward(self, batch):
        raise RuntimeError("deliberate failure")


def tiny(tmp_path, text=TINY, name="tiny"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def config(tmp_path, **changes):
    settings = dict(
        methods=("implicit", "cvxpylayers", "fista", "lista", "sklearn"),
        iterations=(5, 300), layers=2, train_steps=3, train_batch=16, samples=None,
        warmup=1, repeats=1, cache_dir=tmp_path / "cache", progress=False,
    )
    settings.update(changes)
    return CompareConfig(**settings)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    settings = config(folder, batch_caps={"cvxpylayers": 2})
    methods = make_methods(settings.methods, settings)
    methods.insert(2, Broken("broken", "broken"))
    return compare([tiny(folder)], settings, methods=methods)


def rows(result):
    return {record["method"]: record for record in result.records}


def test_json_has_every_field(result, tmp_path):
    path = write_json(result, tmp_path / "out" / "result.json")
    data = json.loads(path.read_text())
    assert set(data) == {"created", "environment", "config", "measurement", "problems", "records"}
    assert len(data["records"]) == 7
    for record in data["records"]:
        assert list(record) == list(RECORD_FIELDS)


def test_problem_entry(result):
    (entry,) = result.problems
    assert entry["name"] == "tiny"
    assert entry["samples"] == 4
    assert entry["reference"]["method"] == "clarabel"
    assert entry["reference"]["polished"] == 4
    assert entry["reference_error"] is None


def test_failing_method_reported(result):
    record = rows(result)["broken"]
    assert record["status"] == "error"
    assert record["error"] == "RuntimeError: deliberate failure"
    assert record["forward_time_s"] is None


def test_run_goes_on_after_failure(result):
    statuses = {name: record["status"] for name, record in rows(result).items()}
    expected = {
        "implicit": "ok", "cvxpylayers": "ok", "broken": "error", "fista[T=5]": "ok",
        "fista[T=300]": "ok", "lista[K=2]": "ok", "sklearn": "ok",
    }
    for name, status in expected.items():
        assert statuses[name] == status, name


def test_implicit_matches_reference(result):
    record = rows(result)["implicit"]
    assert record["solution_rel_error"] < 1e-8
    assert record["grad_y_rel_error"] < 1e-6
    assert record["grad_D_rel_error"] < 1e-6


def test_fista_error_falls_with_steps(result):
    short, long = rows(result)["fista[T=5]"], rows(result)["fista[T=300]"]
    assert long["solution_rel_error"] < short["solution_rel_error"]


def test_fista_memory_grows_with_steps(result):
    short, long = rows(result)["fista[T=5]"], rows(result)["fista[T=300]"]
    assert long["memory_saved_bytes"] > 10 * short["memory_saved_bytes"]


def test_fista_per_iteration_nmse(result, tmp_path):
    from implicit_basis import unrolled

    record = rows(result)["fista[T=300]"]
    inst = suite.instance(tiny(tmp_path))
    iterates = unrolled.fista(inst.y, inst.D, inst.penalties["lam"], 300, return_all=True)
    error = (iterates[9] - inst.z_true).pow(2).sum() / inst.z_true.pow(2).sum()
    assert len(record["nmse_db_per_layer"]) == 300
    assert record["nmse_db_per_layer"][9] == pytest.approx(10 * math.log10(float(error)), abs=1e-9)
    # The timed codes come from the "unrolled" backend, which follows the same
    # momentum sequence as implicit_basis.unrolled.fista.
    assert record["nmse_db_per_layer"][-1] == pytest.approx(record["nmse_db"], abs=1e-9)


def test_learned_network_trained(result):
    record = rows(result)["lista[K=2]"]
    assert record["params"]["train_steps"] == 3
    assert len(record["nmse_db_per_layer"]) == 2
    assert record["grad_D_rel_error"] is None
    assert record["grad_y_rel_error"] is not None


def test_sklearn_gap_matched(result):
    table = rows(result)
    target = max(table["implicit"]["gap_max"] / 2, 5e-14)
    assert table["sklearn"]["params"]["tol"] == target
    assert table["sklearn"]["backward_time_s"] is None
    assert table["sklearn"]["solution_rel_error"] < 1e-5


def test_time_ratios(result):
    table = rows(result)
    record = table["cvxpylayers"]
    assert record["batch"] == 2
    ours = table["implicit"]["forward_time_s"] / table["implicit"]["batch"]
    assert record["forward_time_per_sample_s"] == pytest.approx(record["forward_time_s"] / record["batch"])
    assert record["forward_ratio"] == pytest.approx(record["forward_time_per_sample_s"] / ours)


def test_table_lists_failure(result):
    text = format_table(result)
    assert "error: tiny / broken: RuntimeError: deliberate failure" in text
    assert "fista[T=300]" in text


def test_benchmark_table_columns(result):
    header = format_table(result, benchmark=True).splitlines()[0]
    assert "fwd/ours" in header
    assert "max |z-ref|" in header


def test_plot_writes_png(result, tmp_path):
    path = plot(result, tmp_path / "figure.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_batch_cap(tmp_path):
    settings = config(tmp_path, methods=("fista",), iterations=(5,), batch_caps={"fista": 2})
    (record,) = compare([tiny(tmp_path)], settings).records
    assert record["batch"] == 2
    assert record["batch_available"] == 4


def test_time_budget_shrinks_batch(tmp_path):
    settings = config(tmp_path, methods=("fista",), iterations=(5,), repeats=3, time_budgets={"fista": 1e-9})
    (record,) = compare([tiny(tmp_path)], settings).records
    assert record["batch"] == 1
    assert record["repeats_done"] == 1
    assert record["notes"][0].startswith("time budget 1e-09 s: one sample took")


def test_not_applicable_skipped(tmp_path):
    settings = config(tmp_path, methods=("sklearn", "lista"))
    records = compare([tiny(tmp_path, TINY_GROUPS, "groups")], settings).records
    assert [r["status"] for r in records] == ["skipped", "skipped"]
    assert records[0]["error"] == "scikit-learn's lasso_cd solves the (non-negative) lasso only"


def test_unknown_method_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"unknown method 'nope'; expected one of: implicit"):
        compare([tiny(tmp_path)], config(tmp_path, methods=("nope",)))


def test_heldout_nmse_of_record(tmp_path):
    import pywt

    settings = config(tmp_path, methods=("implicit",))
    result = compare([tiny(tmp_path, TINY_ECG, "ecg")], settings)
    (record,) = result.records
    inst = suite.instance(tiny(tmp_path, TINY_ECG, "ecg"))
    z = reference_solutions(inst.y, inst.D, inst.problem).z[0].numpy()
    record_values = pywt.data.ecg().astype(np.float64)
    signal = (record_values - record_values.mean()) / record_values.std()
    t = np.linspace(0.0, 1.0, 1024)
    atoms = [np.ones_like(t)]
    for j in range(1, 11):
        atoms += [np.cos(2 * np.pi * j * t), np.sin(2 * np.pi * j * t)]
    atoms = np.stack(atoms, axis=1)
    observed = inst.observed[0].numpy()
    atoms = atoms / np.linalg.norm(atoms[observed], axis=0)
    error = atoms @ z - signal
    expected = 10 * math.log10((error[~observed] ** 2).sum() / (signal[~observed] ** 2).sum())
    assert record["heldout_nmse_db"] == pytest.approx(expected, abs=1e-6)
    assert record["nmse_db"] is None


# -----------------------------------------------------------------------------
# The reference


@pytest.mark.parametrize("text, kind", [(TINY, "lasso"), (TINY_GROUPS, "group_lasso")])
def test_reference_matches_oracle(tmp_path, text, kind):
    inst = suite.instance(tiny(tmp_path, text))
    ours = reference_solutions(inst.y, inst.D, inst.problem)
    kwargs = {"groups": inst.groups} if kind == "group_lasso" else {}
    oracle = reference_batch(
        kind, inst.y.numpy(), inst.D.numpy(), lam=inst.penalties["lam"].numpy(), **kwargs
    )
    np.testing.assert_allclose(ours.z.numpy(), oracle.z, atol=1e-10)


def test_reference_gradient_finite_differences(tmp_path):
    inst = suite.instance(tiny(tmp_path), samples=1)
    y = inst.y.numpy()[0]
    D = inst.D.numpy()
    lam = float(inst.penalties["lam"][0])
    weights = torch.randn(1, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z_ref = reference_solutions(inst.y, inst.D, inst.problem).z
    grad_y, _ = reference_gradients(inst.y, inst.D, inst.problem, z_ref, weights)
    step = 1e-6
    numeric = np.zeros(8)
    for i in range(8):
        shift = np.zeros(8)
        shift[i] = step
        up = reference_solve("lasso", y + shift, D, lam=lam).z
        down = reference_solve("lasso", y - shift, D, lam=lam).z
        numeric[i] = weights[0].numpy() @ (up - down) / (2 * step)
    np.testing.assert_allclose(grad_y[0].numpy(), numeric, rtol=1e-5, atol=1e-7)


def test_reference_cache(tmp_path):
    inst = suite.instance(tiny(tmp_path))
    first = reference_solutions(inst.y, inst.D, inst.problem, cache_dir=tmp_path / "cache")
    second = reference_solutions(inst.y, inst.D, inst.problem, cache_dir=tmp_path / "cache")
    assert not first.cache_hit
    assert second.cache_hit
    assert second.key == first.key
    torch.testing.assert_close(second.z, first.z)
    other = reference_solutions(inst.y * 2, inst.D, inst.problem, cache_dir=tmp_path / "cache")
    assert other.key != first.key


def test_reference_unknown_method(tmp_path):
    inst = suite.instance(tiny(tmp_path))
    with pytest.raises(ValueError, match=r"method must be one of clarabel, implicit; got 'scs'"):
        reference_solutions(inst.y, inst.D, inst.problem, method="scs")


def test_support_scores_by_hand():
    z = torch.tensor([[1.0, 0.0, 0.5, 1e-9], [0.0, 0.0, 0.0, 0.0]])
    truth = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
    precision, recall = support_scores(z, truth, 1e-6)
    assert precision == pytest.approx(1 / 2)
    assert recall == pytest.approx(1 / 3)


def test_lasso_polish_corrects_support(tmp_path):
    from implicit_basis.compare.reference import _lasso_active_set

    inst = suite.instance(tiny(tmp_path), samples=1)
    lam = float(inst.penalties["lam"][0])
    oracle = reference_solve("lasso", inst.y[0].numpy(), inst.D.numpy(), lam=lam)
    start = torch.zeros(16, dtype=torch.float64)
    start[int(np.argmin(np.abs(oracle.z)))] = 1.0  # a wrong support: one atom off the solution's
    z = _lasso_active_set(inst.D, inst.y[0], torch.tensor([lam], dtype=torch.float64), 0.0, False, start)
    np.testing.assert_allclose(z.numpy(), oracle.z, atol=1e-12)
