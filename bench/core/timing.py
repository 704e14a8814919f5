"""The one timing helper of the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable

import jax


def rate(fn: Callable[[], object], n_images: int, seconds: float) -> float:
    """Images per second of ``fn`` (which handles ``n_images``), warm: after one untimed call.

    At least one call is timed, however slow it is.
    """
    jax.block_until_ready(fn())
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or count == 0:
        jax.block_until_ready(fn())
        count += n_images
    return count / (time.perf_counter() - t0)
