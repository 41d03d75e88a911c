"""Grid tables → :class:`PFModel` arrays: the one place where column names become positions."""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from solvers.branch_model import branch_admittances, line_pi, trafo3w_to_trafos, trafo_pi
from solvers.model import PQ, PV, REF, ElementInjection, PFModel
from twin.topology import find_islands, merge_buses
from twin.validate import check_grid

if TYPE_CHECKING:
    from twin.grid import Grid

__all__ = ["compile_grid"]

SQRT3 = np.sqrt(3.0)


def _bus_positions(bus_index: pd.Index, ids: pd.Series, table: str, column: str) -> np.ndarray:
    pos = bus_index.get_indexer(ids.to_numpy())
    if (pos < 0).any():
        bad = ids.index[pos < 0][:5].tolist()
        missing = ids.to_numpy()[pos < 0][:5].tolist()
        raise ValueError(f"{table} {bad}: column {column!r} names unknown bus ids {missing}")
    return pos.astype(np.int64)


class _Branches:
    """Accumulates branch blocks (lines, trafos, windings) as parallel lists of arrays."""

    def __init__(self) -> None:
        self.cols: dict[str, list[np.ndarray]] = {}

    def add(self, **cols: np.ndarray) -> None:
        for k, v in cols.items():
            self.cols.setdefault(k, []).append(np.asarray(v))

    def get(self, key: str, dtype: type | None = None) -> np.ndarray:
        parts = self.cols.get(key, [])
        if not parts:
            return np.zeros(0, dtype=dtype or float)
        return np.concatenate(parts).astype(dtype) if dtype else np.concatenate(parts)


def _trafo_inputs(df: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "sn_mva": df["sn_mva"].to_numpy(float),
        "vn_hv_kv": df["vn_hv_kv"].to_numpy(float),
        "vn_lv_kv": df["vn_lv_kv"].to_numpy(float),
        "vk_percent": df["vk_percent"].to_numpy(float),
        "vkr_percent": df["vkr_percent"].to_numpy(float),
        "pfe_kw": df["pfe_kw"].to_numpy(float),
        "i0_percent": df["i0_percent"].to_numpy(float),
        "shift_degree": df["shift_degree"].to_numpy(float),
        "tap_side": df["tap_side"].to_numpy(object),
        "tap_pos": df["tap_pos"].to_numpy(float),
        "tap_neutral": df["tap_neutral"].to_numpy(float),
        "tap_step_percent": df["tap_step_percent"].to_numpy(float),
        "tap_step_degree": df["tap_step_degree"].to_numpy(float),
        "tap_changer_type": df["tap_changer_type"].to_numpy(object),
        "parallel": df["parallel"].to_numpy(float),
        "r_ratio_hv": df["leakage_resistance_ratio_hv"].to_numpy(float),
        "x_ratio_hv": df["leakage_reactance_ratio_hv"].to_numpy(float),
    }


def _injection(
    df: pd.DataFrame, group_of_bus: np.ndarray, bus_index: pd.Index, table: str, sign: float, has_q: bool = True
) -> ElementInjection:
    pos = _bus_positions(bus_index, df["bus"], table, "bus")
    grp = group_of_bus[pos] if len(pos) else np.zeros(0, dtype=np.int64)
    grp = np.where(df["in_service"].to_numpy(bool), grp, -1)
    return ElementInjection(
        ids=df.index.to_numpy(object),
        bus_idx=grp.astype(np.int64),
        grid_bus_pos=pos,
        p_mw=df["p_mw"].to_numpy(float),
        q_mvar=df["q_mvar"].to_numpy(float) if has_q else np.zeros(len(df)),
        scaling=df["scaling"].to_numpy(float),
        sign=sign,
    )


