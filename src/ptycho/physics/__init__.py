"""Physics core: probes, objects, scans, the forward model and noise (SPEC §2–§3)."""
