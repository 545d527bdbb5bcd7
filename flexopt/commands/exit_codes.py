"""Every exit code of the ``flexopt`` command, in one place (README "Exit codes", docs/guarantees.md).

Cron jobs and monitoring act on these, so each means one thing in every command.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BREACH = 1  # `check`: the run breaks the physics or a limit its kpis.json does not report
EXIT_INVALID = 2  # bad input: portfolio, data, DSO file, arguments, destination, no schedule, run folder
EXIT_SOLVER = 3  # `schedule`: the solver returned no schedule (time limit without one, numerical failure)
EXIT_ALARM = 4  # `dispatch --fail-on-alarm`: a round raised a critical alarm
EXIT_PORT_IN_USE = 5  # `simulate`: a simulator's port is taken; `uftp serve`: uftp.listen is taken
EXIT_BUSY = 6  # `schedule`: another schedule run of the portfolio held the store's lock for all of --wait-s