class _Nodes:
    """Bus topology of a Grid: merged bus groups, auxiliary buses and the cuts of open branch switches."""

    def __init__(self, grid: Grid) -> None:
        bus = grid.bus
        self.index = pd.Index(bus.index)
        nb = len(bus)
        sw = grid.switch
        is_bb = (sw["et"] == "b").to_numpy()
        closed = sw["closed"].to_numpy(bool)
        bb = is_bb & closed
        if (bb & (sw["z_ohm"].to_numpy(float) > 0)).any():
            bad = sw.index[bb & (sw["z_ohm"].to_numpy(float) > 0)][:5].tolist()
            raise NotImplementedError(
                f"closed bus-bus switches with z_ohm > 0 ({bad}) are not modelled yet; set z_ohm=0"
            )
        sw_bus = self.positions(sw["bus"], "switch", "bus")
        sw_other = np.full(len(sw), -1, dtype=np.int64)
        if is_bb.any():
            sw_other[is_bb] = self.positions(sw.loc[is_bb, "element"], "switch", "element")
        self.group, self.n_group = merge_buses(nb, sw_bus[bb], sw_other[bb])
        self.bus_in_service = bus["in_service"].to_numpy(bool)
        self.grp_in_service = np.zeros(self.n_group, dtype=bool)
        np.logical_or.at(self.grp_in_service, self.group, self.bus_in_service)
        first_member = np.full(self.n_group, nb, dtype=np.int64)
        np.minimum.at(first_member, self.group, np.arange(nb))
        self.grp_vn = bus["vn_kv"].to_numpy(float)[first_member]
        self.aux_vn: list[float] = []
        open_sw = ~closed & ~is_bb
        self.cuts = pd.DataFrame(
            {"et": sw["et"].to_numpy()[open_sw], "element": sw["element"].to_numpy()[open_sw], "bus": sw_bus[open_sw]}
        ).drop_duplicates()

    def positions(self, ids: pd.Series, table: str, column: str) -> np.ndarray:
        """Grid bus rows of ``ids`` (raises naming the elements with unknown bus ids)."""
        return _bus_positions(self.index, ids, table, column)

    def groups(self, df: pd.DataFrame, table: str, column: str) -> np.ndarray:
        """Merged bus of each row's ``column`` bus."""
        return self.group[self.positions(df[column], table, column)] if len(df) else np.zeros(0, np.int64)

    def new_aux(self, vn_kv: np.ndarray) -> np.ndarray:
        """Add auxiliary buses (open branch ends, star points); return their numbers."""
        start = self.n_group + len(self.aux_vn)
        self.aux_vn.extend(np.asarray(vn_kv, dtype=float).tolist())
        return np.arange(start, start + len(vn_kv), dtype=np.int64)

    def cut_open_ends(self, et: str, ids: pd.Index, end_pos: np.ndarray, ends: np.ndarray) -> None:
        """Move branch ends behind an open switch (at Grid bus ``end_pos``) to new auxiliary buses, in place."""
        c = self.cuts[self.cuts["et"] == et]
        if c.empty:
            return
        key = pd.MultiIndex.from_arrays([c["element"].to_numpy(), c["bus"].to_numpy()])
        m = pd.MultiIndex.from_arrays([ids.to_numpy(), end_pos]).isin(key)
        if m.any():
            ends[m] = self.new_aux(self.grp_vn[self.group[end_pos[m]]])

    @property
    def vn_all(self) -> np.ndarray:
        """Nominal voltage (kV) of merged and auxiliary buses."""
        return np.concatenate([self.grp_vn, np.asarray(self.aux_vn, dtype=float)])

    @property
    def in_service_all(self) -> np.ndarray:
        """In-service flag of merged and auxiliary buses."""
        return np.concatenate([self.grp_in_service, np.ones(len(self.aux_vn), dtype=bool)])


def _add_lines(grid: Grid, nodes: _Nodes, br: _Branches) -> None:
    line = grid.line
    if not len(line):
        return
    fpos = nodes.positions(line["from_bus"], "line", "from_bus")
    tpos = nodes.positions(line["to_bus"], "line", "to_bus")
    f, t = nodes.group[fpos].copy(), nodes.group[tpos].copy()
    col = {
        c: line[c].to_numpy(float)
        for c in (
            "r_ohm_per_km",
            "x_ohm_per_km",
            "c_nf_per_km",
            "g_us_per_km",
            "length_km",
            "parallel",
            "max_i_ka",
            "df",
        )
    }
    r, x, g, b = line_pi(
        col["r_ohm_per_km"],
        col["x_ohm_per_km"],
        col["c_nf_per_km"],
        col["g_us_per_km"],
        col["length_km"],
        col["parallel"],
        nodes.grp_vn[f],
        float(grid.sn_mva),
        float(grid.f_hz),
    )
    nodes.cut_open_ends("l", line.index, fpos, f)
    nodes.cut_open_ends("l", line.index, tpos, t)
    rate = col["max_i_ka"] * col["df"] * col["parallel"]
    n = len(line)
    br.add(
        ids=line.index.to_numpy(object),
        kind=np.full(n, "line", dtype=object),
        f=f,
        t=t,
        r=r,
        x=x,
        g=g,
        b=b,
        g_asym=np.zeros(n),
        b_asym=np.zeros(n),
        ratio=np.ones(n),
        shift=np.zeros(n),
        in_service=line["in_service"].to_numpy(bool),
        vn_f=nodes.grp_vn[nodes.group[fpos]],
        vn_t=nodes.grp_vn[nodes.group[tpos]],
        rate_f=rate,
        rate_t=rate,
        i_side=np.zeros(n, dtype=np.int64),
    )


