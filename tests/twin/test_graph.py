"""MultiLayerGraph: physical queries, cross-layer queries and networkx views on grids with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import twin
from twin.comm import CommLayer, generate_comm
from twin.graph import MultiLayerGraph, nearest_marked_ancestor
from twin.grid import Grid

_LINE = {"length_km": 0.1, "r_ohm_per_km": 0.2, "x_ohm_per_km": 0.08, "max_i_ka": 0.2}
_TRAFO = {"sn_mva": 0.4, "vn_hv_kv": 20.0, "vn_lv_kv": 0.4, "vk_percent": 6.0, "vkr_percent": 1.0}


def small_grid(sw_a2_closed: bool = True, sw_tie_closed: bool = False) -> Grid:
    """Two secondary substations T1 (feeder A0-A1-A2) and T2 (B0-B1), a tie line A2-B1 open at B1.

    Switch ``swA2`` sits on line lA2 at A1; ``swT`` on the tie line at B1. Loads L1@A1, L2@A2, L3@B1, L4@B0 and
    an MV customer LM@S; a controllable PV (sgen) at A2 and battery (storage) at B1.
    """
    buses = pd.DataFrame({"vn_kv": [20.0] + [0.4] * 5}, index=["S", "A0", "A1", "A2", "B0", "B1"])
    lines = pd.DataFrame(
        {"from_bus": ["A0", "A1", "B0", "A2"], "to_bus": ["A1", "A2", "B1", "B1"], **_LINE},
        index=["lA1", "lA2", "lB1", "lT"],
    )
    trafos = pd.DataFrame({"hv_bus": ["S", "S"], "lv_bus": ["A0", "B0"], **_TRAFO}, index=["T1", "T2"])
    switches = pd.DataFrame(
        {"bus": ["A1", "B1"], "element": ["lA2", "lT"], "et": "l", "closed": [sw_a2_closed, sw_tie_closed]},
        index=["swA2", "swT"],
    )
    loads = pd.DataFrame(
        {"bus": ["A1", "A2", "B1", "B0", "S"], "p_mw": 0.01, "controllable": [False, False, False, True, False]},
        index=["L1", "L2", "L3", "L4", "LM"],
    )
    tables = {
        "bus": buses,
        "line": lines,
        "trafo": trafos,
        "switch": switches,
        "load": loads,
        "sgen": pd.DataFrame({"bus": ["A2"], "p_mw": 0.02, "controllable": True}, index=["PV"]),
        "storage": pd.DataFrame({"bus": ["B1"], "p_mw": 0.0, "controllable": True}, index=["BAT"]),
        "ext_grid": pd.DataFrame({"bus": ["S"]}, index=["X"]),
    }
    return Grid(name="small", tables=tables)


def small_comm(extra_links: pd.DataFrame | None = None, status: dict[str, str] | None = None) -> CommLayer:
    """Head-end H, gateways G1/G2 (SIMs) with concentrators D1/D2, PLC meters (M2 relays via M1), SIM meter MM."""
    dev = pd.DataFrame(
        [
            ("H", "headend", "", "", "", np.nan, ""),
            ("G1", "gateway", "T1", "trafo", "", np.nan, "s1"),
            ("G2", "gateway", "T2", "trafo", "", np.nan, "s2"),
            ("D1", "concentrator", "T1", "trafo", "", np.nan, ""),
            ("D2", "concentrator", "T2", "trafo", "", np.nan, ""),
            ("M1", "meter", "L1", "load", "c1", 15.0, ""),
            ("M2", "meter", "L2", "load", "c2", 15.0, ""),
            ("M3", "meter", "L3", "load", "c3", 15.0, ""),
            ("M4", "meter", "L4", "load", "c4", 15.0, ""),
            ("MM", "meter", "LM", "load", "c5", 15.0, "s3"),
            ("CPV", "controller", "PV", "sgen", "", np.nan, ""),
            ("CBAT", "controller", "BAT", "storage", "", np.nan, ""),
        ],
        columns=["device", "kind", "element", "element_kind", "customer", "interval_min", "sim"],
    ).set_index("device")
    dev["bytes_per_reading"] = np.where(dev["kind"] == "meter", 64.0, np.nan)
    dev["parameters"] = np.where(dev["kind"] == "meter", "A+,A-", "")
    pairs = [
        ("H", "G1", "cellular", 80.0),
        ("H", "G2", "cellular", 90.0),
        ("G1", "D1", "ethernet", 1.0),
        ("G2", "D2", "ethernet", 1.0),
        ("D1", "M1", "plc", 400.0),
        ("M1", "M2", "plc", 400.0),
        ("D2", "M3", "plc", 400.0),
        ("D2", "M4", "plc", 400.0),
        ("H", "MM", "cellular", 70.0),
        ("D1", "CPV", "plc", 300.0),
        ("D2", "CBAT", "plc", 300.0),
    ]
    links = pd.DataFrame(pairs, columns=["a", "b", "technology", "latency_ms"])
    links.index = links["a"] + "-" + links["b"]
    links["bandwidth_kbps"] = 20.0
    if extra_links is not None:
        links = pd.concat([links, extra_links])
    for link, st in (status or {}).items():
        links.loc[link, "status"] = st
    sims = pd.DataFrame({"data_plan_mb_month": [10.0, 10.0, 1.0]}, index=["s1", "s2", "s3"])
    return CommLayer(dev, links, sims, name="small-comm")


def feeder_grid(n_feeders: int, subs_per_feeder: int, lv_buses: int, controllable_every: int = 0) -> Grid:
    """HV/MV transformer T0, radial MV feeders of secondary substations S/f/k, each with one LV feeder of loads."""
    f, k = np.meshgrid(np.arange(n_feeders), np.arange(subs_per_feeder), indexing="ij")
    f, k = f.ravel(), k.ravel()
    mv = pd.Index([f"mv/{a}/{b}" for a, b in zip(f, k, strict=True)])
    mv_up = np.where(k == 0, "mv", np.array([f"mv/{a}/{b - 1}" for a, b in zip(f, k, strict=True)], dtype=object))
    subs = mv.str.replace("mv/", "S/")
    j = np.tile(np.arange(lv_buses), len(mv))
    sub_of = np.repeat(np.arange(len(mv)), lv_buses)
    lv = pd.Index([f"lv/{s}/{b}" for s, b in zip(sub_of, j, strict=True)])
    lv_up = np.where(j == 0, "", np.array([f"lv/{s}/{b - 1}" for s, b in zip(sub_of, j, strict=True)], dtype=object))
    first = j == 0
    bus = pd.DataFrame({"vn_kv": np.r_[110.0, 20.0, np.full(len(mv), 20.0), np.full(len(lv), 0.4)]})
    bus.index = pd.Index(["hv", "mv", *mv, *lv])
    line = pd.DataFrame({"from_bus": np.r_[mv_up, lv_up[~first]], "to_bus": np.r_[mv, lv[~first]], **_LINE})
    line.index = pd.Index([f"line/{i}" for i in range(len(line))])
    trafo = pd.DataFrame({"hv_bus": ["hv", *mv], "lv_bus": ["mv", *lv[first]], **_TRAFO})
    trafo.index = pd.Index(["T0", *subs])
    trafo.loc["T0", ["vn_hv_kv", "vn_lv_kv", "sn_mva"]] = [110.0, 20.0, 40.0]
    load = pd.DataFrame({"bus": lv, "p_mw": 0.003}, index=pd.Index([f"load/{i}" for i in range(len(lv))]))
    if controllable_every:
        load["controllable"] = np.arange(len(load)) % controllable_every == 0
    tables = {"bus": bus, "line": line, "trafo": trafo, "load": load, "ext_grid": pd.DataFrame({"bus": ["hv"]})}
    return Grid(name="feeders", tables=tables)


@pytest.fixture
def graph() -> MultiLayerGraph:
    return MultiLayerGraph.from_grid(small_grid(), small_comm())


# -- tree helper -----------------------------------------------------------------------------------
def test_nearest_marked_ancestor_matches_a_walk_up_the_tree() -> None:
    rng = np.random.default_rng(3)
    n = 400
    parent = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, n)])
    parent[rng.choice(n, 20, replace=False)] = -1  # a forest
    mark = np.where(rng.random(n) < 0.1, rng.integers(0, 50, n), -1)
    expected = np.full(n, -1)
    for i in range(n):
        node = i
        while node >= 0 and mark[node] < 0:
            node = parent[node]
        expected[i] = mark[node] if node >= 0 else -1
    np.testing.assert_array_equal(nearest_marked_ancestor(parent, mark), expected)


# -- physical layer -----------------------------------------------------------------------------------
def test_buses_loads_and_supplying_trafos_of_the_small_grid(graph: MultiLayerGraph) -> None:
    assert graph.buses_below("T1").tolist() == ["A0", "A1", "A2"]
    assert graph.buses_below("T2").tolist() == ["B0", "B1"]
    assert graph.loads_below("T1").tolist() == ["L1", "L2"]
    assert graph.loads_below("T2").tolist() == ["L3", "L4"]
    supply = graph.supplying_trafos()
    assert supply.to_dict() == {"L1": "T1", "L2": "T1", "L3": "T2", "L4": "T2", "LM": ""}
    assert graph.supplying_trafos("sgen").to_dict() == {"PV": "T1"}
    tree = graph.supply_tree()
    assert tree.loc["A2", "parent"] == "A1"
    assert tree.loc["A0", "parent"] == "S"
    assert tree.loc["S", "parent"] == ""


def test_switching_moves_loads_to_the_other_trafo() -> None:
    moved = MultiLayerGraph.from_grid(small_grid(sw_a2_closed=False, sw_tie_closed=True), small_comm())
    assert moved.buses_below("T1").tolist() == ["A0", "A1"]
    assert moved.buses_below("T2").tolist() == ["A2", "B0", "B1"]
    assert moved.supplying_trafos()["L2"] == "T2"
    assert moved.supplying_trafos("sgen")["PV"] == "T2"
    assert moved.meters_below("T1").tolist() == ["M1"]
    assert moved.meters_below("T2").tolist() == ["M2", "M3", "M4"]


def test_open_switches_island_a_bus() -> None:
    cut = MultiLayerGraph.from_grid(small_grid(sw_a2_closed=False, sw_tie_closed=False))
    islands = cut.islands()
    assert not islands.loc["A2", "energised"]
    assert islands.drop(index="A2")["energised"].all()
    assert islands["island"].nunique() == 2
    assert islands.loc["A2", "island"] != islands.loc["A1", "island"]
    assert cut.supplying_trafos()["L2"] == ""
    assert "A2" not in cut.buses_below("T1")
    assert "A2" not in cut.physical(energised=True)


def test_physical_views_carry_switch_state_and_elements(graph: MultiLayerGraph) -> None:
    full = graph.physical()
    assert full.number_of_nodes() == 6
    assert full.number_of_edges() == 6
    tie = full.edges["A2", "B1", "lT"]
    assert tie["kind"] == "line"
    assert not tie["closed"]
    assert tie["switches"] == ("swT",)
    assert full.edges["S", "A0", "T1"]["kind"] == "trafo"
    assert full.nodes["A2"]["sgen"] == ("PV",)
    assert full.nodes["S"]["load"] == ("LM",)
    assert full.nodes["S"]["ext_grid"] == ("X",)
    assert full.nodes["A1"]["trafo"] == "T1"
    energised = graph.physical(energised=True)
    assert energised.number_of_edges() == 5
    assert not energised.has_edge("A2", "B1")


def test_out_of_service_trafo_supplies_nothing() -> None:
    grid = small_grid()
    grid.trafo.loc["T2", "in_service"] = False
    g = MultiLayerGraph.from_grid(grid)
    assert g.buses_below("T2").empty
    assert not g.islands().loc[["B0", "B1"], "energised"].any()
    with pytest.raises(KeyError, match="'T9' is not a trafo"):
        g.buses_below("T9")


def test_trafo3w_star_and_winding_switch() -> None:
    tables = {
        "bus": pd.DataFrame({"vn_kv": [110.0, 20.0, 10.0]}, index=["H", "M", "L"]),
        "trafo3w": pd.DataFrame(
            {
                "hv_bus": ["H"],
                "mv_bus": ["M"],
                "lv_bus": ["L"],
                "vn_hv_kv": 110.0,
                "vn_mv_kv": 20.0,
                "vn_lv_kv": 10.0,
                "sn_hv_mva": 40.0,
                "sn_mv_mva": 20.0,
                "sn_lv_mva": 20.0,
                "vk_hv_percent": 10.0,
                "vk_mv_percent": 10.0,
                "vk_lv_percent": 10.0,
                "vkr_hv_percent": 0.3,
                "vkr_mv_percent": 0.3,
                "vkr_lv_percent": 0.3,
            },
            index=["T3"],
        ),
        "load": pd.DataFrame({"bus": ["M", "L"], "p_mw": 1.0}, index=["LdM", "LdL"]),
        "ext_grid": pd.DataFrame({"bus": ["H"]}, index=["X"]),
    }
    g = MultiLayerGraph.from_grid(Grid(tables=tables))
    assert g.buses_below("T3").tolist() == ["M", "L"]
    assert g.supplying_trafos().to_dict() == {"LdM": "T3", "LdL": "T3"}
    assert g.physical().nodes["T3"]["kind"] == "trafo3w"
    tables["switch"] = pd.DataFrame({"bus": ["L"], "element": ["T3"], "et": "t3", "closed": False}, index=["sw"])
    opened = MultiLayerGraph.from_grid(Grid(tables=tables))
    assert opened.buses_below("T3").tolist() == ["M"]
    assert opened.supplying_trafos().to_dict() == {"LdM": "T3", "LdL": ""}


def test_bad_references_are_named() -> None:
    grid = small_grid()
    grid.switch.loc["swT", "element"] = "lX"
    with pytest.raises(ValueError, match=r"switch \['swT'\] refers to an element"):
        MultiLayerGraph.from_grid(grid)
    grid = small_grid()
    grid.line.loc["lB1", "to_bus"] = "B9"
    with pytest.raises(ValueError, match=r"\['line', 'lB1'\]"):
        MultiLayerGraph.from_grid(grid)


@pytest.mark.parametrize("case", ["1-MV-urban--0-sw", "case14"])
def test_trafo_sets_nest_in_real_grids(case: str) -> None:
    """Every bus below T is supplied by T or by a transformer whose own set lies inside T's."""
    grid = twin.load(case)
    g = MultiLayerGraph.from_grid(grid)
    supply = g.supplying_trafos("bus")
    below = {t: set(g.buses_below(t)) for t in grid.trafo.index}
    for t, buses in below.items():
        for b in buses:
            s = supply[b]
            assert s == t or below[s] <= buses
    if case == "1-MV-urban--0-sw":  # radial: the two HV/MV transformers split all loads
        assert len(g.loads_below("trafo/0")) + len(g.loads_below("trafo/1")) == len(grid.load)
        assert (g.supplying_trafos() != "").all()


