"""Image metrics, Fourier ring correlation and registration (docs/reconstruction.md#evaluation)."""
