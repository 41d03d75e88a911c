"""Tests of the cleaning filters (twin.timeseries.clean): invariants with hypothesis, edge cases by example."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from twin.timeseries import flags
from twin.timeseries.clean import (
    FILTERS,
    Pipeline,
    clip,
    deaccumulate,
    deadband,
    expand_deadband,
    fill_gaps,
    find_gaps,
    register_filter,
    resample,
)

PROPERTY = settings(max_examples=100, deadline=None, database=None)
NAN = np.nan


def meter_da(values: object, *, start: str = "2024-01-01 00:15", freq: str = "15min") -> xr.DataArray:
    """A ``(time, meter)`` DataArray (a 1-D input gives one meter) on a regular interval-ending time axis."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    time = pd.date_range(start, periods=arr.shape[0], freq=freq)
    meters = [f"m{i}" for i in range(arr.shape[1])]
    return xr.DataArray(arr, dims=("time", "meter"), coords={"time": time, "meter": meters}, attrs={"units": "kWh"})


def q(da: xr.DataArray) -> np.ndarray:
    return da.coords["quality"].values


def has(da: xr.DataArray, bit: np.uint8) -> np.ndarray:
    return (q(da) & bit) != 0


# --- strategies ---------------------------------------------------------------------------------------------------

shapes = st.tuples(st.integers(2, 40), st.integers(1, 3))


@st.composite
def registers(draw: st.DrawFn) -> np.ndarray:
    """Cumulative registers without resets (kWh), with missing readings (NaN)."""
    shape = draw(shapes)
    steps = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 10, allow_nan=False)))
    start = draw(hnp.arrays(np.float64, (1, shape[1]), elements=st.floats(0, 1e4, allow_nan=False)))
    missing = draw(hnp.arrays(np.bool_, shape))
    return np.where(missing, NAN, start + np.cumsum(steps, axis=0))


@st.composite
def series(draw: st.DrawFn, lo: float = -100, hi: float = 100) -> np.ndarray:
    """Values with missing slots (NaN)."""
    shape = draw(shapes)
    return draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False) | st.just(NAN)))


# --- properties ---------------------------------------------------------------------------------------------------


@PROPERTY
@given(r=registers(), gaps=st.sampled_from(["attribute", "spread"]))
def test_deaccumulate_cumsum_restores_register(r: np.ndarray, gaps: str) -> None:
    energy = deaccumulate(meter_da(r), gaps=gaps)
    valid = ~np.isnan(r)
    first = r[np.argmax(valid, axis=0), np.arange(r.shape[1])]
    rebuilt = np.nancumsum(energy.values, axis=0) + first
    np.testing.assert_allclose(rebuilt[valid], r[valid], rtol=1e-9, atol=1e-6)
    assert not has(energy, flags.RESET).any()
    assert (energy.values[~np.isnan(energy.values)] >= -1e-9).all()


@PROPERTY
@given(r=registers(), start=st.floats(900, 1000))
def test_deaccumulate_rollover_matches_unwrapped_register(r: np.ndarray, start: float) -> None:
    true = r - np.where(np.isnan(r), np.inf, r).min(axis=0) + start  # starts just below the wrap at 1000 kWh
    wrapped = true % 1000.0
    energy = deaccumulate(meter_da(wrapped), rollover=1000.0, max_step=10.0)
    np.testing.assert_allclose(energy.values, deaccumulate(meter_da(true)).values, atol=1e-6)
    valid = ~np.isnan(true)
    first = true[np.argmax(valid, axis=0), np.arange(true.shape[1])]
    last = true[true.shape[0] - 1 - np.argmax(valid[::-1], axis=0), np.arange(true.shape[1])]
    wraps = np.nan_to_num(np.floor(last / 1000) - np.floor(first / 1000)).astype(int)
    np.testing.assert_array_equal(has(energy, flags.RESET).sum(axis=0), wraps)


@PROPERTY
@given(x=series(), bounds=st.tuples(st.floats(-50, 50), st.floats(0, 60)), mode=st.sampled_from(["nan", "bound"]))
def test_clip_is_idempotent_and_bounded(x: np.ndarray, bounds: tuple[float, float], mode: str) -> None:
    lo, hi = bounds[0], bounds[0] + bounds[1]
    once = clip(meter_da(x), lo, hi, mode=mode)
    xr.testing.assert_identical(clip(once, lo, hi, mode=mode), once)
    kept = once.values[~np.isnan(once.values)]
    assert ((kept >= lo) & (kept <= hi)).all()
    outside = (x < lo) | (x > hi)
    assert (has(once, flags.CLIPPED) == outside).all()


