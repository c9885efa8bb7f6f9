"""Wall-clock timing of repeated calls: the one latency loop of the pruning report and the benches."""

from __future__ import annotations

import time
from typing import Any, Callable


def time_calls(call: Callable[[], Any], warmup: int, runs: int) -> list[float]:
    """Seconds of each of `runs` calls of `call`, after `warmup` untimed ones.

    `call` must wait for its result (e.g. end in `.numpy()`): the timing is of what it returns.
    """
    if runs < 1:
        raise ValueError(f"time_calls: runs must be at least 1, got {runs}")
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds
