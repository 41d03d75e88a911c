"""Alarm rules over (time, device) series: thresholds, flat lines, missing data, tunnels, virtual-sensor mismatch.

Every rule turns its input into two per-sample conditions — *raise side* (the fault is visible) and *clear side*
(the fault is gone) — and one shared numba state machine debounces them per device:

- an inactive device raises once the raise-side condition has held for ``min_samples`` samples **and**
  ``min_duration`` (time from the first sample of the run to the current one);
- an active device clears once the clear-side condition has held for ``clear_samples`` and ``clear_duration``;
- a sample on neither side (inside a hysteresis band, or NaN) resets the pending run; it never raises or clears.
  An open alarm therefore stays open through NaN, and a run broken by NaN starts again.

The state carried between calls (:class:`RuleState`: active flag, start and length of the pending run, time the open
alarm was raised, last time and last value) makes evaluation incremental: a series evaluated in one go or in any
chunks gives the same events. :class:`AlarmBook` keeps events (raised → acknowledged → cleared) and states in a
folder, written atomically, so alarms survive a process restart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr
from numba import njit

from twin.timeseries.journal import write_file_atomic

if TYPE_CHECKING:
    from twin.timeseries.store import Store

NAT = np.iinfo(np.int64).min  # "no time" in int64 nanoseconds (numpy's NaT)
EVENT_COLUMNS = ["alarm_id", "rule", "device", "event", "time", "since", "user"]


class AlarmError(ValueError):
    """A bad rule spec, batch or acknowledgement; the message names the rule, key or alarm and how to fix it."""


@dataclass
class RuleState:
    """Evaluation state of one rule: one entry per device seen so far (times in int64 ns since the epoch)."""

    device: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    active: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    run_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    run_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    raised_at: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_value: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    last_time: int = NAT

    def aligned(self, devices: np.ndarray) -> RuleState:
        """State for ``devices`` in that order (devices not seen before start inactive with no run)."""
        pos = pd.Index(self.device).get_indexer(devices)
        new = pos < 0
        take = np.where(new, 0, pos)

        def pick(arr: np.ndarray, fill: float) -> np.ndarray:
            out = arr[take] if len(arr) else np.zeros(len(devices), arr.dtype)
            out[new] = fill
            return out

        return RuleState(
            np.asarray(devices, dtype=object),
            pick(self.active, 0),
            pick(self.run_start, NAT),
            pick(self.run_count, 0),
            pick(self.raised_at, NAT),
            pick(self.last_value, np.nan),
            self.last_time,
        )

    def merged(self, update: RuleState) -> RuleState:
        """This state with ``update``'s devices replaced or added (devices absent from ``update`` kept as they are)."""
        keep = ~pd.Index(self.device).isin(update.device)
        arrays = {f.name: np.concatenate([getattr(self, f.name)[keep], getattr(update, f.name)]) for f in _ARRAYS}
        return RuleState(**arrays, last_time=max(self.last_time, update.last_time))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (NaN last values as null)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name).tolist() for f in _ARRAYS}
        out["last_value"] = [None if np.isnan(v) else v for v in self.last_value.tolist()]
        out["last_time"] = int(self.last_time)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleState:
        """Inverse of :meth:`to_json`."""
        dtypes = {"device": object, "active": np.int8, "last_value": np.float64}
        arrays = {
            f.name: np.array([np.nan if v is None else v for v in data[f.name]], dtype=dtypes.get(f.name, np.int64))
            for f in _ARRAYS
        }
        return cls(**arrays, last_time=int(data["last_time"]))


_ARRAYS = [f for f in fields(RuleState) if f.name != "last_time"]
_Sides = tuple[np.ndarray, np.ndarray]  # (raise side, clear side), bool (time, device)


