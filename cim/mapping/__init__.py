"""CIM class families → Grid tables: one module per family, mRIDs kept as ids."""

from cim.mapping.grid import CimImportWarning, to_grid
from cim.mapping.nodes import CimMappingError

__all__ = ["CimImportWarning", "CimMappingError", "to_grid"]
