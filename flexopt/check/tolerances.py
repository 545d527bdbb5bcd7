"""Tolerances of every comparison, in one place: solver results are exact only to about 1e-7, and a breach
smaller than these is not a breach."""

POWER_KW = 1e-4  # power limits, balances, equalities of power
ENERGY_KWH = 1e-3  # battery SoC, EV energy, hot water
TEMP_K = 1e-3  # indoor and tank temperatures
PERCENT = 1e-4  # a state in % (battery SoC; 1e-3 kWh of a 1 MWh battery)
PRICE_EUR_PER_KWH = 1e-9  # effective prices written in sites.parquet
COST_REL = 1e-6  # kpis cost_eur against the recomputed cost: relative ...
COST_ABS_EUR = 1e-4  # ... or absolute, whichever is larger

# tolerance by unit, used when a breach is compared with the amount of a reported violation
BY_UNIT = {"kW": POWER_KW, "kWh": ENERGY_KWH, "degC": TEMP_K, "K": TEMP_K, "EUR": COST_ABS_EUR,
           "EUR/kWh": PRICE_EUR_PER_KWH}


def for_unit(unit: str) -> float:
    return BY_UNIT.get(unit, POWER_KW)


def for_state(unit: str) -> float:
    """Tolerance of a state (states.parquet, run.json initial_state) in its declared unit."""
    return PERCENT if unit == "%" else for_unit(unit)
