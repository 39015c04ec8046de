"""The PINN: physics layers, network factory and model bundles (SPEC §6)."""
