"""The Chen et al. (2018) reproduction script runs end to end at a smoke size."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "chen2018.py"


def load_script():
    spec = importlib.util.spec_from_file_location("chen2018_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chen2018_script_smoke(tmp_path, capsys):
    out = tmp_path / "chen.json"
    load_script().main(["--budget", "3", "--test", "20", "--snr", "inf", "40", "--threads", "1", "--json", str(out)])

    results = json.loads(out.read_text())
    assert [r["snr_db"] for r in results] == [math.inf, 40.0]
    noiseless, noisy = results
    for name in ("ista", "fista", "lista_cp", "alista", "lista_cpss"):
        assert math.isfinite(noiseless["nmse_db"][name])
    for name in ("lista_cp", "alista", "lista_cpss"):
        assert len(noiseless["per_layer"][name]) == 16
    # The lasso bias does not depend on training: about -16.8 dB at lam = 0.1
    # over 1000 samples, within 1.5 dB on 20 of them.
    assert abs(noiseless["nmse_db"]["implicit lasso lam=0.1"] + 16.8) < 1.5
    assert noiseless["nmse_db"]["implicit basis pursuit"] < -200
    assert noisy["nmse_db"]["implicit BPDN sigma=sqrt(m) std"] < -25
    assert "| lista_cpss |" in capsys.readouterr().out