@PROPERTY
@given(x=series(), width=st.floats(0, 20), relative=st.booleans(), mode=st.sampled_from(["sparse", "hold"]))
def test_deadband_expands_within_width_and_is_idempotent(
    x: np.ndarray, width: float, relative: bool, mode: str
) -> None:
    once = deadband(meter_da(x), width if not relative else width / 20, relative=relative, mode=mode)
    twice = deadband(once, width if not relative else width / 20, relative=relative, mode=mode)
    xr.testing.assert_identical(twice, once)
    expanded = expand_deadband(once)
    valid = ~np.isnan(x)
    assert not np.isnan(expanded.values[valid]).any()
    band = width if not relative else width / 20 * np.abs(expanded.values[valid])
    assert (np.abs(expanded.values[valid] - x[valid]) <= band + 1e-12).all()
    if mode == "sparse":
        assert (has(once, flags.HELD) == (valid & np.isnan(once.values))).all()
    else:
        np.testing.assert_array_equal(once.values, expanded.values)


@PROPERTY
@given(
    e=series(0, 10),
    offset=st.integers(0, 7),
    freq=st.sampled_from(["30min", "1h", "2h"]),
    closed=st.sampled_from(["right", "left"]),
)
def test_resample_energy_conserves_totals(e: np.ndarray, offset: int, freq: str, closed: str) -> None:
    da = meter_da(e, start=str(pd.Timestamp("2024-01-01") + offset * pd.Timedelta("15min")))
    down = resample(da, freq, closed=closed, label=closed)
    np.testing.assert_allclose(np.nansum(down.values, axis=0), np.nansum(e, axis=0), atol=1e-9)
    complete = ~has(down, flags.RESAMPLED) & ~np.isnan(down.values)
    bins = (da.time.dt.ceil(freq) if closed == "right" else da.time.dt.floor(freq)).values
    for j in range(e.shape[1]):
        in_complete = np.isin(bins, down.time.values[complete[:, j]])
        np.testing.assert_allclose(down.values[complete[:, j], j].sum(), np.nansum(e[in_complete, j]), atol=1e-9)
    up = resample(down, "15min", closed=closed, label=closed, data_freq=freq)
    np.testing.assert_allclose(np.nansum(up.values, axis=0), np.nansum(e, axis=0), atol=1e-9)


@PROPERTY
@given(x=series(), limit=st.integers(1, 5), method=st.sampled_from(["linear", "ffill", "zero", "profile"]))
def test_fill_gaps_respects_limit_and_flags(x: np.ndarray, limit: int, method: str) -> None:
    da = meter_da(x)
    filled = fill_gaps(da, method=method, limit=limit)
    missing = np.isnan(x)
    np.testing.assert_array_equal(filled.values[~missing], x[~missing])
    assert (has(filled, flags.FILLED) == (missing & ~np.isnan(filled.values))).all()
    gaps = find_gaps(da)
    assert gaps["n_missing"].sum() == missing.sum()
    for row in gaps.itertuples():
        cells = filled.sel(meter=row.meter, time=slice(row.start, row.end)).values
        assert len(cells) == row.n_missing
        if row.n_missing > limit:
            assert np.isnan(cells).all()


# --- deaccumulate -------------------------------------------------------------------------------------------------


def test_deaccumulate_counter_reset_restarts_from_zero() -> None:
    r = meter_da([100.0, 101.0, 102.5, 0.4, 1.4])
    energy = deaccumulate(r)
    np.testing.assert_allclose(energy.values[:, 0], [NAN, 1.0, 1.5, 0.4, 1.0])
    assert has(energy, flags.RESET)[:, 0].tolist() == [False, False, False, True, False]
    assert has(energy, flags.MISSING)[:, 0].tolist() == [True, False, False, False, False]


def test_deaccumulate_rollover() -> None:
    r = meter_da([99998.5, 99999.5, 0.3, 1.0])
    energy = deaccumulate(r, rollover=99999.9, max_step=5)
    np.testing.assert_allclose(energy.values[:, 0], [NAN, 1.0, 0.7, 0.7])
    assert has(energy, flags.RESET)[:, 0].tolist() == [False, False, True, False]


