"""Dataset container, validation and grouping."""
