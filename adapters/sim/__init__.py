"""Simulated devices that speak each protocol for real, on 127.0.0.1."""
