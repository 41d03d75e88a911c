"""Writers and readers of power-flow results, on synthetic datasets shaped like ``solvers.run_pf`` output."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from twin.results_io import READABLE_SUFFIXES, WRITABLE_SUFFIXES, read_results, to_json_dict, write_results

BUS_VARS = ["vm_pu", "va_deg", "p_mw", "q_mvar"]
BRANCH_VARS = ["p_from_mw", "q_from_mvar", "p_to_mw", "q_to_mvar", "pl_mw", "ql_mvar"]
BRANCH_VARS += ["i_from_ka", "i_to_ka", "i_ka", "loading_pct"]
BUS_IDS = ["b0", "b1", "bus 2"]
BRANCH_IDS = ["line/0", "trafo/0", "trafo3w/1/hv"]


def build_results(n_time: int | None) -> xr.Dataset:
    """Return results with string ids, a NaN voltage (de-energised bus ``bus 2``) and unit attrs."""
    rng = np.random.default_rng(7)
    lead = () if n_time is None else (n_time,)
    lead_dims = () if n_time is None else ("time",)
    data = {name: ((*lead_dims, "bus"), rng.random((*lead, len(BUS_IDS)))) for name in BUS_VARS}
    data |= {name: ((*lead_dims, "branch"), rng.random((*lead, len(BRANCH_IDS)))) for name in BRANCH_VARS}
    data["vm_pu"][1][..., 2] = np.nan
    data["loading_pct"][1][..., 1] = np.inf  # unrated branch
    data["p_loss_mw"] = (lead_dims, rng.random(lead))
    data["q_loss_mvar"] = (lead_dims, rng.random(lead))
    data["iterations"] = (lead_dims, np.full(lead, 3, dtype=np.int64))
    data["converged"] = (lead_dims, np.ones(lead, dtype=bool))
    coords = {
        "bus": np.array(BUS_IDS, dtype=object),
        "branch": np.array(BRANCH_IDS, dtype=object),
        "branch_kind": ("branch", np.array(["line", "trafo", "trafo3w"], dtype=object)),
    }
    if n_time is not None:
        coords["time"] = pd.date_range("2016-01-01", periods=n_time, freq="15min")
    ds = xr.Dataset(data, coords=coords)
    ds["vm_pu"].attrs["units"] = "pu"
    ds["p_mw"].attrs["units"] = "MW"
    ds.attrs.update({"grid": "synthetic", "solve_time_s": 0.25, "compile_time_s": 0.01})
    return ds


@pytest.fixture
def snapshot() -> xr.Dataset:
    return build_results(None)


@pytest.fixture
def series() -> xr.Dataset:
    return build_results(4)


@pytest.mark.parametrize("suffix", READABLE_SUFFIXES)
@pytest.mark.parametrize("n_time", [None, 4])
def test_binary_round_trip_keeps_values_ids_and_attrs(tmp_path: Path, suffix: str, n_time: int | None) -> None:
    ds = build_results(n_time)
    written = write_results(ds, tmp_path / f"r{suffix}")
    assert written == [tmp_path / f"r{suffix}"]
    back = read_results(written[0])
    xr.testing.assert_identical(back, ds)
    assert back["bus"].dtype == object
    assert back["branch_kind"].dtype == object
    assert back["branch"].values.tolist() == BRANCH_IDS
    assert back["converged"].dtype == bool


def test_zarr_overwrites_an_existing_store_and_leaves_no_temporaries(tmp_path: Path, snapshot: xr.Dataset) -> None:
    target = tmp_path / "r.zarr"
    write_results(snapshot.isel(bus=[0]), target)
    write_results(snapshot, target)
    assert read_results(target).sizes["bus"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["r.zarr"]


def test_interrupted_zarr_write_leaves_no_store(
    tmp_path: Path, snapshot: xr.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_to_zarr = xr.Dataset.to_zarr

    def write_then_fail(self: xr.Dataset, store: Path, **kwargs: object) -> None:
        real_to_zarr(self, store, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_zarr", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        write_results(snapshot, tmp_path / "r.zarr")
    assert list(tmp_path.iterdir()) == []


def test_zarr_refuses_to_replace_a_directory_that_is_not_a_store(tmp_path: Path, snapshot: xr.Dataset) -> None:
    target = tmp_path / "data.zarr"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        write_results(snapshot, target)
    assert (target / "keep.txt").read_text() == "mine"


def test_json_has_bus_branch_summary_and_null_for_nan(tmp_path: Path, snapshot: xr.Dataset) -> None:
    (path,) = write_results(snapshot, tmp_path / "r.json")
    doc = json.loads(path.read_text())
    assert set(doc) == {"bus", "branch", "summary", "attrs"}
    assert set(doc["bus"]) == set(BUS_VARS)
    assert set(doc["branch"]) == {"branch_kind", *BRANCH_VARS}
    assert doc["bus"]["vm_pu"]["bus 2"] is None
    assert doc["bus"]["vm_pu"]["b0"] == pytest.approx(float(snapshot["vm_pu"].sel(bus="b0")))
    assert doc["branch"]["loading_pct"]["trafo/0"] is None  # inf is not JSON either
    assert doc["branch"]["branch_kind"]["trafo3w/1/hv"] == "trafo3w"
    assert doc["summary"]["converged"] is True
    assert doc["summary"]["iterations"] == 3
    assert doc["attrs"]["grid"] == "synthetic"


def test_json_of_a_series_has_lists_over_time(series: xr.Dataset) -> None:
    doc = to_json_dict(series)
    assert doc["time"][:2] == ["2016-01-01T00:00:00", "2016-01-01T00:15:00"]
    assert len(doc["bus"]["vm_pu"]["b1"]) == 4
    assert doc["bus"]["vm_pu"]["bus 2"] == [None] * 4
    assert doc["branch"]["branch_kind"]["line/0"] == ["line"] * 4
    assert doc["summary"]["converged"] == [True] * 4


def test_csv_writes_bus_branch_and_summary_tables(tmp_path: Path, snapshot: xr.Dataset) -> None:
    written = write_results(snapshot, tmp_path / "r.csv")
    assert [p.name for p in written] == ["r_bus.csv", "r_branch.csv", "r_summary.csv"]
    bus = pd.read_csv(tmp_path / "r_bus.csv")
    branch = pd.read_csv(tmp_path / "r_branch.csv")
    summary = pd.read_csv(tmp_path / "r_summary.csv")
    assert list(bus.columns) == ["bus", *BUS_VARS]
    assert bus["bus"].tolist() == BUS_IDS
    assert np.isnan(bus.loc[2, "vm_pu"])
    assert list(branch.columns) == ["branch", "branch_kind", *BRANCH_VARS]
    assert branch["branch"].tolist() == BRANCH_IDS
    assert list(summary.columns) == ["p_loss_mw", "q_loss_mvar", "iterations", "converged"]
    assert len(summary) == 1


def test_csv_of_a_series_is_long_format_with_time_first(tmp_path: Path, series: xr.Dataset) -> None:
    write_results(series, tmp_path / "ts.csv")
    branch = pd.read_csv(tmp_path / "ts_branch.csv", parse_dates=["time"])
    summary = pd.read_csv(tmp_path / "ts_summary.csv", parse_dates=["time"])
    assert list(branch.columns[:3]) == ["time", "branch", "branch_kind"]
    assert len(branch) == 4 * len(BRANCH_IDS)
    row = branch[(branch["branch"] == "trafo/0") & (branch["time"] == series["time"].values[2])]
    expected = float(series["p_from_mw"].isel(time=2).sel(branch="trafo/0"))
    assert row["p_from_mw"].item() == pytest.approx(expected)
    assert summary["time"].tolist() == list(series["time"].to_index())


def test_unknown_suffix_names_it_and_the_accepted_ones(tmp_path: Path, snapshot: xr.Dataset) -> None:
    with pytest.raises(ValueError, match=r"'\.txt'.*\.zarr, \.nc, \.csv, \.json"):
        write_results(snapshot, tmp_path / "r.txt")
    assert WRITABLE_SUFFIXES == (".zarr", ".nc", ".csv", ".json")
    assert list(tmp_path.iterdir()) == []


def test_read_rejects_export_formats_and_missing_files(tmp_path: Path, snapshot: xr.Dataset) -> None:
    (path,) = write_results(snapshot, tmp_path / "r.json")
    with pytest.raises(ValueError, match=r"\.zarr, \.nc"):
        read_results(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.nc"):
        read_results(tmp_path / "missing.nc")


def test_tables_reject_variables_with_two_element_dims(tmp_path: Path, snapshot: xr.Dataset) -> None:
    ds = snapshot.assign(ptdf=(("branch", "bus"), np.zeros((3, 3))))
    with pytest.raises(ValueError, match="'ptdf'"):
        write_results(ds, tmp_path / "r.csv")
