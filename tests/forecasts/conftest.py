"""Small regressions run many times: single-threaded BLAS is much faster on shared cores.

Effective only when numpy is not yet imported; harmless otherwise.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
