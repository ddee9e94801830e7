"""A check shared by the native-kernel tests: results per torch thread count."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def assert_deterministic_across_threads(run: Callable[[], Sequence[torch.Tensor]], tol: float = 1e-12) -> None:
    """Run ``run()`` at 2, 2 and 1 torch threads (restoring the count): the two 2-thread runs must
    be bit-identical (threads own fixed ranges and per-thread sums are added in thread order),
    and the 1-thread run must agree within ``tol`` (only the order of those sums changes)."""
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (2, 2, 1):
            torch.set_num_threads(threads)
            results.append(list(run()))
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    for a, c, d in zip(*results):
        assert torch.equal(a, c)
        torch.testing.assert_close(a, d, rtol=tol, atol=tol)
