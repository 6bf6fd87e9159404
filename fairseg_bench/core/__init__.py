"""The pure library core: losses, tilt, class index and samplers, confusion matrix, fairness.

Imports nothing from the harness. ``fairness`` and ``stats`` need only numpy/scipy, so the
report layer can use them without torch; import submodules directly.
"""
