"""Specs: what the user states. Model architecture (``ModelSpec``, presets, Hugging Face import),
parallel layout and its rules, number formats and shared enumerations (``codes``), the training
setup and its column form, assumption knobs, and the planning scenario.

Frozen pydantic models at the boundary; ``columns`` and ``setup.build_training_columns`` turn them
into numpy columns. May import: hardware_catalog, numpy, pydantic, yaml. Nothing else of costmodel.
"""

__version__ = "0.1.0"
