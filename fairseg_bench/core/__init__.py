"""The pure library core: losses, tilt, class index and samplers, confusion matrix, fairness.

Imports nothing from the harness. ``fairness`` and ``stats`` need only numpy/scipy, so the
report layer can use them without torch; import submodules directly:

* ``losses``: MCCE, weighted CE, Focal and the TCE family (and the shared input checks);
* ``lovasz``, ``dice``, ``balanced`` (class-balanced and logit-adjusted CE), ``ohem``: the
  reviewer's baselines, each a functional loss and a thin module;
* ``tilt``, ``class_index``, ``sampling``, ``confusion``, ``fairness``, ``stats``.
"""
