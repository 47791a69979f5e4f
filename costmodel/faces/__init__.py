"""Faces: what people use. ``api`` (typed single-configuration and DataFrame entry points),
``report`` (CSV and JSON files), ``cli`` (``costmodel ...``), ``charts`` (pure Plotly figures).

Every figure comes from the jobs; a face formats, never computes. May import everything below
(search, validation, jobs, tables, formulas, specs). ``app.py`` and ``app_pages/`` sit on top.
"""
