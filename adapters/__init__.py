"""Thin protocol adapters that carry setpoints to devices and telemetry back."""
