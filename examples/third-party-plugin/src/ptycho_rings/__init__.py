"""Example ptycho plugin: concentric rings (``--object rings``), ``ptycho object-preview`` and the
``rings-object`` A/B variant. The hooks live in :mod:`ptycho_rings.plugin`."""

__version__ = "0.1.0"