def test_deaccumulate_implausible_backwards_step_is_nan_and_reset() -> None:
    energy = deaccumulate(meter_da([1000.0, 1001.0, 995.0, 996.0]), rollover=99999.9)
    np.testing.assert_allclose(energy.values[:, 0], [NAN, 1.0, NAN, 1.0])
    assert has(energy, flags.RESET)[:, 0].tolist() == [False, False, True, False]


def test_deaccumulate_max_step_flags_suspect_and_bounds_restart() -> None:
    energy = deaccumulate(meter_da([0.0, 1.0, 50.0, 51.0, 40.0]), max_step=5)
    np.testing.assert_allclose(energy.values[:, 0], [NAN, 1.0, 49.0, 1.0, NAN])
    assert has(energy, flags.SUSPECT)[:, 0].tolist() == [False, False, True, False, False]
    assert has(energy, flags.RESET)[:, 0].tolist() == [False, False, False, False, True]


def test_deaccumulate_gap_attributed_or_spread() -> None:
    r = meter_da([10.0, NAN, NAN, 13.0, 14.0])
    attributed = deaccumulate(r)
    np.testing.assert_allclose(attributed.values[:, 0], [NAN, NAN, NAN, 3.0, 1.0])
    assert q(attributed)[:, 0].tolist() == [flags.MISSING, flags.MISSING, flags.MISSING, flags.RESAMPLED, 0]
    spread = deaccumulate(r, gaps="spread")
    np.testing.assert_allclose(spread.values[:, 0], [NAN, 1.0, 1.0, 1.0, 1.0])
    gap = flags.MISSING | flags.FILLED | flags.RESAMPLED
    assert q(spread)[:, 0].tolist() == [flags.MISSING, gap, gap, flags.RESAMPLED, 0]


def test_deaccumulate_carries_flags_of_both_readings() -> None:
    r = meter_da([10.0, 11.0, 12.0]).assign_coords(quality=(("time", "meter"), [[0], [flags.CONFLICT], [0]]))
    energy = deaccumulate(r)
    assert q(energy)[:, 0].tolist() == [flags.MISSING, flags.CONFLICT, flags.CONFLICT]


def test_filters_do_not_modify_their_input() -> None:
    r = meter_da([[10.0, 5.0], [NAN, 6.0], [12.0, 0.5], [13.0, NAN]])
    before = r.copy(deep=True)
    outputs = [
        deaccumulate(r, gaps="spread"),
        clip(r, 0, 11, mode="bound"),
        deadband(r, 1.5),
        fill_gaps(r),
        resample(r, "1h"),
        Pipeline("p", [("deaccumulate", {}), ("clip", {"hi": 1})]).apply(r),
    ]
    xr.testing.assert_identical(r, before)
    assert "quality" not in r.coords
    assert all("quality" in out.coords for out in outputs)


@pytest.mark.parametrize(
    "make",
    [
        lambda v: xr.DataArray(v[:, 0], dims="time", coords={"time": meter_da(v).time}),
        lambda v: meter_da(v).rename(meter="sensor"),
        lambda v: meter_da(v).transpose("meter", "time"),
        lambda v: meter_da(v).expand_dims(phase=["a", "b"], axis=2),
    ],
    ids=["time-only", "sensor", "meter-first", "three-dims"],
)
def test_filters_keep_dims_of_any_layout(make: object) -> None:
    values = np.array([[10.0, 20.0], [11.0, NAN], [NAN, 22.0], [13.5, 23.0]])
    da = make(values)  # type: ignore[operator]
    energy = deaccumulate(da)
    assert energy.dims == da.dims
    ref = deaccumulate(meter_da(values)).values[:, 0]
    first = energy.transpose("time", ...).values.reshape(4, -1)[:, 0]
    np.testing.assert_allclose(first, ref)
    assert resample(energy, "1h").dims == da.dims
    assert clip(energy, 0, 1).dims == da.dims


@pytest.mark.parametrize("shape", [(0, 2), (3, 0)], ids=["no-time", "no-meter"])
def test_filters_accept_empty_blocks(shape: tuple[int, int]) -> None:
    da = meter_da(np.ones(shape)) if shape[0] else meter_da(np.ones((1, shape[1]))).isel(time=slice(0, 0))
    for name, params in [
        ("deaccumulate", {"gaps": "spread"}),
        ("clip", {"lo": 0, "hi": 1}),
        ("deadband", {"width": 1}),
        ("expand_deadband", {}),
        ("fill_gaps", {"limit": 2}),
        ("resample", {"freq": "1h", "data_freq": "15min"}),
    ]:
        out = FILTERS[name](da, **params)
        assert out.sizes["meter"] == da.sizes["meter"], name
    assert len(find_gaps(da)) == 0