@njit(cache=True)
def _debounce(
    raise_c, clear_c, times, prev_time, start_at_previous, need, active, run_start, run_count, raised_at, out
):  # pragma: no cover - compiled
    """Run the raise/clear state machine over ``(device, time)`` condition arrays (1 = holds, 0 = not / unknown).

    ``need`` = [min_samples, min_ns, clear_samples, clear_ns]; the state arrays are updated in place. Events go to
    ``out`` (rows: time index, device index, kind 0 = raised / 1 = cleared, since ns, raised-at ns) up to its
    length; the return value is the number of events, so the caller can retry with a larger ``out``.
    """
    n_dev, n_t = raise_c.shape
    n = 0
    for d in range(n_dev):
        a, s, c, r = active[d], run_start[d], run_count[d], raised_at[d]
        for i in range(n_t):
            t = times[i]
            holds = clear_c[d, i] if a else raise_c[d, i]
            if holds != 1:
                s, c = NAT, 0
                continue
            if c == 0:
                pt = prev_time if i == 0 else times[i - 1]
                s = pt if (start_at_previous and not a and pt != NAT) else t
            c += 1
            if c >= need[2 * a] and t - s >= need[2 * a + 1]:
                if n < out.shape[0]:
                    out[n, 0], out[n, 1], out[n, 2], out[n, 3] = i, d, a, s
                    out[n, 4] = r if a else t
                n += 1
                r = NAT if a else t
                a, s, c = 1 - a, NAT, 0
        active[d], run_start[d], run_count[d], raised_at[d] = a, s, c, r
    return n


def _ns(value: str | pd.Timedelta | None) -> int:
    return 0 if value is None else int(pd.Timedelta(value).value)


@dataclass(frozen=True, slots=True)
class _Rule:
    """Fields every rule has: its name, the store group and variable it watches, and the debouncing."""

    name: str
    variable: str
    group: str = "measurements"
    min_duration: str = "0min"
    clear_duration: str | None = None  # None: the same as min_duration
    kind: ClassVar[str] = ""
    start_at_previous: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for key in ("min_duration", "clear_duration"):
            value = getattr(self, key)
            if value is None and key == "clear_duration":
                continue
            try:
                ok = isinstance(value, str) and pd.Timedelta(value) >= pd.Timedelta(0)
            except ValueError:
                ok = False
            if not ok:
                raise AlarmError(f"rule {self.name!r}: key {key!r} must be a duration like '15min', got {value!r}")

    def _need(self) -> np.ndarray:
        clear = self.min_duration if self.clear_duration is None else self.clear_duration
        return np.array([self._min_samples(), _ns(self.min_duration), 1, _ns(clear)], dtype=np.int64)

    def _min_samples(self) -> int:
        return 1

    def _conditions(self, x: np.ndarray, state: RuleState, inputs: Mapping[str, xr.DataArray]) -> _Sides:
        raise NotImplementedError

    def evaluate(
        self, da: xr.DataArray, state: RuleState | None = None, **inputs: xr.DataArray
    ) -> tuple[pd.DataFrame, RuleState]:
        """Events of ``da`` (dims ``(time, <device>)``, times after the state's last time) and the new state.

        Returns a DataFrame with columns ``alarm_id, rule, device, event ('raised'|'cleared'), time, since, user``
        (``since``: start of the run that raised or cleared) and the state to pass with the next batch.
        """
        state = state or RuleState()
        dev_dim = _device_dim(da, self.name)
        da = da.transpose("time", dev_dim)
        times = da["time"].to_numpy().astype("datetime64[ns]").view(np.int64)
        if len(times) and (np.any(np.diff(times) <= 0) or times[0] <= state.last_time):
            raise AlarmError(
                f"rule {self.name!r}: batch times must increase and start after the last evaluated time "
                f"{pd.Timestamp(state.last_time) if state.last_time != NAT else None}; pass only new slots"
            )
        devices = da[dev_dim].to_numpy().astype(str).astype(object)
        repeated = pd.Index(devices)[pd.Index(devices).duplicated()].unique().tolist()
        if repeated:
            raise AlarmError(
                f"rule {self.name!r}: {dev_dim} ids repeated in the batch: {repeated[:10]}; make them unique"
            )
        st = state.aligned(devices)
        x = np.asarray(da.to_numpy(), dtype=np.float64)
        raise_c, clear_c = (np.ascontiguousarray(c.T.astype(np.int8)) for c in self._conditions(x, st, inputs))
        events = self._run(raise_c, clear_c, times, st)
        if len(times):
            st.last_value = x[-1].copy()
            st.last_time = int(times[-1])
        frame = self._frame(events, times, devices)
        return frame, state.merged(st)

    def _run(self, raise_c: np.ndarray, clear_c: np.ndarray, times: np.ndarray, st: RuleState) -> np.ndarray:
        out = np.zeros((max(64, 2 * len(st.device)), 5), np.int64)
        saved = [st.active.copy(), st.run_start.copy(), st.run_count.copy(), st.raised_at.copy()]
        args = (raise_c, clear_c, times, st.last_time, self.start_at_previous, self._need())
        n = _debounce(*args, st.active, st.run_start, st.run_count, st.raised_at, out)
        if n > len(out):  # more events than room: redo from the saved state with exactly enough
            st.active, st.run_start, st.run_count, st.raised_at = saved
            out = np.zeros((n, 5), np.int64)
            _debounce(*args, st.active, st.run_start, st.run_count, st.raised_at, out)
        return out[:n]

    def _frame(self, events: np.ndarray, times: np.ndarray, devices: np.ndarray) -> pd.DataFrame:
        events = events[np.lexsort((events[:, 1], events[:, 0]))]
        device = devices[events[:, 1]].astype(str)
        raised = pd.to_datetime(events[:, 4])
        frame = pd.DataFrame(
            {
                "alarm_id": _alarm_ids(self.name, device, raised),
                "rule": self.name,
                "device": device,
                "event": np.where(events[:, 2] == 0, "raised", "cleared"),
                "time": pd.to_datetime(times[events[:, 0]]),
                "since": pd.to_datetime(events[:, 3]),
                "user": "",
            }
        )
        return frame[EVENT_COLUMNS]


