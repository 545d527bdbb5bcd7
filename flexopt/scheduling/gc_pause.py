"""Python's cyclic garbage collector paused while a run builds and solves its model.

A run allocates many objects that all stay alive until it ends (the formulations' parameters and irregular rows,
the frames read back; with the Pyomo-built model hundreds of thousands of components). Each time the collector
runs it scans all of them for cycles it cannot free: with it on, building the combined pilots' Pyomo model took
about three times as long (docs/benchmarks.md). Reference counting still frees everything else at once; the
collector resumes afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (nested blocks are fine: the outermost one turns it back on)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