# --- clip, deadband -----------------------------------------------------------------------------------------------


def test_clip_modes_and_per_meter_bounds() -> None:
    x = meter_da([[-1.0, 5.0], [3.0, 60.0], [NAN, 20.0]])
    nan = clip(x, 0, 50)
    np.testing.assert_array_equal(nan.values, [[NAN, 5.0], [3.0, NAN], [NAN, 20.0]])
    assert q(nan).tolist() == [[flags.CLIPPED, 0], [0, flags.CLIPPED], [flags.MISSING, 0]]
    bound = clip(x, 0, 50, mode="bound")
    np.testing.assert_array_equal(bound.values, [[0.0, 5.0], [3.0, 50.0], [NAN, 20.0]])
    hi = xr.DataArray([2.0, 100.0], dims="meter", coords={"meter": ["m0", "m1"]})
    per_meter = clip(x, hi=hi)
    np.testing.assert_array_equal(per_meter.values, [[-1.0, 5.0], [NAN, 60.0], [NAN, 20.0]])
    reordered = clip(x, hi=hi.isel(meter=[1, 0]))
    xr.testing.assert_identical(reordered, per_meter)
    with pytest.raises(ValueError, match=r"hi has no value for meter \['m1'\]"):
        clip(x, hi=hi.isel(meter=[0]))
    with pytest.raises(ValueError, match=r"lo has dims \['phase'\]"):
        clip(x, lo=xr.DataArray([0.0], dims="phase"))


def test_deadband_sparse_hold_and_expand() -> None:
    x = meter_da([1.0, 1.2, 1.6, NAN, 1.5, 3.0, 2.95])
    sparse = deadband(x, 0.5)
    np.testing.assert_array_equal(sparse.values[:, 0], [1.0, NAN, 1.6, NAN, NAN, 3.0, NAN])
    assert has(sparse, flags.HELD)[:, 0].tolist() == [False, True, False, False, True, False, True]
    hold = deadband(x, 0.5, mode="hold")
    np.testing.assert_array_equal(hold.values[:, 0], [1.0, 1.0, 1.6, NAN, 1.6, 3.0, 3.0])
    expanded = expand_deadband(sparse)
    np.testing.assert_array_equal(expanded.values, hold.values)
    assert find_gaps(sparse)["n_missing"].tolist() == [1]  # held slots are not gaps
    relative = deadband(meter_da([100.0, 104.0, 106.0]), 0.05, relative=True)
    np.testing.assert_array_equal(relative.values[:, 0], [100.0, NAN, 106.0])


# --- resample -----------------------------------------------------------------------------------------------------


def test_resample_interval_ending_energy_power_state() -> None:
    e = meter_da([1.0, 2.0, 3.0, 4.0, 5.0, NAN, 7.0, 8.0], start="2024-01-01 00:15")
    hourly = resample(e, "1h")
    assert hourly.indexes["time"].equals(pd.to_datetime(["2024-01-01 01:00", "2024-01-01 02:00"]))
    np.testing.assert_allclose(hourly.values[:, 0], [10.0, 20.0])
    assert q(hourly)[:, 0].tolist() == [0, flags.RESAMPLED]
    np.testing.assert_allclose(resample(e, "1h", kind="power").values[:, 0], [2.5, 20.0 / 3])
    np.testing.assert_allclose(resample(e, "1h", kind="state").values[:, 0], [4.0, 8.0])
    strict = resample(e, "1h", min_count=4)
    np.testing.assert_array_equal(strict.values[:, 0], [10.0, NAN])
    assert q(strict)[1, 0] == flags.RESAMPLED | flags.MISSING


def test_resample_partial_edges_and_interval_beginning() -> None:
    e = meter_da([1.0, 2.0, 3.0], start="2024-01-01 00:45")
    right = resample(e, "1h")
    assert right.time.dt.strftime("%H:%M").values.tolist() == ["01:00", "02:00"]
    np.testing.assert_allclose(right.values[:, 0], [3.0, 3.0])
    assert has(right, flags.RESAMPLED).all()
    left = resample(e, "1h", closed="left", label="left")
    assert left.time.dt.strftime("%H:%M").values.tolist() == ["00:00", "01:00"]
    np.testing.assert_allclose(left.values[:, 0], [1.0, 5.0])