def _add_trafos(grid: Grid, nodes: _Nodes, br: _Branches) -> None:
    trafo = grid.trafo
    if not len(trafo):
        return
    hpos = nodes.positions(trafo["hv_bus"], "trafo", "hv_bus")
    lpos = nodes.positions(trafo["lv_bus"], "trafo", "lv_bus")
    f, t = nodes.group[hpos].copy(), nodes.group[lpos].copy()
    inp = _trafo_inputs(trafo)
    pi = trafo_pi(vn_hv_bus_kv=nodes.grp_vn[f], vn_lv_bus_kv=nodes.grp_vn[t], sys_sn_mva=float(grid.sn_mva), **inp)
    nodes.cut_open_ends("t", trafo.index, hpos, f)
    nodes.cut_open_ends("t", trafo.index, lpos, t)
    s_rated = trafo["sn_mva"].to_numpy(float) * trafo["df"].to_numpy(float) * trafo["parallel"].to_numpy(float)
    n = len(trafo)
    br.add(
        ids=trafo.index.to_numpy(object),
        kind=np.full(n, "trafo", dtype=object),
        f=f,
        t=t,
        **_pi_columns(pi),
        in_service=trafo["in_service"].to_numpy(bool),
        vn_f=nodes.grp_vn[nodes.group[hpos]],
        vn_t=nodes.grp_vn[nodes.group[lpos]],
        rate_f=s_rated / (SQRT3 * inp["vn_hv_kv"]),
        rate_t=s_rated / (SQRT3 * inp["vn_lv_kv"]),
        i_side=np.ones(n, dtype=np.int64),
    )


def _add_trafo3w(grid: Grid, nodes: _Nodes, br: _Branches) -> None:
    """Three-winding transformers: three branches meeting at an auxiliary star-point bus."""
    t3 = grid.trafo3w
    if not len(t3):
        return
    pos3 = {s: nodes.positions(t3[f"{s}_bus"], "trafo3w", f"{s}_bus") for s in ("hv", "mv", "lv")}
    star = nodes.new_aux(nodes.grp_vn[nodes.group[pos3["hv"]]])
    n = len(t3)
    for side, inp in trafo3w_to_trafos({c: t3[c].to_numpy() for c in t3.columns}).items():
        outer = nodes.group[pos3[side]].copy()
        nodes.cut_open_ends("t3", t3.index, pos3[side], outer)
        f, t = (outer, star) if side == "hv" else (star, outer)
        vn_all = nodes.vn_all
        pi = trafo_pi(vn_hv_bus_kv=vn_all[f], vn_lv_bus_kv=vn_all[t], sys_sn_mva=float(grid.sn_mva), **inp)
        rated = inp["sn_mva"] / (SQRT3 * (inp["vn_hv_kv"] if side == "hv" else inp["vn_lv_kv"]))
        inf = np.full(n, np.inf)
        br.add(
            ids=np.array([f"{i}/{side}" for i in t3.index], dtype=object),
            kind=np.full(n, "trafo3w", dtype=object),
            f=f,
            t=t,
            **_pi_columns(pi),
            in_service=t3["in_service"].to_numpy(bool),
            vn_f=vn_all[f],
            vn_t=vn_all[t],
            rate_f=rated if side == "hv" else inf,
            rate_t=inf if side == "hv" else rated,
            i_side=np.full(n, 1 if side == "hv" else 2, dtype=np.int64),
        )