def _alarm_ids(rule: str, device: np.ndarray, raised: pd.DatetimeIndex) -> list[str]:
    stamps = raised.strftime("%Y-%m-%dT%H:%M:%S")
    return [f"{rule}|{d}|{s}" for d, s in zip(device, stamps, strict=True)]


def _device_dim(da: xr.DataArray, rule: str) -> str:
    others = [d for d in da.dims if d != "time"]
    if "time" not in da.dims or len(others) != 1:
        raise AlarmError(f"rule {rule!r}: expected a DataArray with dims (time, <device>), got {da.dims}")
    return str(others[0])


@dataclass(frozen=True, slots=True)
class ThresholdRule(_Rule):
    """Raise above ``high`` (and/or below ``low``); clear only below ``high - hysteresis`` (above ``low + hysteresis``).

    Touching a bound exactly never changes state: raising needs ``x > high``, clearing ``x < high - hysteresis``.
    Units are those of the variable.
    """

    high: float | None = None
    low: float | None = None
    hysteresis: float = 0.0
    kind: ClassVar[str] = "threshold"

    def __post_init__(self) -> None:
        _Rule.__post_init__(self)
        if self.high is None and self.low is None:
            raise AlarmError(f"rule {self.name!r}: give 'high' and/or 'low'")
        if self.hysteresis < 0:
            raise AlarmError(f"rule {self.name!r}: 'hysteresis' must be >= 0, got {self.hysteresis}")

    def _conditions(self, x: np.ndarray, state: RuleState, inputs: Mapping[str, xr.DataArray]) -> _Sides:
        known = ~np.isnan(x)
        hi = np.inf if self.high is None else self.high
        lo = -np.inf if self.low is None else self.low
        with np.errstate(invalid="ignore"):
            bad = (x > hi) | (x < lo)
            good = (x < hi - self.hysteresis) & (x > lo + self.hysteresis)
        return (bad & known), (good & known)


@dataclass(frozen=True, slots=True)
class FlatLineRule(_Rule):
    """Raise when the value stays exactly the same for ``samples`` samples in a row (a stuck meter or sensor).

    ``since`` is the time of the first sample of the flat run; a NaN ends the run; the next different value clears.
    """

    samples: int = 4
    kind: ClassVar[str] = "flatline"
    start_at_previous: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _Rule.__post_init__(self)
        if self.samples < 2:
            raise AlarmError(f"rule {self.name!r}: 'samples' must be >= 2, got {self.samples}")

    def _min_samples(self) -> int:
        return self.samples - 1

    def _conditions(self, x: np.ndarray, state: RuleState, inputs: Mapping[str, xr.DataArray]) -> _Sides:
        prev = np.vstack([state.last_value[None, :], x[:-1]]) if len(x) else x
        known = ~np.isnan(x) & ~np.isnan(prev)
        same = x == prev
        return (same & known), (~same & known)


