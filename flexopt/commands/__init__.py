"""Command groups of the ``flexopt`` CLI, one module per group."""
