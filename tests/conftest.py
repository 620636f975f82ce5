"""Shared fixtures."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module of tiny models, restored afterwards.  Their matmuls
    are small; on a shared 2-core machine two spin-waiting OpenMP threads can run 4-10x slower
    than one.  Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
