"""Every script in examples/ run at a small size through its ``main(argv)``."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The examples' default backend, which picks the implicit one.
BACKEND = "auto"


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learn_frequencies_recovers_frequencies():
    example = load_example("learn_frequencies")
    result = example.main(["--n-times", "100", "--steps", "60", "--seed", "0", "--backend", BACKEND])
    before, after = result["before"], result["after"]
    assert after["freq_error"] < before["freq_error"] / 10
    assert after["decay_error"] < before["decay_error"]
    assert after["unobserved_error"] < before["unobserved_error"] / 5


def test_learn_frequencies_held_out_loss():
    example = load_example("learn_frequencies")
    result = example.main(["--steps", "50", "--loss", "held-out", "--seed", "0", "--backend", BACKEND])
    assert result["after"]["freq_error"] < result["before"]["freq_error"] / 10


def test_quickstart_every_kind(capsys):
    example = load_example("quickstart")
    example.main(["--batch", "2", "--m", "8", "--k", "12", "--seed", "0", "--backend", BACKEND])
    lines = capsys.readouterr().out.splitlines()
    rows = {}
    for line in lines[2:]:
        name, values = line[:26].strip(), line[26:].split()
        rows[name] = [float(value) for value in values]
    kinds = {
        "lasso", "non-negative lasso", "elastic net", "group lasso",
        "sparse group lasso", "basis pursuit", "basis pursuit denoising",
    }
    assert set(rows) == kinds
    for name, (nnz, gap, grad_y, grad_D, grad_p, _) in rows.items():
        assert nnz > 0, name
        assert gap < 1e-6, name
        # A NaN norm fails these comparisons too.
        assert grad_y > 0, name
        assert grad_D > 0, name
        if name == "basis pursuit":
            assert math.isnan(grad_p), name
        else:
            assert grad_p > 0, name
        assert all(math.isfinite(value) for value in (grad_y, grad_D)), name
