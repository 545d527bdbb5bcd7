"""flexopt as the UFTP aggregator (AGR) of DSOs: signed messages in and out, every one kept; flexibility requests
priced with the MILP, orders made binding limits of the schedule runs, D-prognoses and settlement (docs/uftp.md)."""
