"""The PINN: physics layers, network factory and model bundles (docs/model.md, docs/formats.md#model-bundles)."""
