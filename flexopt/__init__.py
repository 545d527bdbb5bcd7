"""flexopt: optimisation-based flexibility scheduling for distributed energy resources."""

import os
from importlib.metadata import PackageNotFoundError, version

# Many small regressions run on few cores: multithreaded BLAS makes each one ~100x slower on a busy
# machine. Set before numpy loads; a user's own setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

try:
    __version__ = version("flexopt")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
