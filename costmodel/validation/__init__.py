"""Validation and calibration: published measurements run through the same job functions as the
planner (``measurements``), and the fit of the few calibrated efficiencies (``calibration``).

May import: jobs, tables, formulas, specs. The faces (``costmodel validate``/``calibrate``) call it.
"""
