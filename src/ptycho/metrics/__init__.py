"""Image metrics, Fourier ring correlation and registration (SPEC §9)."""
