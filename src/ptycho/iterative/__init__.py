"""Iterative ptychographic solvers on ptycho's conventions: minibatch ePIE / rPIE
(:mod:`~ptycho.iterative.engines`) over the NumPy backend of :mod:`ptycho.physics.operators`.

They serve as the baseline of the ``ptycho-iterative`` plugin and as the global estimate the
PINN reads as its input (:mod:`~ptycho.iterative.streaming`, ``model.estimate = "global"``).
"""