def test_resample_upsampling_splits_energy_and_repeats_power() -> None:
    e = meter_da([3.0, 6.0], start="2024-01-01 01:00", freq="1h")
    up = resample(e, "20min")
    assert up.time.dt.strftime("%H:%M").values.tolist() == ["00:20", "00:40", "01:00", "01:20", "01:40", "02:00"]
    np.testing.assert_allclose(up.values[:, 0], [1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    assert (q(up) == flags.RESAMPLED).all()
    np.testing.assert_allclose(resample(e, "20min", kind="power").values[:, 0], [3, 3, 3, 6, 6, 6])
    state = resample(e, "30min", kind="state")
    np.testing.assert_allclose(state.values[:, 0], [3.0, 3.0, 6.0])
    xr.testing.assert_allclose(resample(up, "1h").drop_vars("quality"), e)


def test_resample_fills_absent_stamps_with_nan() -> None:
    e = meter_da([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).isel(time=[0, 1, 2, 3, 6, 7])
    out = resample(e, "30min")
    np.testing.assert_allclose(out.values[:, 0], [3.0, 7.0, NAN, 15.0])
    assert q(out)[:, 0].tolist() == [0, 0, flags.MISSING, 0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"freq": "25min"}, "neither a multiple nor a divisor"),
        ({"freq": "MS"}, "not a fixed duration"),
        ({"freq": "1h", "kind": "mean"}, "kind='mean'"),
        ({"freq": "1h", "closed": "right", "label": "left"}, "closed='right', label='left'"),
        ({"freq": "1h", "min_count": 0}, "min_count=0"),
    ],
)
def test_resample_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resample(meter_da([1.0, 2.0, 3.0, 4.0]), **kwargs)  # type: ignore[arg-type]


# --- gaps ---------------------------------------------------------------------------------------------------------


def test_find_gaps_lists_nan_runs_and_absent_stamps() -> None:
    da = meter_da([[1.0, 1.0], [NAN, 1.0], [NAN, 1.0], [1.0, 1.0], [1.0, NAN], [1.0, 1.0]]).isel(time=[0, 1, 2, 4, 5])
    gaps = find_gaps(da)
    assert list(gaps.columns) == ["meter", "start", "end", "n_missing"]
    expected = [
        ("m0", "2024-01-01 00:30", "2024-01-01 01:00", 3),
        ("m1", "2024-01-01 01:00", "2024-01-01 01:15", 2),
    ]
    assert [(r.meter, r.start, r.end, r.n_missing) for r in gaps.itertuples()] == [
        (m, pd.Timestamp(s), pd.Timestamp(e), n) for m, s, e, n in expected
    ]
    assert find_gaps(da, freq="5min")["n_missing"].sum() > gaps["n_missing"].sum()
    with pytest.raises(ValueError, match="off the 0 days 00:10:00 grid"):
        find_gaps(da, freq="10min")


def test_fill_gaps_methods() -> None:
    x = meter_da([NAN, 1.0, NAN, NAN, 4.0, NAN])
    np.testing.assert_allclose(fill_gaps(x).values[:, 0], [NAN, 1.0, 2.0, 3.0, 4.0, NAN])
    np.testing.assert_allclose(fill_gaps(x, method="ffill").values[:, 0], [NAN, 1.0, 1.0, 1.0, 4.0, 4.0])
    np.testing.assert_allclose(fill_gaps(x, method="zero").values[:, 0], [0.0, 1.0, 0.0, 0.0, 4.0, 0.0])
    limited = fill_gaps(x, method="zero", limit=1)
    np.testing.assert_allclose(limited.values[:, 0], [0.0, 1.0, NAN, NAN, 4.0, 0.0])
    assert q(limited)[:, 0].tolist() == [flags.MISSING | flags.FILLED, 0, 1, 1, 0, flags.MISSING | flags.FILLED]


def test_fill_gaps_profile_uses_time_of_day_mean() -> None:
    day = np.arange(96, dtype=np.float64)
    x = meter_da(np.concatenate([day, day + 2.0, day + 4.0]), start="2024-01-01 00:00")
    x[100] = NAN
    filled = fill_gaps(x, method="profile")
    assert filled.values[100, 0] == pytest.approx((4.0 + 8.0) / 2)
    assert filled.quality.values[100, 0] == flags.MISSING | flags.FILLED


def test_fill_gaps_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="method='cubic'"):
        fill_gaps(meter_da([1.0, NAN, 2.0]), method="cubic")
    with pytest.raises(ValueError, match="limit=0"):
        fill_gaps(meter_da([1.0, NAN, 2.0]), limit=0)


# --- input checks -------------------------------------------------------------------------------------------------


