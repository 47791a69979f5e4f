"""Search: the generic chunked grid over a job kind's dimensions, the offer join, the running top-k
and Pareto set, progress and reason counts, and the plan result with its report tables.

Knows no job word: dimensions, reasons, objectives, Pareto axes and report columns come from the
job kind. May import: jobs, tables, specs, hardware_catalog. Never faces.
"""
