"""Physics core: probes, objects, scans, the forward model and noise (docs/conventions.md, docs/simulation.md)."""