# -- communication layer ------------------------------------------------------------------------------
def test_meters_below_and_meters_table(graph: MultiLayerGraph) -> None:
    assert graph.meters_below("T1").tolist() == ["M1", "M2"]
    assert graph.meters_below("T2").tolist() == ["M3", "M4"]
    table = graph.meters_table()
    assert list(table.columns) == ["customer", "load", "bus", "trafo", "interval_min", "parameters"]
    assert table.index.name == "meter"
    assert table.loc["M2"].tolist() == ["c2", "L2", "A2", "T1", 15, "A+,A-"]
    assert table.loc["MM", "trafo"] == ""


def test_link_failure_observability_loss(graph: MultiLayerGraph) -> None:
    lost = graph.observability_loss("D1-M1")
    assert lost.index.tolist() == ["M1", "M2"]  # M2 reaches D1 only through M1
    assert set(lost["kind"]) == {"meter"}
    assert graph.observability_loss("G1-D1").index.tolist() == ["M1", "M2", "CPV"]
    assert graph.observability_loss("H-MM").index.tolist() == ["MM"]
    assert graph.observability_loss("D2-CBAT")[["kind", "element"]].to_numpy().tolist() == [["controller", "BAT"]]
    with pytest.raises(KeyError, match="not a link id"):
        graph.observability_loss("nope")


