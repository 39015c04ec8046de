"""``debug-ab`` internals: variants and arms, taps and tolerances, the tap recorders (the workflow and its report:
:mod:`ptycho.workflows.debug_ab`, :mod:`ptycho.workflows.debug_ab_report`)."""
