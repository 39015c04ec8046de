"""``debug-ab`` internals: variants and arms, taps and tolerances (the workflow and its report:
:mod:`ptycho.workflows.debug_ab`, :mod:`ptycho.workflows.debug_ab_report`)."""