def test_a_mesh_link_keeps_meters_observable() -> None:
    mesh = pd.DataFrame(
        {"a": ["M2"], "b": ["M3"], "technology": "rf_mesh", "latency_ms": 150.0, "bandwidth_kbps": 50.0},
        index=["M2-M3"],
    )
    g = MultiLayerGraph.from_grid(small_grid(), small_comm(extra_links=mesh))
    assert g.observability_loss("D1-M1").empty  # M1 now reaches the head-end through M2 and M3
    assert g.observability_loss("G1-D1").empty  # D1 and CPV too


def test_down_and_degraded_links_block_control(graph: MultiLayerGraph) -> None:
    now = graph.controllable_now()
    assert now.index.tolist() == ["PV", "BAT"]
    assert now.loc["PV", "controller"] == "CPV"
    assert now.loc["PV", "latency_ms"] == pytest.approx(80.0 + 1.0 + 300.0)
    assert graph.controllable_now(kinds=["storage"]).index.tolist() == ["BAT"]
    assert "L4" not in now.index  # controllable in the grid but no controller
    down = MultiLayerGraph.from_grid(small_grid(), small_comm(status={"D1-CPV": "down"}))
    assert down.controllable_now().index.tolist() == ["BAT"]
    degraded = MultiLayerGraph.from_grid(small_grid(), small_comm(status={"G2-D2": "degraded"}))
    assert degraded.controllable_now().index.tolist() == ["PV"]
    assert degraded.comm_layer.reachability(("up", "degraded")).loc[["M3", "M4"], "reachable"].all()
    # failing it loses the meters that still report over it, not BAT, which was already not controllable
    assert degraded.observability_loss("G2-D2").index.tolist() == ["M3", "M4"]
    with pytest.raises(ValueError, match="cannot be controlled"):
        graph.controllable_now(kinds=["line"])


