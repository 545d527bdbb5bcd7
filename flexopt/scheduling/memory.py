"""The process's peak memory so far, recorded after each stage of a run (kpis.json ``peak_rss_mb``).

The high-water mark of the resident set only grows, so the figure after a stage is the peak up to its end: the
stage where it jumps is the one that needed the memory."""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports KB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)
