"""A replayed operating day: perturbations, the simulated truth, the day summary and the HTML report."""
