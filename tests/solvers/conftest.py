"""Fixtures of the forward-solver tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run each solver test with one intra-op thread, then restore the setting.

    The test problems are small. On a 2-core machine that other processes
    keep busy, multi-threaded BLAS calls of this size wait for a time slice
    at every synchronisation: a 5 x 50 product took 16 ms instead of 4 us.
    That made the tests 100 times slower without testing anything more.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
