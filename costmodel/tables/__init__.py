"""Tables: the catalog and the assumption files joined into the arrays the formulas index.

``hardware`` (peaks and efficiencies per system x number format), ``offers`` (priced offers by
system, billing unit, storage price), ``knobs`` (assumption knobs as columns), ``catalog`` (the
engine catalog with calibration, cached tables). May import: hardware_catalog, specs, formulas.
"""
