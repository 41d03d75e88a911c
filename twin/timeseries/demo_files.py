"""Demo data as a utility hands it over: an Italian head-end CSV export, line protocol and the meters table.

:func:`write_demo_files` writes what :func:`twin.timeseries.demo.synthesise` returns as files the readers of
:mod:`twin.timeseries.ingest` take back: :func:`write_readings_csv` (register readings, local time in
:data:`TZ_FILES`, decimal comma, jittered timestamps) and :func:`write_line_protocol` (transformer metering, UTC
nanoseconds). The CSV is written by numpy into fixed-width byte records, a million rows at a time, without a Python
string per row. :mod:`twin.timeseries.demo` re-exports these writers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from twin.timeseries.demo import DemoData

__all__ = ["TZ_FILES", "write_demo_files", "write_line_protocol", "write_readings_csv"]

TZ_FILES = "Europe/Rome"


def _text_bytes(values: NDArray, what: str) -> tuple[NDArray[np.uint8], NDArray[np.intp], NDArray[np.uint64]]:
    """Distinct strings of ``values`` as NUL-padded bytes (U, width), each value's row, and a hash of each string."""
    codes, uniq = pd.factorize(values)
    bad = [u for u in uniq if any(c in str(u) for c in ',"\n\r')]
    if bad:
        raise ValueError(f"{what} {bad[0]!r} contains a comma, quote or line break; rename it before writing a CSV")
    arr = np.array([str(u).encode() for u in uniq])
    return arr.view(np.uint8).reshape(len(uniq), -1), codes, pd.util.hash_array(np.asarray(uniq, dtype=object))


def _value_bytes(values: NDArray, out: NDArray[np.uint8]) -> None:
    """Write ``"-12,8900"`` (4 decimals, decimal comma, quoted) and a newline into ``out`` (N, 20); rest NUL."""
    if not np.isfinite(values).all() or (np.abs(values) >= 1e11).any():
        raise ValueError("readings to write must be finite and below 1e11 in magnitude; clean the value column first")
    q, frac = np.divmod(np.rint(np.abs(values) * 1e4).astype(np.int64), 10_000)
    out[:, 0], out[:, 13], out[:, 18], out[:, 19] = ord('"'), ord(","), ord('"'), ord("\n")
    out[:, 1] = np.where(values < 0, ord("-"), 0)
    for col in range(17, 13, -1):
        frac, digit = np.divmod(frac, 10)
        out[:, col] = digit + ord("0")
    out[:, 12] = q % 10 + ord("0")
    for col in range(11, 1, -1):  # leading zeros stay NUL
        q //= 10
        if not q.any():
            break
        out[:, col] = np.where(q > 0, q % 10 + ord("0"), 0)


