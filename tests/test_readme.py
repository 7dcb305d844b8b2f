"""The README's code blocks run as written and do what they claim."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_examples_run(capsys):
    blocks = _python_blocks()
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)

    assert namespace["z"].shape == (4 * 2 + 1,)
    assert bool(namespace["info"].converged.all())
    assert namespace["y"].grad.shape == (8, 32)
    assert bool(torch.isfinite(namespace["lam"].grad).all())
    printed = capsys.readouterr().out.splitlines()
    assert float(printed[-1]) < 1e-5