def _pi_columns(pi: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "r": pi["r"],
        "x": pi["x"],
        "g": pi["g"],
        "b": pi["b"],
        "g_asym": pi["g_asym"],
        "b_asym": pi["b_asym"],
        "ratio": pi["ratio"],
        "shift": pi["shift_degree"],
    }


def _references(grid: Grid, nodes: _Nodes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merged bus, vm (pu) and va (degree) of every in-service slack (ext_grid, gen with slack=True)."""
    ext, gen = grid.ext_grid, grid.gen
    ext_on = ext["in_service"].to_numpy(bool)
    gen_slack = gen["slack"].to_numpy(bool) & gen["in_service"].to_numpy(bool)
    ref_grp = np.concatenate([nodes.groups(ext, "ext_grid", "bus")[ext_on], nodes.groups(gen, "gen", "bus")[gen_slack]])
    ref_vm = np.concatenate([ext["vm_pu"].to_numpy(float)[ext_on], gen["vm_pu"].to_numpy(float)[gen_slack]])
    ref_va = np.concatenate([ext["va_degree"].to_numpy(float)[ext_on], np.zeros(int(gen_slack.sum()))])
    keep = nodes.in_service_all[ref_grp]
    return ref_grp[keep], ref_vm[keep], ref_va[keep]


def _bus_types(
    grid: Grid, nodes: _Nodes, new_idx: np.ndarray, n: int, refs: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """PQ/PV/REF per compiled bus and the set-point voltages (first set-point on a bus wins, REF over PV)."""
    bus_type = np.full(n, PQ, dtype=np.int64)
    v_set = np.ones(n, dtype=np.complex128)
    gen = grid.gen
    # every in-service gen regulates its bus; REF (assigned below) wins where a bus is a slack, so a gen with
    # slack=True that a slack= override demoted keeps its voltage set-point as a PV bus
    is_pv = gen["in_service"].to_numpy(bool)
    pv_new = new_idx[nodes.groups(gen, "gen", "bus")[is_pv]]
    pv_vm = gen["vm_pu"].to_numpy(float)[is_pv]
    ok = pv_new >= 0
    pv_bus, first = np.unique(pv_new[ok], return_index=True)
    bus_type[pv_bus] = PV
    v_set[pv_bus] = pv_vm[ok][first]
    ref_grp, ref_vm, ref_va = refs
    ref_bus, first = np.unique(new_idx[ref_grp], return_index=True)
    bus_type[ref_bus] = REF
    v_set[ref_bus] = ref_vm[first] * np.exp(1j * np.deg2rad(ref_va[first]))
    return bus_type, v_set


def _shunts(grid: Grid, nodes: _Nodes, new_idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Shunt admittance (pu) per compiled bus and per Grid bus."""
    y_sh = np.zeros(n, dtype=np.complex128)
    y_sh_grid = np.zeros(len(nodes.index), dtype=np.complex128)
    shunt = grid.shunt
    if len(shunt):
        pos = nodes.positions(shunt["bus"], "shunt", "bus")
        grp = nodes.group[pos]
        vn_all = nodes.vn_all
        ok = shunt["in_service"].to_numpy(bool) & (new_idx[grp] >= 0)
        vn_sh = shunt["vn_kv"].to_numpy(float)
        vn_sh = np.where(np.isnan(vn_sh), vn_all[grp], vn_sh)
        y = (
            (shunt["p_mw"].to_numpy(float) - 1j * shunt["q_mvar"].to_numpy(float))
            * shunt["step"].to_numpy(float)
            * (vn_all[grp] / vn_sh) ** 2
            / float(grid.sn_mva)
        )
        np.add.at(y_sh, new_idx[grp][ok], y[ok])
        np.add.at(y_sh_grid, pos[ok], y[ok])
    return y_sh, y_sh_grid


def _injections(grid: Grid, nodes: _Nodes, new_idx: np.ndarray, bus_type: np.ndarray) -> dict[str, ElementInjection]:
    """Loads, sgens, storage and gens mapped to compiled buses (gens on REF buses schedule no P).

    Loads keep their ZIP shares (``const_z_p_percent`` … as fractions) when any is non-zero.
    """
    load = grid.load
    zip_cols = ("const_z_p_percent", "const_i_p_percent", "const_z_q_percent", "const_i_q_percent")
    shares = [load[c].to_numpy(float) / 100.0 for c in zip_cols]
    zip_shares = shares if any(np.any(x != 0) for x in shares) else [None] * 4
    out = {}
    for table, sign in (("load", -1.0), ("sgen", 1.0), ("storage", -1.0), ("gen", 1.0)):
        e = _injection(grid[table], nodes.group, nodes.index, table, sign, has_q=table != "gen")
        b_new = np.where(e.bus_idx >= 0, new_idx[np.maximum(e.bus_idx, 0)], -1).astype(np.int64)
        if table == "gen":  # the slack balances P on REF buses
            b_new = np.where((b_new >= 0) & (bus_type[np.maximum(b_new, 0)] == REF), -1, b_new)
        z_p, i_p, z_q, i_q = zip_shares if table == "load" else [None] * 4
        out[table] = ElementInjection(
            e.ids, b_new, e.grid_bus_pos, e.p_mw, e.q_mvar, e.scaling, e.sign, z_p, i_p, z_q, i_q
        )
    return out


def _balancing_buses(grid: Grid, nodes: _Nodes, grid_to_compiled: np.ndarray, n: int) -> np.ndarray:
    """Per compiled bus, the Grid bus hosting its first ext_grid (else first gen): it takes the balancing P/Q."""
    ctrl = np.full(n, -1, dtype=np.int64)
    for table in ("gen", "ext_grid"):  # ext_grid last: it wins over gens
        df = grid[table]
        if not len(df):
            continue
        pos = nodes.positions(df["bus"], table, "bus")[df["in_service"].to_numpy(bool)][::-1]  # first wins
        tgt = grid_to_compiled[pos]
        ok = tgt >= 0
        ctrl[tgt[ok]] = pos[ok]
    return ctrl


def _ybus(n: int, f: np.ndarray, t: np.ndarray, y: tuple[np.ndarray, ...], y_sh: np.ndarray) -> sp.csr_matrix:
    """Bus admittance matrix (pu), sorted CSR with an explicit diagonal."""
    yff, yft, ytf, ytt = y
    rows = np.concatenate([f, f, t, t, np.arange(n)])
    cols = np.concatenate([f, t, f, t, np.arange(n)])
    ybus = sp.csr_matrix((np.concatenate([yff, yft, ytf, ytt, y_sh]), (rows, cols)), shape=(n, n))
    ybus.sum_duplicates()
    ybus.sort_indices()
    return ybus


def compile_grid(grid: Grid, slack: str | None = None) -> PFModel:
    """Compile a Grid into the arrays the power-flow kernels use.

    Topology processing (closed bus-bus switches merged, open branch switches leave the branch
    end on an auxiliary bus as pandapower does, out-of-service elements dropped), energised
    islands (those with a slack), per-unit branch models, Ybus.

    Parameters
    ----------
    grid : Grid
        The grid.
    slack : str, optional
        Id of a bus, generator (``gen``) or external grid (``ext_grid``) to use as the only
        reference bus of its island, overriding the file's choice. Other reference buses in that
        island lose that role and become PQ buses without scheduled injection.

    Returns
    -------
    PFModel
    """
    t0 = time.perf_counter()
    check_grid(grid)
    if grid.n_bus == 0:
        raise ValueError(f"grid {grid.name!r} has no buses")
    nodes = _Nodes(grid)
    br = _Branches()
    _add_lines(grid, nodes, br)
    _add_trafos(grid, nodes, br)
    _add_trafo3w(grid, nodes, br)
    in_service_all = nodes.in_service_all
    bf, bt = br.get("f", np.int64), br.get("t", np.int64)
    active = br.get("in_service", bool) & in_service_all[bf] & in_service_all[bt] if len(bf) else np.zeros(0, bool)

    # energised islands: those holding a slack
    island = find_islands(len(in_service_all), bf[active], bt[active])
    refs = _references(grid, nodes)
    if slack is not None:
        refs = _override_slack(slack, nodes.index, nodes.group, grid.ext_grid, grid.gen, island, *refs)
    if len(refs[0]) == 0:
        raise ValueError(f"grid {grid.name!r} has no slack: add an ext_grid or a gen with slack=True, or pass slack=ID")
    energised_island = np.zeros(island.max() + 1, dtype=bool)
    energised_island[island[refs[0]]] = True
    energised = energised_island[island] & in_service_all
    n = int(energised.sum())
    new_idx = np.full(len(in_service_all), -1, dtype=np.int64)
    new_idx[energised] = np.arange(n)
    grid_to_compiled = new_idx[: nodes.n_group][nodes.group]

    bus_type, v_set = _bus_types(grid, nodes, new_idx, n, refs)
    y_sh, y_sh_grid = _shunts(grid, nodes, new_idx, n)
    f_new = new_idx[bf] if len(bf) else bf
    t_new = new_idx[bt] if len(bt) else bt
    active &= (f_new >= 0) & (t_new >= 0)
    y_branch = branch_admittances(*(br.get(c) for c in ("r", "x", "g", "b", "g_asym", "b_asym", "ratio", "shift")))
    ybus = _ybus(n, f_new[active], t_new[active], tuple(y[active] for y in y_branch), y_sh)
    x, ratio = br.get("x"), br.get("ratio")
    with np.errstate(divide="ignore"):
        b_dc = np.where(x != 0, 1.0 / (x * np.where(ratio != 0, ratio, 1.0)), 0.0)
    injections = _injections(grid, nodes, new_idx, bus_type)
    isolated = int((~energised[nodes.group] & nodes.bus_in_service).sum())  # Grid buses, not merged groups
    if isolated:
        warnings.warn(
            f"{isolated} buses of {grid.name!r} are not connected to a slack; they are reported as "
            "de-energised (NaN voltage)",
            stacklevel=2,
        )
    return PFModel(
        name=grid.name,
        base_mva=float(grid.sn_mva),
        f_hz=float(grid.f_hz),
        n_bus=n,
        bus_type=bus_type,
        vn_kv=nodes.vn_all[energised],
        v_set=v_set,
        y_shunt_pu=y_sh,
        grid_bus_ids=grid.bus.index.to_numpy(object),
        grid_bus_idx=grid_to_compiled.astype(np.int64),
        island=np.unique(island[energised], return_inverse=True)[1].astype(np.int64),
        grid_bus_y_shunt_pu=y_sh_grid,
        ctrl_grid_bus_pos=_balancing_buses(grid, nodes, grid_to_compiled, n),
        ybus=ybus,
        branch_ids=br.get("ids"),
        branch_kind=br.get("kind"),
        branch_active=active,
        f_idx=np.where(active, f_new, -1).astype(np.int64),
        t_idx=np.where(active, t_new, -1).astype(np.int64),
        yff=y_branch[0],
        yft=y_branch[1],
        ytf=y_branch[2],
        ytt=y_branch[3],
        vn_from_kv=br.get("vn_f"),
        vn_to_kv=br.get("vn_t"),
        rate_from_ka=br.get("rate_f"),
        rate_to_ka=br.get("rate_t"),
        i_side=br.get("i_side", np.int64),
        b_dc_pu=b_dc,
        shift_rad=np.deg2rad(br.get("shift")),
        load=injections["load"],
        sgen=injections["sgen"],
        storage=injections["storage"],
        gen=injections["gen"],
        meta={"compile_time_s": time.perf_counter() - t0, "grid": grid.name},
    )


def _override_slack(
    slack: str,
    bus_index: pd.Index,
    group: np.ndarray,
    ext: pd.DataFrame,
    gen: pd.DataFrame,
    island: np.ndarray,
    ref_grp: np.ndarray,
    ref_vm: np.ndarray,
    ref_va: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Make ``slack`` (bus, gen or ext_grid id) the only reference of its island."""
    if slack in ext.index:
        g, vm, va = group[bus_index.get_loc(ext.at[slack, "bus"])], ext.at[slack, "vm_pu"], ext.at[slack, "va_degree"]
    elif slack in gen.index:
        g, vm, va = group[bus_index.get_loc(gen.at[slack, "bus"])], gen.at[slack, "vm_pu"], 0.0
    elif slack in bus_index:
        g = group[bus_index.get_loc(slack)]
        same = ref_grp == g
        vm = ref_vm[same][0] if same.any() else 1.0
        va = 0.0
    else:
        raise ValueError(f"slack {slack!r} is neither a bus, a gen nor an ext_grid id")
    other = island[ref_grp] != island[g]
    return (
        np.concatenate([[g], ref_grp[other]]),
        np.concatenate([[vm], ref_vm[other]]),
        np.concatenate([[va], ref_va[other]]),
    )
