"""The implicit-basis command, run in process through ``main``."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys

import pytest

from implicit_basis.cli import main
from implicit_basis.compare import RECORD_FIELDS

TINY = """
description = "tiny lasso for the command line"

[dictionary]
kind = "gaussian"
m = 6
k = 12
seed = 8

[codes]
kind = "bernoulli_gaussian"
p = 0.2

[problem]
kind = "lasso"
lam = 0.1

[samples]
test = 3
seed = 9
"""


@pytest.fixture
def problem(tmp_path):
    path = tmp_path / "cli_tiny.toml"
    path.write_text(TINY)
    return path


def test_problems_lists_suite(capsys):
    assert main(["problems"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["name", "kind", "dictionary"]
    for name in ("chen2018", "ecg_gabor", "gaussian_lasso_64x256", "union_group_lasso"):
        assert any(line.startswith(name + " ") for line in lines), name


def test_problems_variants(capsys):
    assert main(["problems", "--variants"]) == 0
    out = capsys.readouterr().out
    assert "chen2018@snr=40 " in out
    assert "chen2018 " not in out


def test_compare_tiny(problem, tmp_path, capsys):
    json_path = tmp_path / "result.json"
    plot_path = tmp_path / "result.png"
    argv = [
        "compare", str(problem), "--backends", "implicit,ista", "--iterations", "3,30",
        "--samples", "2", "--repeats", "1", "--warmup", "0", "--cache-dir", str(tmp_path / "cache"),
        "--json", str(json_path), "--plot", str(plot_path), "--no-progress",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ista[T=30]" in out
    assert f"wrote {json_path}" in out
    data = json.loads(json_path.read_text())
    assert [r["method"] for r in data["records"]] == ["implicit", "ista[T=3]", "ista[T=30]"]
    for record in data["records"]:
        assert list(record) == list(RECORD_FIELDS)
        assert record["batch"] == 2
    assert data["config"]["iterations"] == [3, 30]
    assert plot_path.read_bytes()[:4] == b"\x89PNG"


def test_compare_batch_cap_option(problem, tmp_path, capsys):
    json_path = tmp_path / "result.json"
    argv = [
        "compare", str(problem), "--backends", "fista", "--iterations", "3", "--batch-cap", "fista=1",
        "--repeats", "1", "--no-cache", "--json", str(json_path), "--no-progress",
    ]
    assert main(argv) == 0
    (record,) = json.loads(json_path.read_text())["records"]
    assert record["batch"] == 1
    assert record["batch_available"] == 3


def test_compare_needs_problem(capsys):
    assert main(["compare"]) == 2
    assert "name at least one problem" in capsys.readouterr().err


def test_compare_unknown_problem(capsys):
    assert main(["compare", "nope", "--no-progress"]) == 2
    assert "unknown problem 'nope'" in capsys.readouterr().err


def test_compare_unknown_backend(capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", "chen2018", "--backends", "implicit,magic"])
    assert info.value.code == 2
    assert "unknown method 'magic'" in capsys.readouterr().err


def test_compare_bad_cap(capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", "chen2018", "--batch-cap", "cvxpylayers"])
    assert info.value.code == 2
    assert "expected METHOD=VALUE, got 'cvxpylayers'" in capsys.readouterr().err


def test_log_level_rejected(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--log-level", "loud", "problems"])
    assert info.value.code == 2
    assert "invalid choice: 'LOUD'" in capsys.readouterr().err


def _demo_ready() -> bool:
    if importlib.util.find_spec("implicit_basis.demo") is None:
        return False
    demo = importlib.import_module("implicit_basis.demo")
    return all(callable(getattr(demo, name, None)) for name in ("configure_parser", "run"))


@pytest.mark.skipif(_demo_ready(), reason="implicit_basis.demo defines the subcommand, so it is no stub")
def test_demo_stub(capsys):
    assert main(["demo"]) == 1
    assert "not available yet" in capsys.readouterr().err


def test_no_command(capsys):
    assert main([]) == 2
    assert "usage: implicit-basis" in capsys.readouterr().err


def test_module_entry_point():
    completed = subprocess.run(
        [sys.executable, "-m", "implicit_basis", "--version"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0
    assert completed.stdout.startswith("implicit-basis ")
