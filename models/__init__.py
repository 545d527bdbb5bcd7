"""One MILP formulation per asset type, behind the interface in :mod:`flexopt.models.base`."""
