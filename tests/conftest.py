"""Suite-wide settings of the tests."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Run the suite with one intra-op thread in torch and in numpy's BLAS.

    The test problems are small. With two threads on a 2-core machine every
    small product or factorisation waits at a synchronisation: a 5 x 50
    product took 16 ms instead of 4 us while other processes kept the cores
    busy, which made some tests 100 times slower without testing more.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)