def test_comm_and_cross_views(graph: MultiLayerGraph) -> None:
    comm = graph.comm()
    assert comm.number_of_nodes() == 12
    assert comm.number_of_edges() == 11
    assert comm.edges["D1", "M1", "D1-M1"]["technology"] == "plc"
    assert comm.nodes["M1"]["element"] == "L1"
    cross = graph.cross()
    assert cross.has_edge(("device", "M1"), ("load", "L1"))
    assert cross.edges[("device", "CPV"), ("sgen", "PV")]["relation"] == "controls"
    assert cross.edges[("load", "L1"), ("bus", "A1")]["relation"] == "connected_to"
    assert cross.nodes[("device", "G1")]["layer"] == "comm"
    assert cross.has_edge(("device", "G1"), ("trafo", "T1"))


def test_comm_layer_must_match_the_grid() -> None:
    grid = small_grid()
    grid.remove("load", ["L3"])
    with pytest.raises(ValueError, match=r"devices 'M3': element load 'L3' is not in grid 'small'"):
        MultiLayerGraph.from_grid(grid, small_comm())
    with pytest.raises(ValueError, match="no communication layer"):
        MultiLayerGraph.from_grid(small_grid()).meters_below("T1")


def test_generated_layer_on_a_feeder_grid_is_consistent() -> None:
    grid = feeder_grid(n_feeders=2, subs_per_feeder=5, lv_buses=6, controllable_every=4)
    layer = generate_comm(grid, seed=2, plc_share=0.7)
    g = MultiLayerGraph.from_grid(grid, layer)
    meters = layer.devices.index[layer.devices["kind"] == "meter"]
    assert len(g.meters_below("T0")) == len(meters) == 60
    per_sub = sum(len(g.meters_below(t)) for t in grid.trafo.index[1:])
    assert per_sub == 60
    assert len(g.controllable_now()) == grid.load["controllable"].sum()
    assert layer.reachability()["reachable"].all()


