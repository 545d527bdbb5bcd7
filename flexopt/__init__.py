"""flexopt: optimisation-based flexibility scheduling for distributed energy resources."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flexopt")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