@dataclass(frozen=True, slots=True)
class MissingDataRule(_Rule):
    """Raise when a device has sent no reading (NaN slots) for ``min_duration``, counted from its last reading.

    With no reading before the first evaluated slot, the silence counts from that slot. A reading clears.
    """

    min_duration: str = "60min"
    clear_duration: str | None = "0min"
    kind: ClassVar[str] = "missing"
    start_at_previous: ClassVar[bool] = True

    def _conditions(self, x: np.ndarray, state: RuleState, inputs: Mapping[str, xr.DataArray]) -> _Sides:
        nan = np.isnan(x)
        return nan, ~nan


@dataclass(frozen=True, slots=True)
class TunnelRule(_Rule):
    """Raise when the measured value leaves the tunnel around the prediction: ``|m - p| > max(abs_band, rel_band·|p|)``.

    Give ``abs_band`` (units of the variable), ``rel_band`` (fraction of ``|p|``) or both (the wider band counts).
    The prediction comes as ``evaluate(measured, state, predicted=da)``; in a spec, ``predicted`` names its variable
    (same group, same dims). Samples where either is NaN are unknown.
    """

    predicted: str = ""
    abs_band: float | None = None
    rel_band: float | None = None
    kind: ClassVar[str] = "tunnel"

    def __post_init__(self) -> None:
        _Rule.__post_init__(self)
        if self.abs_band is None and self.rel_band is None:
            raise AlarmError(f"rule {self.name!r}: give 'abs_band' and/or 'rel_band'")

    def _conditions(self, x: np.ndarray, state: RuleState, inputs: Mapping[str, xr.DataArray]) -> _Sides:
        if "predicted" not in inputs:
            raise AlarmError(f"rule {self.name!r}: pass the prediction as evaluate(..., predicted=DataArray)")
        p = inputs["predicted"]
        p = np.asarray(p.to_numpy(), dtype=np.float64)
        if p.shape != x.shape:
            raise AlarmError(f"rule {self.name!r}: predicted has shape {p.shape}, measured {x.shape}")
        band = np.maximum(self.abs_band or 0.0, (self.rel_band or 0.0) * np.abs(p))
        known = ~np.isnan(x) & ~np.isnan(p)
        with np.errstate(invalid="ignore"):
            out = np.abs(x - p) > band
        return (out & known), (~out & known)

    def evaluate(
        self, da: xr.DataArray, state: RuleState | None = None, **inputs: xr.DataArray
    ) -> tuple[pd.DataFrame, RuleState]:
        """See :meth:`_Rule.evaluate`; ``predicted`` is aligned to ``da`` (same time and device coordinates)."""
        if "predicted" in inputs:
            dims = da.dims
            inputs["predicted"] = inputs["predicted"].transpose(*dims).reindex_like(da)
        return _Rule.evaluate(self, da, state, **inputs)


@dataclass(frozen=True, slots=True)
class MismatchRule(_Rule):
    """Virtual-sensor mismatch: raise when ``|rel_error|`` exceeds ``limit`` for ``min_duration``.

    Input: ``rel_error`` on ``(time, trafo)`` from :func:`twin.timeseries.sensors.virtual_sensors` (a fraction,
    0.05 = 5 %). Clears below ``limit - hysteresis``.
    """

    variable: str = "rel_error"
    group: str = "virtual_sensors"
    limit: float = 0.05
    hysteresis: float = 0.0
    kind: ClassVar[str] = "mismatch"

    def _conditions(self, x: np.ndarray, state: RuleState, inputs: Mapping[str, xr.DataArray]) -> _Sides:
        rule = ThresholdRule(self.name, self.variable, high=self.limit, hysteresis=self.hysteresis)
        return rule._conditions(np.abs(x), state, inputs)


RULE_TYPES: dict[str, type[_Rule]] = {r.kind: r for r in (ThresholdRule, FlatLineRule, MissingDataRule, TunnelRule)}
RULE_TYPES[MismatchRule.kind] = MismatchRule
Rule = ThresholdRule | FlatLineRule | MissingDataRule | TunnelRule | MismatchRule


