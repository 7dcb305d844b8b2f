"""Fixtures of the robustness tests."""

from __future__ import annotations

import pytest
import torch

from tests.robustness.guards import solvers_disabled


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test with one intra-op thread, then restore the setting.

    The problems here are small: on a 2-core machine, multi-threaded BLAS
    calls of this size wait for time slices and make the tests many times
    slower without testing anything more. One thread also makes the bitwise
    comparisons independent of how work is split between threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_solver():
    """Run the test with every solver disabled (see ``solvers_disabled``)."""
    with solvers_disabled():
        yield
