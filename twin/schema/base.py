"""Column specifications shared by the component schemas.

A :class:`TableSchema` lists the columns of one component table (name, dtype, unit, default,
whether it is required) and which columns refer to bus ids. Schemas are data: the Grid, the
validator and the importers read them; nothing here touches a Grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Column", "TableSchema"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a component table.

    Parameters
    ----------
    name : str
        Column name; physical quantities carry their unit (``p_mw``, ``vn_kv``).
    dtype : str
        One of ``"float"``, ``"int"``, ``"bool"``, ``"str"``.
    default : Any
        Value used when an importer or user leaves the column out. ``None`` with
        ``required=True`` means the column must be given.
    required : bool
        The column must be present and, for numeric columns, finite.
    doc : str
        One line of meaning and unit.
    """

    name: str
    dtype: str
    default: Any = None
    required: bool = False
    doc: str = ""

    def empty_value(self) -> Any:
        """Return the value that fills a missing optional column."""
        if self.default is not None:
            return self.default
        return {"float": np.nan, "int": 0, "bool": False, "str": ""}[self.dtype]


_PANDAS_DTYPES = {"float": "float64", "int": "int64", "bool": "bool", "str": "object"}


@dataclass(frozen=True, slots=True)
class TableSchema:
    """Schema of one component table (rows keyed by string id)."""

    name: str
    columns: tuple[Column, ...]
    bus_columns: tuple[str, ...] = ()
    doc: str = ""
    extra_ok: bool = field(default=True)

    @property
    def column_names(self) -> list[str]:
        """Names of the columns in schema order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        """Return the column called ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}; columns: {self.column_names}")

    def empty_frame(self) -> pd.DataFrame:
        """Return an empty table with the schema's columns and dtypes."""
        df = pd.DataFrame({c.name: pd.Series(dtype=_PANDAS_DTYPES[c.dtype]) for c in self.columns})
        df.index = pd.Index([], dtype=object, name="id")
        return df

    def conform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return ``df`` with every schema column present (defaults filled) and cast.

        Extra columns are kept after the schema columns. Required columns that are
        missing raise ``ValueError`` naming the table and column.
        """
        out = df.copy()
        for c in self.columns:
            if c.name not in out.columns:
                if c.required:
                    raise ValueError(
                        f"table {self.name!r} lacks required column {c.name!r} ({c.doc}); "
                        f"add it before creating the Grid"
                    )
                out[c.name] = c.empty_value()
            elif c.default is not None and c.dtype in ("float", "int"):
                out[c.name] = pd.to_numeric(out[c.name], errors="coerce").fillna(c.default)
            if c.dtype == "str":
                out[c.name] = out[c.name].where(out[c.name].notna(), c.empty_value()).astype(object)
            elif c.dtype == "bool":
                col = out[c.name].astype(object)
                out[c.name] = col.where(col.notna(), bool(c.empty_value())).astype(bool)
            else:
                try:
                    out[c.name] = out[c.name].astype(_PANDAS_DTYPES[c.dtype])
                except (TypeError, ValueError) as err:
                    raise ValueError(f"table {self.name!r} column {c.name!r} must be {c.dtype}: {err}") from err
        ordered = self.column_names + [c for c in out.columns if c not in self.column_names]
        out = out[ordered]
        out.index = pd.Index(out.index.astype(str), dtype=object, name="id")
        return out
