"""The time-series store: zarr v3 on disk, xarray in memory, atomic idempotent appends.

Layout (see ``docs/design/timeseries.md``): one group per kind of series, each a dense ``(time, device)`` cube on a
regular time axis (the store's ``freq`` from its ``origin``) with one float64 variable per parameter and a uint8
``quality_<var>`` beside it. ``measurements`` holds meters (ids pseudonymised, see :mod:`twin.timeseries.privacy`),
``sensors`` transformer/feeder metering, ``loads`` per-load powers, ``results`` power-flow results. Chunks are
``(chunk_slots, device_chunk)`` (a month of slots by 512 devices by default), so appending a day rewrites one chunk
row and reading a meter's year touches 12 chunks.

Every append is one journal transaction (:mod:`twin.timeseries.journal`): a crash leaves the store as it was before
the batch. Readings that land on a slot already holding the same value are counted as duplicates, not stored twice;
a different value for a filled slot is a conflict: the first value is kept and the slot flagged ``CONFLICT``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from twin.timeseries import flags
from twin.timeseries.journal import JournaledStore, Location, recover
from twin.timeseries.privacy import Pseudonymiser

FORMAT = "gridtwin-store/1"
DEVICE_DIM = {"measurements": "meter", "sensors": "sensor", "loads": "load"}
METER_COORDS = ("customer", "load", "bus", "trafo")
_NS = np.int64(1_000_000_000)


# meter series: bit-shuffled zstd at a low level compresses registers and flags well and keeps appends fast
_COMPRESSOR = BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")


class StoreError(ValueError):
    """A store cannot be opened or written as asked (the message says how to fix it)."""


@dataclass
class AppendReport:
    """What one append did. Counts are readings (cells), not file rows."""

    group: str
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["device", "time", "reason"]))
    new_devices: int = 0
    missing_in_range: int = 0  # empty slots between each touched device's first and last value, per window
    variables: list[str] = field(default_factory=list)
    time_range: tuple[pd.Timestamp, pd.Timestamp] | None = None

    def merge(self, other: AppendReport) -> None:
        """Add ``other``'s counts to this report."""
        self.received += other.received
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts
        self.new_devices += other.new_devices
        self.missing_in_range += other.missing_in_range
        self.rejected = (
            pd.concat([self.rejected, other.rejected], ignore_index=True) if len(other.rejected) else (self.rejected)
        )
        self.variables = sorted(set(self.variables) | set(other.variables))
        if other.time_range is not None:
            lo, hi = other.time_range
            if self.time_range is not None:
                lo, hi = min(lo, self.time_range[0]), max(hi, self.time_range[1])
            self.time_range = (lo, hi)


def variable_name(parameter: str) -> str:
    """A store variable name for a source parameter name: ``"A+"`` → ``"A_plus"``, ``"P (kW)"`` → ``"P_kW"``."""
    name = parameter.replace("+", "_plus").replace("-", "_minus")
    name = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")
    if not name or name[0].isdigit():
        name = f"v_{name}"
    return name


class Store:
    """A gridtwin time-series store (a zarr v3 folder). Create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, loc: Location, root: zarr.Group, journal: JournaledStore, secret: bytes | str | None) -> None:
        self.location = loc
        self.path: Path | str = loc.path if loc.is_local else loc.url  # a folder, or the fsspec URL
        self._root = root
        self._journal = journal
        self._secret = secret
        self._pseudo: Pseudonymiser | None = None
        self._device_index: dict[str, dict[str, int]] = {}

    # --- opening ------------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        freq: str = "15min",
        origin: str | pd.Timestamp = "2000-01-01",
        chunk_days: float = 31,
        device_chunk: int = 512,
        secret: bytes | str | None = None,
        overwrite: bool = False,
    ) -> Store:
        """Create an empty store at ``path``; ``origin`` (UTC) is the first time slot it can hold."""
        loc = Location(path)
        if not loc.is_empty() and not overwrite:
            raise StoreError(f"{loc} exists and is not empty; open it with Store.open or pass overwrite=True")
        step = pd.Timedelta(freq)
        if step <= pd.Timedelta(0) or step % pd.Timedelta("1s"):
            raise StoreError(f"freq={freq!r}: give a whole number of seconds, e.g. '15min' or '1s'")
        journal = JournaledStore(loc)
        root = zarr.open_group(journal, mode="w", zarr_format=3)
        pseudo = Pseudonymiser(secret)
        root.attrs.update(
            {
                "format": FORMAT,
                "freq": freq,
                "freq_s": int(step.total_seconds()),
                "origin": pd.Timestamp(origin).isoformat(),
                "chunk_slots": max(1, int(pd.Timedelta(days=chunk_days) / step)),
                "device_chunk": int(device_chunk),
                "secret_fingerprint": pseudo.fingerprint,
                "retention_days": {},
            }
        )
        store = cls(loc, root, journal, secret)
        store._pseudo = pseudo
        return store

    @classmethod
    def open(cls, path: str | Path, *, secret: bytes | str | None = None, mode: str = "r+") -> Store:
        """Open a store; an interrupted batch is rolled back (or forward, if it had committed) first."""
        loc = Location(path)
        if not loc.exists("zarr.json"):
            raise StoreError(
                f"{loc} is not a gridtwin store (no zarr.json); create one with Store.create / gridtwin ingest"
            )
        if mode != "r":
            recover(loc)
        journal = JournaledStore(loc, read_only=mode == "r")
        root = zarr.open_group(journal, mode=mode, zarr_format=3)
        if root.attrs.get("format") != FORMAT:
            raise StoreError(f"{path}: not a {FORMAT} store (format={root.attrs.get('format')!r})")
        return cls(loc, root, journal, secret)

    @property
    def pseudonymiser(self) -> Pseudonymiser:
        """The keyed hash of this store (checked against the store's secret fingerprint)."""
        if self._pseudo is None:
            pseudo = Pseudonymiser(self._secret)
            pseudo.check(self._root.attrs.get("secret_fingerprint"))
            self._pseudo = pseudo
        return self._pseudo

    @property
    def freq(self) -> pd.Timedelta:
        """Time step of the store's slots."""
        return pd.Timedelta(seconds=int(self._root.attrs["freq_s"]))

    @property
    def origin(self) -> pd.Timestamp:
        """Time of slot 0 (UTC, tz-naive)."""
        return pd.Timestamp(self._root.attrs["origin"])

    @property
    def attrs(self) -> dict[str, Any]:
        """The store's root attributes (read-only copy)."""
        return dict(self._root.attrs)

    def groups(self) -> list[str]:
        """Names of the groups that hold data."""
        return sorted(name for name, _ in self._root.groups())

    # --- transactions -------------------------------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[None]:
        """All writes inside the block become visible together, or not at all (one writer at a time: the batch waits
        for another process's batch on the same store; ``twin/timeseries/journal.py``)."""
        self._journal.begin()
        self._device_index.clear()  # another process may have added devices since our last batch
        try:
            yield
        except BaseException:
            self._journal.rollback()
            self._device_index.clear()
            raise
        self._journal.commit()

    # --- reading ------------------------------------------------------------------------------------------
    def dataset(self, group: str = "measurements") -> xr.Dataset:
        """The group as a lazy (dask-free, zarr-backed) xarray Dataset."""
        if group not in self.groups():
            raise StoreError(f"{self.path} has no group {group!r}; it has {self.groups()}")
        ds = xr.open_zarr(self._journal, group=group, consolidated=False, chunks=None)
        # numpy's StringDType coordinates do not mix with code that expects str/object ids: hand out objects
        text = {name: ds[name].to_numpy().astype(object) for name in ds.coords if ds[name].dtype.kind == "T"}
        return ds.assign_coords({name: (ds[name].dims, values) for name, values in text.items()})

    def __getitem__(self, group: str) -> xr.Dataset:
        return self.dataset(group)

    def meter_ids(self, meters: list[str] | np.ndarray) -> np.ndarray:
        """Pseudonyms the store uses for clear meter ids."""
        return self.pseudonymiser.meters(meters)

    # --- appending ----------------------------------------------------------------------------------------
    def append(
        self,
        readings: pd.DataFrame | list[pd.DataFrame],
        *,
        group: str = "measurements",
        units: dict[str, str] | None = None,
        tolerance: str | pd.Timedelta | None = None,
        source: str = "",
        meters: pd.DataFrame | None = None,
    ) -> AppendReport:
        """Write Readings (columns device, parameter, time, value; see docs/design/timeseries.md) atomically.

        ``readings`` may be a list of such frames (a reader's batches): they are written as one batch.

        Timestamps are matched to the store's slots within ``tolerance`` (default a tenth of ``freq``; head-end
        exports stamp 16:30:04 for the 16:30 reading). Readings before ``origin`` or off the grid are rejected with
        the reason; duplicates and conflicts are counted (see the module docstring). For ``measurements`` device ids
        are pseudonymised, and ``meters`` (the Meters table) attaches customer/load/bus/trafo to new meters.
        """
        with self.batch():
            return self._append(readings, group, units or {}, tolerance, source, meters)

    def _append(
        self,
        readings: pd.DataFrame | list[pd.DataFrame],
        group: str,
        units: dict[str, str],
        tolerance: str | pd.Timedelta | None,
        source: str,
        meters: pd.DataFrame | None,
    ) -> AppendReport:
        appender = Appender(self, group, units=units, tolerance=tolerance, meters=meters)
        for frame in [readings] if isinstance(readings, pd.DataFrame) else readings:
            appender.add(frame)
        return appender.write(source)

    def appender(
        self,
        group: str = "measurements",
        *,
        units: dict[str, str] | None = None,
        tolerance: str | pd.Timedelta | None = None,
        meters: pd.DataFrame | None = None,
    ) -> Appender:
        """Start a batch that takes frames one by one (``add``) and is written with ``commit`` (or ``rollback``).

        Each frame is located (slots, pseudonymised columns) when added, so a reader thread can parse the next
        frame meanwhile; memory holds 32 bytes per accepted reading until ``commit``.
        """
        self._journal.begin()
        self._device_index.clear()  # another process may have added devices since our last batch
        return Appender(self, group, units=units or {}, tolerance=tolerance, meters=meters, owns_batch=True)

    def _locate(
        self,
        g: zarr.Group,
        group: str,
        frame: pd.DataFrame,
        tolerance: str | pd.Timedelta | None,
        meters: pd.DataFrame | None,
        report: AppendReport,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Slots, columns (new devices added), parameter codes and values of one frame's accepted readings."""
        slots, rejected = self._slots(frame, tolerance)
        if len(rejected):
            report.rejected = (
                pd.concat([report.rejected, rejected], ignore_index=True) if len(report.rejected) else (rejected)
            )
        keep = slots >= 0
        all_kept = bool(keep.all())
        dev_codes, dev_uniques = pd.factorize(frame["device"])  # hash-based; arrow strings stay arrow
        if not all_kept:
            dev_codes = dev_codes[keep]
        dev_uniques = np.asarray(dev_uniques, dtype=object)
        present = np.zeros(len(dev_uniques), dtype=bool)
        present[dev_codes] = True  # devices whose every reading was rejected get no column
        if group == "measurements":
            dev_uniques[present] = self.pseudonymiser.meters(dev_uniques[present])
        unique_cols = np.full(len(dev_uniques), -1, dtype=np.int64)
        unique_cols[present], new = self._columns(g, group, dev_uniques[present], meters)
        report.new_devices += new
        par_codes, par_uniques = pd.factorize(frame["parameter"])
        values = frame["value"].to_numpy(dtype=np.float64)
        if not all_kept:
            slots, par_codes, values = slots[keep], par_codes[keep], values[keep]
        # parameter codes of this frame → positions in the batch's list of names (same order of first appearance)
        return slots, unique_cols[dev_codes], par_codes, values, [str(p) for p in par_uniques]

    def _slot_time(self, slot: int) -> pd.Timestamp:
        return self.origin + slot * self.freq

    def _slots(self, readings: pd.DataFrame, tolerance: str | pd.Timedelta | None) -> tuple[np.ndarray, pd.DataFrame]:
        """Slot index per reading (-1 where rejected) and the rejected readings with reasons."""
        times = readings["time"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        step = self.freq.value
        tol = pd.Timedelta(tolerance).value if tolerance is not None else step // 10
        offset = times - self.origin.value
        slots = (offset + step // 2) // step
        no_time = times == np.iinfo(np.int64).min  # NaT
        before = offset < -tol
        off_grid = np.abs(offset - slots * step) > tol
        no_value = ~np.isfinite(readings["value"].to_numpy(dtype=np.float64))
        bad = no_time | before | off_grid | no_value
        if not bad.any():
            return slots, pd.DataFrame(columns=["device", "time", "reason"])
        reasons = np.select(
            [no_time[bad], before[bad], off_grid[bad]],
            [
                "no timestamp",
                f"timestamp before the store's origin {self.origin}; create the store with an earlier origin",
                f"timestamp is off the store's {self.freq} grid by more than {pd.Timedelta(tol)}",
            ],
            default="value is not a finite number",
        )
        slots[bad] = -1
        rejected = pd.DataFrame(
            {
                "device": readings["device"][bad].to_numpy(dtype=object),
                "time": readings["time"][bad].to_numpy(),
                "reason": reasons,
            }
        )
        return slots, rejected

    def _group(self, name: str) -> zarr.Group:
        if name in self.groups():
            return self._root[name]
        dim = DEVICE_DIM.get(name, "device")
        g = self._root.create_group(name)
        g.attrs.update({"device_dim": dim, "provenance": []})
        freq_s = int(self._root.attrs["freq_s"])
        g.create_array(
            "time",
            shape=(0,),
            chunks=(int(self._root.attrs["chunk_slots"]),),
            dtype="int64",
            dimension_names=["time"],
            attributes={
                "units": f"seconds since {self.origin.isoformat(sep=' ')}",
                "calendar": "proleptic_gregorian",
                "freq_s": freq_s,
            },
        )
        chunk = int(self._root.attrs["device_chunk"])
        g.create_array(dim, shape=(0,), chunks=(chunk,), dtype=str, dimension_names=[dim])
        if name == "measurements":
            for coord in METER_COORDS:
                g.create_array(coord, shape=(0,), chunks=(chunk,), dtype=str, dimension_names=[dim])
        return g

    def _devices(self, g: zarr.Group, group: str) -> dict[str, int]:
        if group not in self._device_index:
            dim = g.attrs["device_dim"]
            self._device_index[group] = {str(d): i for i, d in enumerate(g[dim][:])}
        return self._device_index[group]

    def _columns(
        self, g: zarr.Group, group: str, devices: np.ndarray, meters: pd.DataFrame | None
    ) -> tuple[np.ndarray, int]:
        """Column of each reading's device; new devices are added at the end of the device axis."""
        index = self._devices(g, group)
        new = list(dict.fromkeys(d for d in devices if d not in index))
        if new:
            dim = g.attrs["device_dim"]
            start = len(index)
            for k, d in enumerate(new):
                index[d] = start + k
            n = start + len(new)
            for _name, arr in g.arrays():
                if arr.ndim == 2:
                    arr.resize((arr.shape[0], n))
            g[dim].resize((n,))
            g[dim][start:n] = np.array(new, dtype=str)
            if group == "measurements":
                self._set_meter_coords(g, start, np.array(new, dtype=object), meters)
        cols = np.array([index[d] for d in devices], dtype=np.int64)
        return cols, len(new)

    def _set_meter_coords(self, g: zarr.Group, start: int, new: np.ndarray, meters: pd.DataFrame | None) -> None:
        n = start + len(new)
        table = pd.DataFrame(index=new, columns=list(METER_COORDS), dtype=object).fillna("")
        if meters is not None and len(meters):
            known = meters.copy()
            known.index = self.pseudonymiser.meters(known.index.astype(str).to_numpy())
            if "customer" in known:
                known["customer"] = self.pseudonymiser.customers(known["customer"].fillna("").astype(str).to_numpy())
            table.update(known.reindex(index=new)[[c for c in METER_COORDS if c in known]].astype(object))
        for coord in METER_COORDS:
            g[coord].resize((n,))
            g[coord][start:n] = table[coord].fillna("").astype(str).to_numpy(dtype=str)

    def register_meters(self, meters: pd.DataFrame) -> None:
        """Attach customer/load/bus/trafo (Meters table, clear ids) to meters already in the store."""
        with self.batch():
            g = self._group("measurements")
            index = self._devices(g, "measurements")
            keys = self.pseudonymiser.meters(meters.index.astype(str).to_numpy())
            pos = np.array([index.get(k, -1) for k in keys])
            if (pos < 0).any():
                self._columns(g, "measurements", keys[pos < 0], meters)
                pos = np.array([index[k] for k in keys])
            for coord in METER_COORDS:
                if coord not in meters:
                    continue
                vals = meters[coord].fillna("").astype(str).to_numpy()
                if coord == "customer":
                    vals = self.pseudonymiser.customers(vals)
                current = g[coord][:].astype(object)
                current[pos] = vals
                g[coord][:] = current.astype(str)

    def _extend_time(self, g: zarr.Group, n_slots: int) -> None:
        old = g["time"].shape[0]
        if n_slots <= old:
            return
        freq_s = int(self._root.attrs["freq_s"])
        for _, arr in g.arrays():
            if arr.ndim == 2:
                arr.resize((n_slots, arr.shape[1]))
        g["time"].resize((n_slots,))
        g["time"][old:n_slots] = np.arange(old, n_slots, dtype=np.int64) * freq_s

    def _variable(self, g: zarr.Group, var: str, param: str, unit: str) -> tuple[zarr.Array, zarr.Array]:
        if var in dict(g.arrays()):
            return g[var], g[f"quality_{var}"]
        dim = g.attrs["device_dim"]
        shape = (g["time"].shape[0], g[dim].shape[0])
        chunks = (int(self._root.attrs["chunk_slots"]), int(self._root.attrs["device_chunk"]))
        coords = " ".join(METER_COORDS) if g.basename == "measurements" else ""
        attrs = {"parameter": param, "units": unit, "coordinates": coords}
        values = g.create_array(
            var,
            shape=shape,
            chunks=chunks,
            dtype="float64",
            fill_value=np.nan,
            dimension_names=["time", dim],
            attributes=attrs,
            compressors=_COMPRESSOR,
        )
        quality = g.create_array(
            f"quality_{var}",
            shape=shape,
            chunks=chunks,
            dtype="uint8",
            fill_value=int(flags.MISSING),
            compressors=_COMPRESSOR,
            dimension_names=["time", dim],
            attributes={"flags": "see twin.timeseries.flags", "coordinates": coords},
        )
        return values, quality

    def _write_variable(
        self, g: zarr.Group, var: str, param: str, unit: str, slots: np.ndarray, cols: np.ndarray, values: np.ndarray
    ) -> tuple[int, ...]:
        """Merge readings of one variable into the stored cube, window by window.

        Returns (stored, duplicates, conflicts, missing slots inside the touched devices' ranges).
        """
        values_arr, quality_arr = self._variable(g, var, param, unit)
        chunk_slots = int(self._root.attrs["chunk_slots"])
        window = slots // chunk_slots
        totals = np.zeros(4, dtype=np.int64)
        if window.min() == window.max():
            return tuple(int(x) for x in _merge_window(values_arr, quality_arr, slots, cols, values))
        order = np.argsort(window, kind="stable")  # stable: the first reading of a slot in file order wins
        slots, cols, values, window = slots[order], cols[order], values[order], window[order]
        bounds = np.flatnonzero(np.diff(window)) + 1
        for lo, hi in itertools.pairwise([0, *bounds.tolist(), len(window)]):
            totals += _merge_window(values_arr, quality_arr, slots[lo:hi], cols[lo:hi], values[lo:hi])
        return int(totals[0]), int(totals[1]), int(totals[2]), int(totals[3])

    def _record_provenance(self, g: zarr.Group, source: str, report: AppendReport) -> None:
        prov = list(g.attrs.get("provenance", []))
        prov.append(
            {
                "source": source,
                "ingested_at": pd.Timestamp.now(tz="UTC").isoformat(),
                "stored": report.stored,
                "duplicates": report.duplicates,
                "conflicts": report.conflicts,
                "rejected": len(report.rejected),
            }
        )
        g.attrs["provenance"] = prov[-1000:]

    # --- derived groups -----------------------------------------------------------------------------------
    def write_dataset(self, group: str, ds: xr.Dataset, *, append_dim: str | None = None) -> None:
        """Write (or append along ``append_dim``) a Dataset as a group, in one batch (results, forecasts, loads)."""
        ds = _variable_length_strings(ds)
        with self.batch():
            exists = group in self.groups()
            if append_dim and exists:
                ds.to_zarr(self._journal, group=group, append_dim=append_dim, consolidated=False, zarr_format=3)
            else:
                if exists:
                    del self._root[group]
                ds.to_zarr(self._journal, group=group, mode="w", consolidated=False, zarr_format=3)

    def set_retention(self, days: dict[str, float]) -> None:
        """Keep ``variable: days`` of data per variable; :meth:`apply_retention` enforces it."""
        current = dict(self._root.attrs.get("retention_days", {}))
        current.update({k: float(v) for k, v in days.items()})
        self._root.attrs["retention_days"] = current

    def apply_retention(self, now: pd.Timestamp | None = None) -> dict[str, int]:
        """Drop values older than their variable's retention; returns the number of slots cleared per variable."""
        now = pd.Timestamp.now(tz="UTC").tz_localize(None) if now is None else pd.Timestamp(now)
        cleared: dict[str, int] = {}
        with self.batch():
            for group in self.groups():
                g = self._root[group]
                for var, days in self._root.attrs.get("retention_days", {}).items():
                    if var not in dict(g.arrays()):
                        continue
                    cut = now - pd.Timedelta(days=days)
                    n = int(np.clip(np.ceil((cut - self.origin) / self.freq), 0, g[var].shape[0]))
                    if n:
                        _clear_rows(g[var], n, np.nan)
                        _clear_rows(g[f"quality_{var}"], n, int(flags.MISSING))
                    cleared[f"{group}/{var}"] = n
        return cleared

    def describe(self) -> dict[str, Any]:
        """Sizes, variables and time range per group (for ``gridtwin store info``)."""
        out: dict[str, Any] = {"path": str(self.path), "freq": self._root.attrs["freq"], "groups": {}}
        for group in self.groups():
            g = self._root[group]
            dim = g.attrs.get("device_dim", "")
            n_time = g["time"].shape[0] if "time" in dict(g.arrays()) else 0
            out["groups"][group] = {
                "devices": g[dim].shape[0] if dim in dict(g.arrays()) else 0,
                "slots": n_time,
                "variables": sorted(k for k, a in g.arrays() if a.ndim == 2 and not k.startswith("quality_")),
            }
        return out


class Appender:
    """Frames located one by one, then merged into the store in one batch (see :meth:`Store.appender`)."""

    def __init__(
        self,
        store: Store,
        group: str,
        *,
        units: dict[str, str],
        tolerance: str | pd.Timedelta | None,
        meters: pd.DataFrame | None,
        owns_batch: bool = False,
    ) -> None:
        self.store, self.group, self.units, self.tolerance, self.meters = store, group, units, tolerance, meters
        self.report = AppendReport(group=group)
        self._g = store._group(group)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]] = []
        self._owns_batch = owns_batch

    def add(self, frame: pd.DataFrame) -> None:
        """Locate one Readings frame (rejections are reported, new devices get columns)."""
        self.report.received += len(frame)
        if len(frame):
            self._parts.append(self.store._locate(self._g, self.group, frame, self.tolerance, self.meters, self.report))

    def write(self, source: str = "") -> AppendReport:
        """Merge everything added into the cube (inside the caller's batch); returns the report."""
        parts, report, g, store = self._parts, self.report, self._g, self.store
        self._parts = []
        if not parts or not sum(len(p[0]) for p in parts):
            return report
        slots = np.concatenate([p[0] for p in parts])
        cols = np.concatenate([p[1] for p in parts])
        names = list(dict.fromkeys(name for p in parts for name in p[4]))
        params = np.concatenate([np.array([names.index(n) for n in p[4]], dtype=np.int64)[p[2]] for p in parts])
        values = np.concatenate([p[3] for p in parts])
        del parts
        store._extend_time(g, int(slots.max()) + 1)
        for code, param in enumerate(names):
            sel = params == code if len(names) > 1 else slice(None)
            var = variable_name(param)
            counts = store._write_variable(g, var, param, self.units.get(param, ""), slots[sel], cols[sel], values[sel])
            report.stored += counts[0]
            report.duplicates += counts[1]
            report.conflicts += counts[2]
            report.missing_in_range += counts[3]
            report.variables.append(var)
        report.time_range = (store._slot_time(int(slots.min())), store._slot_time(int(slots.max())))
        store._record_provenance(g, source, report)
        return report

    def commit(self, source: str = "") -> AppendReport:
        """Write and commit the batch this appender opened."""
        try:
            report = self.write(source)
        except BaseException:
            self.rollback()
            raise
        self.store._journal.commit()
        return report

    def rollback(self) -> None:
        """Drop the batch this appender opened."""
        self.store._journal.rollback()
        self.store._device_index.clear()


def _merge_window(
    values_arr: zarr.Array, quality_arr: zarr.Array, slots: np.ndarray, cols: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """Read-modify-write the block a window of readings falls into; returns (stored, duplicates, conflicts)."""
    s0, s1 = int(slots.min()), int(slots.max()) + 1
    c0, c1 = int(cols.min()), int(cols.max()) + 1
    block = values_arr[s0:s1, c0:c1]
    quality = quality_arr[s0:s1, c0:c1]
    key = (slots - s0) * (c1 - c0) + (cols - c0)
    counts = _merge_cells(block.reshape(-1), quality.reshape(-1), key, values, flags.CONFLICT)
    values_arr[s0:s1, c0:c1] = block
    quality_arr[s0:s1, c0:c1] = quality
    valid = ~np.isnan(block)
    n_valid = valid.sum(axis=0)
    first = valid.argmax(axis=0)
    last = block.shape[0] - 1 - valid[::-1].argmax(axis=0)
    missing = np.where(n_valid > 0, last - first + 1 - n_valid, 0).sum()
    return np.append(counts, missing)


@numba.njit(cache=True)
def _merge_cells(
    block: np.ndarray, quality: np.ndarray, key: np.ndarray, values: np.ndarray, conflict: np.uint8
) -> np.ndarray:  # pragma: no cover - compiled
    """In file order: fill empty cells, count equal values as duplicates, flag different ones as conflicts."""
    counts = np.zeros(3, dtype=np.int64)
    for i in range(key.shape[0]):
        k = key[i]
        old = block[k]
        if np.isnan(old):
            block[k] = values[i]
            quality[k] = 0
            counts[0] += 1
        elif old == values[i]:
            counts[1] += 1
        else:
            quality[k] |= conflict
            counts[2] += 1
    return counts


def _variable_length_strings(ds: xr.Dataset) -> xr.Dataset:
    """Fixed-width numpy strings (``<U8``) have no zarr v3 spec; store them as variable-length UTF-8."""
    fixed = {name: ds[name].astype(object) for name in ds.variables if ds[name].dtype.kind == "U"}
    return ds.assign_coords({k: v for k, v in fixed.items() if k in ds.coords}).assign(
        {k: v for k, v in fixed.items() if k not in ds.coords}
    )


def _clear_rows(arr: zarr.Array, n: int, fill: float) -> None:
    """Set rows ``[0, n)`` of a 2-D array to ``fill``, one chunk row at a time (all-fill chunks are dropped)."""
    chunk = arr.chunks[0]
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        arr[lo:hi, :] = np.full((hi - lo, arr.shape[1]), fill, dtype=arr.dtype)


__all__ = ["AppendReport", "Store", "StoreError", "variable_name"]
