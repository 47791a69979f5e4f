"""Formulas: pure functions of numpy columns that return a total and a breakdown by component.

params, flops, memory, comms, blocks (per-layer forward roofline), pipeline (stages, per-stage
parameters, in-flight micro-batches, bubble), timing (training step), cost (run dollars, energy),
hardware (the ``HardwareColumns`` they read). Each cites its paper and equation. One configuration
is a 0-d column, a grid a 1-d one. May import: specs, numpy. Never catalog files, jobs or faces.
"""