def read_rules(path: str | Path) -> list[Rule]:
    """Rules from a JSON or YAML file: ``{"rules": [{"name": ..., "type": "threshold", ...}, ...]}``.

    Durations are pandas strings (``"15min"``, ``"2h"``). Errors name the file, the rule and the key.
    """
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        spec = yaml.safe_load(text)
    else:
        spec = json.loads(text)
    try:
        return rules_from_spec(spec)
    except AlarmError as err:
        raise AlarmError(f"{path}: {err}") from None


def rules_from_spec(spec: Mapping[str, Any]) -> list[Rule]:
    """Rules from an already parsed spec (see :func:`read_rules`)."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("rules"), list):
        raise AlarmError("the spec must be a mapping with a list under 'rules'")
    rules: list[Rule] = []
    for i, entry in enumerate(spec["rules"]):
        rules.append(_rule_from_entry(i, entry))
    names = [r.name for r in rules]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise AlarmError(f"rule names must be unique; repeated: {dup}")
    return rules


def _rule_from_entry(i: int, entry: Any) -> Rule:
    where = f"rules[{i}]"
    if not isinstance(entry, Mapping):
        raise AlarmError(f"{where}: each rule must be a mapping, got {type(entry).__name__}")
    name = entry.get("name")
    where = f"{where} (rule {name!r})"
    if not isinstance(name, str) or not name or "|" in name:
        raise AlarmError(f"{where}: key 'name' must be a non-empty string without '|'")
    kind = entry.get("type")
    if kind not in RULE_TYPES:
        raise AlarmError(f"{where}: key 'type' must be one of {sorted(RULE_TYPES)}, got {kind!r}")
    cls = RULE_TYPES[kind]
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(entry) - allowed - {"type"})
    if unknown:
        raise AlarmError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    kwargs = {k: v for k, v in entry.items() if k != "type"}
    for key in ("high", "low", "hysteresis", "abs_band", "rel_band", "limit", "samples"):
        value = kwargs.get(key)
        number = int if key == "samples" else int | float
        if value is not None and (isinstance(value, bool) or not isinstance(value, number)):
            raise AlarmError(f"{where}: key {key!r} must be a {'whole ' * (key == 'samples')}number, got {value!r}")
    try:
        rule = cls(**kwargs)
    except (TypeError, AlarmError) as err:
        raise AlarmError(f"{where}: {err}") from None
    if isinstance(rule, TunnelRule) and not rule.predicted:
        raise AlarmError(f"{where}: key 'predicted' (the variable holding the prediction) is required")
    return rule


class AlarmBook:
    """Alarm events and rule states kept in a folder: ``events.parquet`` and ``state.json``.

    A batch is committed in two atomic writes (temp file + ``os.replace``): the events first, then ``state.json``,
    which records how many event rows belong to committed batches. Rows beyond that count (a crash between the two
    writes) are dropped on open and produced again when the batch is evaluated again.
    """

    def __init__(self, folder: str | Path, rules: list[Rule]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rules = {r.name: r for r in rules}
        if len(self.rules) != len(rules):
            raise AlarmError("rule names must be unique")
        self.states: dict[str, RuleState] = {}
        self.events = pd.DataFrame({c: pd.Series(dtype=_EVENT_DTYPES[c]) for c in EVENT_COLUMNS})
        state_file = self.folder / "state.json"
        if state_file.exists():
            saved = json.loads(state_file.read_text())
            self.states = {k: RuleState.from_json(v) for k, v in saved["states"].items()}
            events = pd.read_parquet(self.folder / "events.parquet")
            self.events = events.iloc[: saved["n_events"]].reset_index(drop=True)

    def evaluate(self, data: Mapping[str, xr.Dataset]) -> pd.DataFrame:
        """Evaluate every rule whose group is in ``data`` (group name → Dataset of new slots); returns new events.

        Slots at or before a rule's last evaluated time are skipped (re-sending a batch is harmless).
        """
        new = []
        for rule in self.rules.values():
            if rule.group not in data:
                continue
            ds = data[rule.group]
            for var in (rule.variable, getattr(rule, "predicted", "")):
                if var and var not in ds:
                    raise AlarmError(f"rule {rule.name!r}: group {rule.group!r} has no variable {var!r}")
            state = self.states.get(rule.name, RuleState())
            if state.last_time != NAT:
                ds = ds.sel(time=ds["time"] > np.datetime64(state.last_time, "ns"))
            inputs = {"predicted": ds[rule.predicted]} if isinstance(rule, TunnelRule) else {}
            events, self.states[rule.name] = rule.evaluate(ds[rule.variable], state, **inputs)
            new.append(events)
        frame = None
        if any(len(f) for f in new):  # time order (stable: rules in spec order, devices in column order)
            frame = pd.concat([f for f in new if len(f)], ignore_index=True)
            frame = frame.sort_values("time", kind="stable", ignore_index=True)
        if frame is not None:
            self.events = pd.concat([self.events, frame.astype(_EVENT_DTYPES)], ignore_index=True)
        self._save()
        return frame if frame is not None else self.events.iloc[:0].copy()

    def evaluate_store(self, store: Store, *, until: pd.Timestamp | None = None) -> pd.DataFrame:
        """Evaluate the rules on a :class:`twin.timeseries.store.Store` (group ``virtual_sensors`` is computed)."""
        groups = {r.group for r in self.rules.values()}
        data = {}
        for group in groups:
            if group == "virtual_sensors":
                from twin.timeseries.sensors import virtual_sensors

                data[group] = virtual_sensors(store).series
            elif group in store.groups():
                data[group] = store.dataset(group)
            if group in data and until is not None:
                data[group] = data[group].sel(time=slice(None, until))
        return self.evaluate(data)

    def acknowledge(self, alarm_id: str, user: str, time: pd.Timestamp | str) -> None:
        """Record that ``user`` acknowledged ``alarm_id`` at ``time`` (allowed once, open or cleared)."""
        rows = self.events[self.events["alarm_id"] == alarm_id]
        if not (rows["event"] == "raised").any():
            raise AlarmError(f"no alarm {alarm_id!r}; see AlarmBook.active() or .events for the ids")
        if (rows["event"] == "acknowledged").any():
            raise AlarmError(f"alarm {alarm_id!r} was already acknowledged")
        if not user:
            raise AlarmError(f"acknowledging {alarm_id!r}: give the user's name")
        raised = rows.iloc[0]
        if pd.Timestamp(time) < raised["time"]:
            raise AlarmError(f"acknowledging {alarm_id!r} at {time}: before it was raised ({raised['time']})")
        row = {**raised.to_dict(), "event": "acknowledged", "time": pd.Timestamp(time), "since": raised["time"]}
        row["user"] = user
        self.events = pd.concat([self.events, pd.DataFrame([row]).astype(_EVENT_DTYPES)], ignore_index=True)
        self._save()

    def alarms(self) -> pd.DataFrame:
        """One row per alarm: ``alarm_id, rule, device, since, raised, acknowledged, acknowledged_by, cleared, state``.

        ``state`` is ``raised``, ``acknowledged`` or ``cleared``.
        """
        ev = self.events
        raised = ev[ev["event"] == "raised"].set_index("alarm_id")
        out = raised[["rule", "device", "since"]].assign(raised=raised["time"])
        ack = ev[ev["event"] == "acknowledged"].set_index("alarm_id")
        out["acknowledged"] = ack["time"].reindex(out.index)
        out["acknowledged_by"] = ack["user"].reindex(out.index).fillna("")
        out["cleared"] = ev[ev["event"] == "cleared"].set_index("alarm_id")["time"].reindex(out.index)
        state = np.where(
            out["cleared"].notna(), "cleared", np.where(out["acknowledged"].notna(), "acknowledged", "raised")
        )
        return out.assign(state=state).reset_index()

    def active(self) -> pd.DataFrame:
        """Alarms not cleared yet (raised or acknowledged), oldest first."""
        alarms = self.alarms()
        return alarms[alarms["state"] != "cleared"].sort_values(["raised", "alarm_id"]).reset_index(drop=True)

    def _save(self) -> None:
        write_file_atomic(self.folder / "events.parquet", self.events.to_parquet(index=False))
        states = {k: v.to_json() for k, v in self.states.items()}
        doc = {"n_events": len(self.events), "states": states}
        write_file_atomic(self.folder / "state.json", json.dumps(doc).encode())


_EVENT_DTYPES = {
    "alarm_id": object,
    "rule": object,
    "device": object,
    "event": object,
    "time": "datetime64[ns]",
    "since": "datetime64[ns]",
    "user": object,
}
