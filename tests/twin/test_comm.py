"""Communication layer: tables, validation with file/line, file round trip, data usage and the generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import twin
from twin.comm import (
    PLANS_MB,
    CommLayer,
    data_usage,
    generate_comm,
    read_comm,
    sims_over_plan,
    write_comm,
)
from twin.graph import MultiLayerGraph
from twin.grid import Grid


@pytest.fixture(scope="module")
def lv_grid() -> Grid:
    grid = twin.load("1-LV-rural1--0-sw")
    grid.sgen["controllable"] = True
    return grid


@pytest.fixture(scope="module")
def mv_grid() -> Grid:
    grid = twin.load("cigre_mv")
    grid.load["controllable"] = grid.load.index.isin(["load/0", "load/5"])
    return grid


def usage_layer() -> CommLayer:
    """Gateway G (SIM s1, 10 MB) behind which concentrator D serves three 15-min meters; meter X has SIM s2."""
    dev = pd.DataFrame(
        {
            "kind": ["headend", "gateway", "concentrator", "meter", "meter", "meter", "meter"],
            "element": ["", "", "", "l1", "l2", "l3", "l4"],
            "element_kind": ["", "", "", "load", "load", "load", "load"],
            "interval_min": [np.nan, np.nan, np.nan, 15.0, 15.0, 15.0, 5.0],
            "bytes_per_reading": [np.nan, np.nan, np.nan, 64.0, 64.0, 64.0, 100.0],
            "sim": ["", "s1", "", "", "", "", "s2"],
        },
        index=["H", "G", "D", "M1", "M2", "M3", "X"],
    )
    links = pd.DataFrame(
        {
            "a": ["H", "G", "D", "D", "D", "H"],
            "b": ["G", "D", "M1", "M2", "M3", "X"],
            "technology": ["cellular", "ethernet", "plc", "plc", "plc", "cellular"],
            "latency_ms": [80.0, 1.0, 400.0, 400.0, 400.0, 70.0],
            "bandwidth_kbps": [1000.0, 1e5, 20.0, 20.0, 20.0, 1000.0],
        },
        index=["l-HG", "l-GD", "l-D1", "l-D2", "l-D3", "l-HX"],
    )
    sims = pd.DataFrame({"data_plan_mb_month": [10.0, 0.5], "operator": ["op", "op"]}, index=["s1", "s2"])
    return CommLayer(dev, links, sims)


# -- data usage -------------------------------------------------------------------------------------
def test_data_usage_arithmetic() -> None:
    usage = data_usage(usage_layer(), days=30, overhead_pct=50.0, keepalive_kb_day=10.0)
    assert usage.index.tolist() == ["s1", "s2"]
    s1 = usage.loc["s1"]
    assert s1["device"] == "G"
    assert s1["meters"] == 3
    assert s1["readings_per_day"] == 3 * 96
    assert s1["payload_mb"] == pytest.approx(30 * 3 * 96 * 64 / 1e6)  # 0.55296
    assert s1["usage_mb"] == pytest.approx(0.55296 * 1.5 + 30 * 10e3 / 1e6)
    assert s1["usage_pct"] == pytest.approx(100 * s1["usage_mb"] / 10.0)
    assert not s1["over_plan"]
    s2 = usage.loc["s2"]
    assert s2["usage_mb"] == pytest.approx(30 * 288 * 100 / 1e6 * 1.5 + 0.3)  # 1.596 MB > 0.5 MB
    assert s2["over_plan"]
    assert sims_over_plan(usage_layer()).index.tolist() == ["s2"]
    bare = data_usage(usage_layer(), days=31, overhead_pct=0.0, keepalive_kb_day=0.0)
    assert bare.loc["s2", "usage_mb"] == pytest.approx(31 * 288 * 100 / 1e6)


def test_data_usage_follows_routing() -> None:
    layer = usage_layer()
    layer.links.loc["l-D3", "status"] = "down"
    assert data_usage(layer).loc["s1", "meters"] == 3  # nominal topology: all links
    assert data_usage(layer, statuses=("up",)).loc["s1", "meters"] == 2


def test_reachability_latency_and_path() -> None:
    reach = usage_layer().reachability()
    assert reach["reachable"].all()
    assert reach.loc["M1", "latency_ms"] == pytest.approx(481.0)
    assert reach.loc["M1", "upstream"] == "D"
    assert reach.loc["M1", "gateway"] == "G"
    assert reach.loc["X", "sim_device"] == "X"
    assert reach.loc["H", "upstream"] == ""
    cut = usage_layer().reachability(without=["l-GD"])
    assert cut.loc[["D", "M1", "M2", "M3"], "reachable"].sum() == 0
    assert np.isnan(cut.loc["M1", "latency_ms"])


# -- in-memory validation ---------------------------------------------------------------------------
def test_layer_rejects_inconsistent_tables() -> None:
    layer = usage_layer()
    dev = layer.devices.copy()
    dev.loc["M1", "kind"] = "modem"
    with pytest.raises(ValueError, match=r"devices 'M1': kind 'modem' must be one of"):
        CommLayer(dev, layer.links, layer.sims)
    links = layer.links.copy()
    links.loc["l-D1", "b"] = "M9"
    with pytest.raises(ValueError, match=r"links 'l-D1': b 'M9' is not a device id; add the device"):
        CommLayer(layer.devices, links, layer.sims)
    dev = layer.devices.copy()
    dev.loc["X", "sim"] = ""
    with pytest.raises(ValueError, match=r"links 'l-HX': a cellular link needs a device with a SIM"):
        CommLayer(dev, layer.links, layer.sims)
    dev = layer.devices.copy()
    dev.loc["M2", "interval_min"] = np.nan
    with pytest.raises(ValueError, match=r"devices 'M2': meter interval_min nan must be > 0"):
        CommLayer(dev, layer.links, layer.sims)


# -- files ----------------------------------------------------------------------------------------
def test_file_round_trip(tmp_path: Path, lv_grid: Grid) -> None:
    layer = generate_comm(lv_grid, seed=4, plc_share=0.6)
    folder = write_comm(layer, tmp_path / "comm")
    assert sorted(p.name for p in folder.iterdir()) == ["comm.json", "devices.csv", "links.csv", "sims.csv"]
    back = read_comm(folder, lv_grid)
    for table in ("devices", "links", "sims"):
        pd.testing.assert_frame_equal(getattr(back, table), getattr(layer, table))
    assert back.name == layer.name
    assert back.meta == layer.meta
    pd.testing.assert_frame_equal(read_comm(folder / "comm.json").links, layer.links)


def _edit(file: Path, old: str, new: str) -> int:
    """Replace the first ``old`` in ``file``; return its 1-based line number."""
    lines = file.read_text().splitlines()
    pos = next(i for i, line in enumerate(lines) if old in line)
    lines[pos] = lines[pos].replace(old, new, 1)
    file.write_text("\n".join(lines) + "\n")
    return pos + 1


def test_file_errors_name_file_line_and_id(tmp_path: Path, lv_grid: Grid) -> None:
    folder = write_comm(generate_comm(lv_grid, seed=0, plc_share=1.0), tmp_path / "c")
    line = _edit(folder / "links.csv", ",dc/trafo/0,gw/trafo/0,", ",dc/trafo/9,gw/trafo/0,")
    with pytest.raises(ValueError, match=rf"links\.csv:{line}: links '.*': a 'dc/trafo/9' is not a device id"):
        read_comm(folder)
    _edit(folder / "links.csv", ",dc/trafo/9,gw/trafo/0,", ",dc/trafo/0,gw/trafo/0,")
    line = _edit(folder / "devices.csv", "meter,load/3,load", "meter,load/99,load")
    read_comm(folder)  # without a grid the reference cannot be checked
    with pytest.raises(
        ValueError, match=rf"devices\.csv:{line}: devices 'meter/load/3': element load 'load/99' is not"
    ):
        read_comm(folder, lv_grid)


def test_file_errors_for_numbers_columns_and_manifest(tmp_path: Path, lv_grid: Grid) -> None:
    folder = write_comm(generate_comm(lv_grid, seed=0, plc_share=1.0), tmp_path / "c")
    links = pd.read_csv(folder / "links.csv", dtype=str, keep_default_na=False)
    links.loc[2, "latency_ms"] = "fast"
    links.loc[4, "status"] = "broken"
    links.to_csv(folder / "links.csv", index=False)
    with pytest.raises(ValueError, match=r"links\.csv:4: links '.*': latency_ms 'fast' is not a number") as err:
        read_comm(folder)
    links.loc[2, "latency_ms"] = "3.5"
    links.to_csv(folder / "links.csv", index=False)
    with pytest.raises(ValueError, match=r"links\.csv:6: links '.*': status 'broken' must be one of"):
        read_comm(folder)
    assert "fast" in str(err.value)
    links.drop(columns=["technology"]).to_csv(folder / "links.csv", index=False)
    with pytest.raises(ValueError, match=r"links\.csv:1: missing column\(s\) \['technology'\]"):
        read_comm(folder)
    (folder / "comm.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match=r"comm\.json: 'format' must be 'gridtwin.comm'"):
        read_comm(folder)


def test_duplicate_ids_are_reported_with_their_line(tmp_path: Path) -> None:
    folder = write_comm(usage_layer(), tmp_path / "c")
    text = (folder / "sims.csv").read_text()
    (folder / "sims.csv").write_text(text + text.splitlines()[1] + "\n")
    with pytest.raises(ValueError, match=r"sims\.csv:4: sims 's1': duplicate id in sims"):
        read_comm(folder)


# -- generator --------------------------------------------------------------------------------------
def test_generator_on_a_simbench_lv_grid(lv_grid: Grid) -> None:
    layer = generate_comm(lv_grid, seed=0, plc_share=1.0)
    dev = layer.devices
    assert dev["kind"].value_counts().to_dict() == {
        "meter": 13,
        "controller": 4,
        "headend": 1,
        "gateway": 1,
        "concentrator": 1,
    }
    assert (dev.loc[dev["kind"] == "meter", "sim"] == "").all()
    assert layer.reachability()["reachable"].all()
    g = MultiLayerGraph.from_grid(lv_grid, layer)
    assert len(g.meters_below("trafo/0")) == 13
    assert len(g.controllable_now()) == 4
    # PLC repeats along the cable: a meter's upstream device sits at its own bus or upstream of it
    tree = g.supply_tree()
    bus = g.device_buses()
    plc = layer.links[layer.links["technology"] == "plc"]
    for a, b in zip(plc["a"], plc["b"], strict=True):
        node, target = bus[a], bus[b] if b.startswith(("meter", "ctrl")) else lv_grid.trafo.loc["trafo/0", "lv_bus"]
        while node not in ("", target):
            node = tree.loc[node, "parent"]
        assert node == target
    usage = data_usage(layer).loc["sim/gw/trafo/0"]
    assert usage["meters"] == 13
    assert usage["plan_mb"] == min(p for p in PLANS_MB if p >= usage["usage_mb"] * 1.5)


def test_generator_mixes_plc_and_sims_by_seed(lv_grid: Grid) -> None:
    a = generate_comm(lv_grid, seed=1, plc_share=0.5)
    pd.testing.assert_frame_equal(a.links, generate_comm(lv_grid, seed=1, plc_share=0.5).links)
    sim_meters = (a.devices["kind"] == "meter") & (a.devices["sim"] != "")
    assert 0 < sim_meters.sum() < 13
    assert (a.links["technology"] == "cellular").sum() == sim_meters.sum() + 1
    none = generate_comm(lv_grid, plc_share=0.0)
    assert ((none.devices["kind"] == "meter") & (none.devices["sim"] == "")).sum() == 0
    with pytest.raises(ValueError, match="plc_share"):
        generate_comm(lv_grid, plc_share=1.5)


def test_generator_on_cigre_mv_uses_sims_and_own_gateways(mv_grid: Grid) -> None:
    layer = generate_comm(mv_grid, seed=0)
    dev = layer.devices
    assert not (dev["kind"] == "concentrator").any()  # no MV/LV transformer in cigre_mv
    meters = dev[dev["kind"] == "meter"]
    assert len(meters) == 18
    assert (meters["sim"] != "").all()
    assert dev.loc["gw/load/5", "kind"] == "gateway"
    g = MultiLayerGraph.from_grid(mv_grid, layer)
    assert g.controllable_now().index.tolist() == ["load/0", "load/5"]
    assert g.observability_loss("gw/load/5--headend").index.tolist() == ["ctrl/load/5"]
    assert len(g.meters_below("trafo/0")) + len(g.meters_below("trafo/1")) == 18


def test_generator_takes_a_meters_table(lv_grid: Grid) -> None:
    base = MultiLayerGraph.from_grid(lv_grid, generate_comm(lv_grid, plc_share=1.0)).meters_table()
    table = base.set_axis("M" + pd.Index(range(len(base))).astype(str)).assign(interval_min=60)
    layer = generate_comm(lv_grid, meters=table, plc_share=1.0)
    meters = layer.devices[layer.devices["kind"] == "meter"]
    assert meters.index.tolist() == table.index.tolist()
    assert (meters["interval_min"] == 60).all()
    assert meters["customer"].tolist() == table["customer"].tolist()
    bad = table.copy()
    bad.loc["M3", "load"] = "load/99"
    with pytest.raises(ValueError, match=r"meters \['M3'\] measure loads not in grid"):
        generate_comm(lv_grid, meters=bad)
    bad = table.copy()
    bad.loc["M4", "trafo"] = "trafo/7"
    with pytest.raises(ValueError, match=r"meters \['M4'\]: 'trafo' is not a transformer"):
        generate_comm(lv_grid, meters=bad)
