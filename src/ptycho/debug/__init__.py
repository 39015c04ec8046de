"""``debug-ab`` internals: variants and arms, taps and tolerances, the report."""
