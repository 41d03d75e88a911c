"""The physical grid as columnar component tables keyed by stable string ids.

A :class:`Grid` holds one :class:`pandas.DataFrame` per component type (``bus``, ``line``,
``trafo``, ``trafo3w``, ``switch``, ``load``, ``sgen``, ``gen``, ``ext_grid``, ``shunt``,
``storage``). Rows are keyed by string ids (the CIM mRID where one exists, ``"line/3"`` style
ids for pandapower imports); columns follow pandapower's names and units. Bus references are
bus ids, not positions. No solver state lives here: :func:`solvers.compile_grid` turns a Grid
into arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from twin.schema import COMPONENTS, SCHEMAS

__all__ = ["Grid"]


def _empty_tables() -> dict[str, pd.DataFrame]:
    return {name: SCHEMAS[name].empty_frame() for name in COMPONENTS}


@dataclass
class Grid:
    """A power grid as component tables.

    Parameters
    ----------
    name : str
        Name of the grid (case name, file stem, SimBench code).
    sn_mva : float
        System base power for per-unit values, MVA.
    f_hz : float
        Nominal frequency, Hz.
    tables : dict of str to pandas.DataFrame
        One table per component type, index = string ids. Missing types are empty.
    meta : dict
        Provenance (source file, importer, original ids).

    Examples
    --------
    >>> import twin
    >>> grid = twin.load("case9")
    >>> grid.bus.vn_kv.head(2)  # doctest: +SKIP
    """

    name: str = "grid"
    sn_mva: float = 1.0
    f_hz: float = 50.0
    tables: dict[str, pd.DataFrame] = field(default_factory=_empty_tables)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.tables) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown component tables {sorted(unknown)}; known: {list(COMPONENTS)}")
        full = _empty_tables()
        for comp, df in self.tables.items():
            full[comp] = SCHEMAS[comp].conform(df)
            if not full[comp].index.is_unique:
                dup = full[comp].index[full[comp].index.duplicated()].unique()[:5].tolist()
                raise ValueError(f"table {comp!r} has duplicate ids {dup}; ids must be unique per table")
        self.tables = full

    # -- table access, pandapower-like -------------------------------------------------
    def __getattr__(self, item: str) -> pd.DataFrame:
        """Return the table ``item`` (``grid.bus``, ``grid.line`` ...)."""
        tables = self.__dict__.get("tables")
        if tables is not None and item in tables:
            return tables[item]
        raise AttributeError(f"Grid has no attribute or table {item!r}")

    def __getitem__(self, component: str) -> pd.DataFrame:
        """Return the table of ``component``."""
        try:
            return self.tables[component]
        except KeyError:
            raise KeyError(f"no component table {component!r}; tables: {list(COMPONENTS)}") from None

    def __iter__(self) -> Iterator[str]:
        """Iterate over the names of non-empty tables."""
        return (c for c in COMPONENTS if len(self.tables[c]))

    def __repr__(self) -> str:
        """Summarise the grid in one line per non-empty table."""
        rows = [f"Grid {self.name!r} (sn_mva={self.sn_mva:g}, f_hz={self.f_hz:g})"]
        rows += [f"  {c:<9} {len(self.tables[c]):>7}" for c in self]
        return "\n".join(rows)

    # -- changes ----------------------------------------------------------------------
    def add(self, component: str, rows: pd.DataFrame | dict[str, Any], ids: Iterable[str] | None = None) -> None:
        """Append rows to a component table.

        Parameters
        ----------
        component : str
            Component type, e.g. ``"load"``.
        rows : DataFrame or dict
            Column values (units as in the schema); a dict of scalars adds one row.
        ids : iterable of str, optional
            Row ids; taken from the DataFrame index when omitted.
        """
        if isinstance(rows, dict):
            rows = pd.DataFrame([rows])
        if ids is not None:
            rows = rows.set_axis(list(ids))
        schema = SCHEMAS[component]
        new = schema.conform(rows)
        clash = new.index.intersection(self.tables[component].index)
        if len(clash):
            raise ValueError(f"{component} ids already exist: {clash[:5].tolist()}")
        self.tables[component] = pd.concat([self.tables[component], new])

    def remove(self, component: str, ids: Iterable[str]) -> None:
        """Remove rows by id (raises ``KeyError`` naming unknown ids)."""
        ids = list(ids)
        missing = [i for i in ids if i not in self.tables[component].index]
        if missing:
            raise KeyError(f"{component} has no ids {missing[:5]}")
        self.tables[component] = self.tables[component].drop(index=ids)

    def copy(self) -> Grid:
        """Return a deep copy."""
        return Grid(
            name=self.name,
            sn_mva=self.sn_mva,
            f_hz=self.f_hz,
            tables={c: df.copy() for c, df in self.tables.items()},
            meta=dict(self.meta),
        )

    def select_buses(self, bus_ids: Iterable[str]) -> Grid:
        """Return the sub-grid on ``bus_ids``: elements whose buses all lie inside are kept."""
        keep = pd.Index(list(bus_ids))
        tables: dict[str, pd.DataFrame] = {}
        for comp in COMPONENTS:
            df = self.tables[comp]
            if comp == "bus":
                tables[comp] = df.loc[df.index.isin(keep)]
                continue
            mask = pd.Series(True, index=df.index)
            for col in SCHEMAS[comp].bus_columns:
                mask &= df[col].isin(keep)
            if comp == "switch":
                is_bb = df["et"] == "b"
                mask &= ~is_bb | df["element"].isin(keep)
            tables[comp] = df.loc[mask]
        return Grid(name=self.name, sn_mva=self.sn_mva, f_hz=self.f_hz, tables=tables, meta=dict(self.meta))

    @property
    def n_bus(self) -> int:
        """Number of buses."""
        return len(self.tables["bus"])

    def summary(self) -> pd.Series:
        """Return the number of rows per component type."""
        return pd.Series({c: len(self.tables[c]) for c in COMPONENTS}, name=self.name)