def _local_time_bytes(times: NDArray, tz: str, out: NDArray[np.uint8]) -> None:
    """Write local ``HH:MM:SS dd/mm/YYYY`` of UTC ``times`` into ``out`` (N, 19); formats each distinct minute once."""
    minute = times.astype("datetime64[m]")
    codes, uniq = pd.factorize(minute)
    text = (
        pd.DatetimeIndex(uniq.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(tz).strftime("%H:%M:00 %d/%m/%Y")
    )
    out[:] = np.array(text.tolist(), dtype="S19").view(np.uint8).reshape(-1, 19)[codes]
    sec = ((times - minute) // np.timedelta64(1, "s")).astype(np.int64)
    out[:, 6], out[:, 7] = sec // 10 + ord("0"), sec % 10 + ord("0")


def write_readings_csv(
    readings: pd.DataFrame, path: str | Path, *, jitter_s: int = 10, seed: int = 0, tz: str = TZ_FILES
) -> Path:
    """Write Readings as an Italian head-end export ``Dispositivo,Parametro,Data,Valore``, in the rows' order.

    ``Data`` is local time ``HH:MM:SS dd/mm/YYYY`` in ``tz`` (ambiguous in the hour after the autumn DST change; the
    row order, meter by meter in time, resolves it), late by a deterministic 0..jitter_s-1 seconds per (device, time)
    as in real exports; ``Valore`` has 4 decimals and a decimal comma, quoted (``"12,8900"``). Numpy-vectorised.

    Parameters
    ----------
    readings : DataFrame
        Readings (``device``, ``parameter``, ``time`` UTC, ``value``).
    path : str or Path
    jitter_s : int
        Seconds of jitter, 0-60 (0: exact times).
    seed : int
        Changes the jitter pattern.
    tz : str
        Time zone of the file.

    Returns
    -------
    Path
    """
    if not 0 <= jitter_s <= 60:
        raise ValueError(f"jitter_s={jitter_s}: use 0 to 60 seconds")
    path = Path(path)
    with path.open("wb") as f:
        f.write(b"Dispositivo,Parametro,Data,Valore\n")
        for a in range(0, len(readings), 1_000_000):
            chunk = readings.iloc[a : a + 1_000_000]
            dev, dev_code, dev_hash = _text_bytes(chunk["device"].to_numpy(object), "device")
            par, par_code, _ = _text_bytes(chunk["parameter"].to_numpy(object), "parameter")
            t = chunk["time"].to_numpy("datetime64[ns]")
            if jitter_s:
                h = dev_hash[dev_code] ^ (t.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(seed)
                t = t + ((h >> np.uint64(29)) % np.uint64(jitter_s)).astype("timedelta64[s]")
            wd, wp = dev.shape[1], par.shape[1]
            rec = np.zeros((len(chunk), wd + wp + 42), dtype=np.uint8)
            rec[:, :wd], rec[:, wd + 1 : wd + 1 + wp] = dev[dev_code], par[par_code]
            rec[:, wd], rec[:, wd + wp + 1], rec[:, wd + wp + 21] = ord(","), ord(","), ord(",")
            _local_time_bytes(t, tz, rec[:, wd + wp + 2 : wd + wp + 21])
            _value_bytes(chunk["value"].to_numpy(float), rec[:, wd + wp + 22 :])
            flat = rec.ravel()
            f.write(flat[flat != 0].data)
    return path


def write_line_protocol(sensors: pd.DataFrame, path: str | Path, *, measurement: str = "trafo") -> Path:
    """Write sensor Readings as InfluxDB line protocol ``trafo,sensor=<id> p_kw=..,q_kvar=.. <ns since epoch>``.

    One line per (sensor, time) with its parameters as fields (NaN left out); tag values are escaped.
    """
    wide = sensors.pivot_table(index=["device", "time"], columns="parameter", values="value", aggfunc="first")
    tag = wide.index.get_level_values("device").astype(str).str.replace(r"([\\, =])", r"\\\1", regex=True)
    cols = [[f"{c}={v!r}" if np.isfinite(v) else "" for v in wide[c].tolist()] for c in wide.columns]
    lines = (
        f"{measurement},sensor={t} {','.join(x for x in fv if x)} {ns}\n"
        for t, ns, *fv in zip(tag, wide.index.get_level_values("time").asi8.tolist(), *cols, strict=True)
    )
    path = Path(path)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_demo_files(data: DemoData, folder: str | Path, *, jitter_s: int = 10) -> dict[str, Path]:
    """Write the demo as a utility would hand it over; returns the paths.

    Parameters
    ----------
    data : DemoData
    folder : str or Path
        Created if missing.
    jitter_s : int
        Seconds of timestamp jitter in the meter export (:func:`write_readings_csv`).

    Returns
    -------
    dict
        ``readings``: ``meter_readings.csv`` (Italian long CSV, Europe/Rome); ``sensors``: ``trafo_sensors.lp`` (line
        protocol, UTC ns); ``meters``: ``meters.csv`` (the Meters table).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seed = int(data.meta.get("seed", 0))
    paths = {
        "readings": write_readings_csv(data.readings, folder / "meter_readings.csv", jitter_s=jitter_s, seed=seed),
        "sensors": write_line_protocol(data.sensors, folder / "trafo_sensors.lp"),
        "meters": folder / "meters.csv",
    }
    data.meters.to_csv(paths["meters"], index_label="meter")
    return paths
