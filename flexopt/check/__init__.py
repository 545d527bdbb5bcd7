"""``flexopt check``: an independent physics check of a schedule run.

Every rule is written again here from the physical definitions (docs/check.md), never by reading LP rows or
calling the model code, so that a defect in the model cannot hide itself: this package imports configuration and
data reading only (a test parses its imports and fails on a forbidden one).
"""

from flexopt.check.checker import CheckResult, check_run
from flexopt.check.run_folder import CheckInputError

__all__ = ["CheckInputError", "CheckResult", "check_run"]