def test_filters_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"clip: .* no 'time' dim"):
        clip(xr.DataArray([1.0, 2.0], dims="t"), 0, 1)
    shuffled = meter_da([1.0, 2.0, 3.0]).isel(time=[0, 2, 1])
    with pytest.raises(ValueError, match="strictly increasing; position 2"):
        fill_gaps(shuffled)
    with pytest.raises(ValueError, match="lo must not exceed hi"):
        clip(meter_da([1.0]), 2, 1)
    with pytest.raises(ValueError, match="gaps='fill'"):
        deaccumulate(meter_da([1.0]), gaps="fill")
    with pytest.raises(ValueError, match="rollover=-1"):
        deaccumulate(meter_da([1.0]), rollover=-1)
    with pytest.raises(ValueError, match="width=-1"):
        deadband(meter_da([1.0]), -1)
    with pytest.raises(ValueError, match="mode='drop'"):
        deadband(meter_da([1.0]), 1, mode="drop")
    with pytest.raises(ValueError, match="must be numeric"):
        clip(meter_da([1.0]).astype(str), 0, 1)


# --- pipeline -----------------------------------------------------------------------------------------------------


def test_pipeline_round_trip_and_apply_records_itself() -> None:
    pipe = Pipeline("daily", [("deaccumulate", {"gaps": "spread"}), ("clip", {"lo": 0, "hi": 50})])
    text = pipe.to_json()
    assert Pipeline.from_json(text) == pipe
    assert json.loads(text)["steps"][1] == {"filter": "clip", "params": {"lo": 0, "hi": 50}}
    raw = meter_da([10.0, 11.0, NAN, 200.0, 201.0])
    out = pipe.apply(raw)
    expected = clip(deaccumulate(raw, gaps="spread"), 0, 50)
    xr.testing.assert_identical(out.drop_attrs(), expected.drop_attrs())
    assert Pipeline.from_json(out.attrs["pipeline"]) == pipe
    assert out.attrs["units"] == "kWh"
    assert "pipeline" not in raw.attrs


def test_pipeline_records_chain_that_replays() -> None:
    raw = meter_da([10.0, 11.0, NAN, 13.0, 14.0, 15.0, 16.0, 17.0])
    first = Pipeline("energy", [("deaccumulate", {})]).apply(raw)
    second = Pipeline("hourly", [("resample", {"freq": "1h"})]).apply(first)
    record = Pipeline.from_json(second.attrs["pipeline"])
    assert record.name == "energy+hourly"
    assert [name for name, _ in record.steps] == ["deaccumulate", "resample"]
    xr.testing.assert_identical(record.apply(raw), second)


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ([("smooth", {})], r"step 0 'smooth': unknown filter"),
        ([("clip", {"low": 0})], r"step 0 'clip': bad parameters .*low.*accepted: lo, hi, mode"),
        ([("deaccumulate", {}), ("resample", {})], r"step 1 'resample': bad parameters .*freq"),
        ([("clip", {"lo": np.int32(1)})], r"step 0 'clip': parameters must be plain JSON"),
        ([("clip",)], r"step 0: expected a \(filter name, params dict\) pair"),
    ],
)
def test_pipeline_rejects_bad_steps(steps: list[tuple[object, ...]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Pipeline("p", steps)  # type: ignore[arg-type]


def test_pipeline_apply_names_failing_step() -> None:
    pipe = Pipeline("p", [("clip", {"lo": 0}), ("clip", {"mode": "wrap"})])
    with pytest.raises(ValueError, match=r"pipeline 'p', step 1 'clip': clip: mode='wrap'"):
        pipe.apply(meter_da([1.0, 2.0]))
    with pytest.raises(ValueError, match="not a recorded pipeline"):
        pipe.apply(meter_da([1.0]).assign_attrs(pipeline="{}"))
    with pytest.raises(ValueError, match="not JSON"):
        Pipeline.from_json("{oops")


def test_register_filter_adds_to_registry() -> None:
    def scale(da: xr.DataArray, *, factor: float = 1.0) -> xr.DataArray:
        return da * factor

    register_filter("test_scale", scale)
    try:
        out = Pipeline("p", [("test_scale", {"factor": 2.0})]).apply(meter_da([1.0, 2.0]))
        np.testing.assert_allclose(out.values[:, 0], [2.0, 4.0])
        with pytest.raises(ValueError, match="already registered"):
            register_filter("clip", scale)
    finally:
        FILTERS.pop("test_scale")