def test_generated_plc_repeats_along_the_feeder() -> None:
    grid = small_grid()
    layer = generate_comm(grid, plc_share=1.0)
    plc = layer.links[layer.links["technology"] == "plc"]
    assert dict(zip(plc["a"], plc["b"], strict=True)) == {
        "meter/L1": "dc/T1",
        "meter/L2": "meter/L1",  # A2 hears the concentrator through the meter at A1
        "meter/L3": "dc/T2",
        "meter/L4": "dc/T2",
        "ctrl/PV": "dc/T1",
        "ctrl/BAT": "dc/T2",
        "ctrl/L4": "dc/T2",
    }
    assert layer.devices.loc["meter/LM", "sim"] == "sim/meter/LM"  # MV customer: no secondary substation
    meters = pd.DataFrame(
        {"customer": ["c1", "c2", "c3"], "load": ["L2", "L2", "L1"], "interval_min": 15, "parameters": "A+"},
        index=["m-b", "m-a", "m-c"],
    )
    plc = generate_comm(grid, meters=meters, plc_share=1.0).links.query("technology == 'plc'")
    assert dict(zip(plc["a"], plc["b"], strict=True)) == {
        "m-b": "m-a",  # the first id at a bus relays for the others there
        "m-a": "m-c",
        "m-c": "dc/T1",
        "ctrl/PV": "dc/T1",
        "ctrl/BAT": "dc/T2",
        "ctrl/L4": "dc/T2",
    }


@pytest.mark.slow
def test_ten_thousand_meters() -> None:
    grid = feeder_grid(n_feeders=10, subs_per_feeder=50, lv_buses=20, controllable_every=10)
    layer = generate_comm(grid, seed=0)
    g = MultiLayerGraph.from_grid(grid, layer)
    assert len(g.meters_below("T0")) == 10_000
    table = g.meters_table()
    assert (table["trafo"].str.startswith("S/")).all()
    link = layer.links.index[layer.links["technology"] == "ethernet"][0]
    sub = layer.links.loc[link, "a"].removeprefix("dc/")
    lost = g.observability_loss(link)
    plc = layer.devices.index[(layer.devices["sim"] == "") & (layer.devices["kind"] == "meter")]
    assert set(lost.index[lost["kind"] == "meter"]) == set(g.meters_below(sub).intersection(plc))
