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
    sn = float(grid.sn_mva)
    bus = grid.bus
    bus_index = pd.Index(bus.index)
    nb = len(bus)
    if nb == 0:
        raise ValueError(f"grid {grid.name!r} has no buses")

    # --- switches: merge closed bus-bus switches ----------------------------------------------
    sw = grid.switch
    is_bb = (sw["et"] == "b").to_numpy()
    closed = sw["closed"].to_numpy(bool)
    bb = is_bb & closed
    if (bb & (sw["z_ohm"].to_numpy(float) > 0)).any():
        bad = sw.index[bb & (sw["z_ohm"].to_numpy(float) > 0)][:5].tolist()
        raise NotImplementedError(f"closed bus-bus switches with z_ohm > 0 ({bad}) are not modelled yet; set z_ohm=0")
    sw_bus = _bus_positions(bus_index, sw["bus"], "switch", "bus")
    sw_other = np.full(len(sw), -1, dtype=np.int64)
    if is_bb.any():
        sw_other[is_bb] = _bus_positions(bus_index, sw.loc[is_bb, "element"], "switch", "element")
    group, n_group = merge_buses(nb, sw_bus[bb], sw_other[bb])
    bus_in_service = bus["in_service"].to_numpy(bool)
    grp_in_service = np.zeros(n_group, dtype=bool)
    np.logical_or.at(grp_in_service, group, bus_in_service)
    grp_vn = np.zeros(n_group)
    first_member = np.full(n_group, nb, dtype=np.int64)
    np.minimum.at(first_member, group, np.arange(nb))
    grp_vn = bus["vn_kv"].to_numpy(float)[first_member]
    aux_vn: list[float] = []

    def new_aux(vn_kv: np.ndarray) -> np.ndarray:
        start = n_group + len(aux_vn)
        aux_vn.extend(vn_kv.tolist())
        return np.arange(start, start + len(vn_kv), dtype=np.int64)

    # open branch switches: (table, element id) -> set of bus positions where the branch is cut
    open_sw = ~closed & ~is_bb
    cut = pd.DataFrame(
        {"et": sw["et"].to_numpy()[open_sw], "element": sw["element"].to_numpy()[open_sw], "bus": sw_bus[open_sw]}
    ).drop_duplicates()

    def cut_mask(et: str, ids: pd.Index, end_pos: np.ndarray) -> np.ndarray:
        c = cut[cut["et"] == et]
        if c.empty:
            return np.zeros(len(ids), dtype=bool)
        key = pd.MultiIndex.from_arrays([c["element"].to_numpy(), c["bus"].to_numpy()])
        return pd.MultiIndex.from_arrays([ids.to_numpy(), end_pos]).isin(key)

    br = _Branches()
    # --- lines ---------------------------------------------------------------------------------
    line = grid.line
    if len(line):
        fpos = _bus_positions(bus_index, line["from_bus"], "line", "from_bus")
        tpos = _bus_positions(bus_index, line["to_bus"], "line", "to_bus")
        f, t = group[fpos].copy(), group[tpos].copy()
        base_kv = grp_vn[f]
        r, x, g, b = line_pi(
            line["r_ohm_per_km"].to_numpy(float),
            line["x_ohm_per_km"].to_numpy(float),
            line["c_nf_per_km"].to_numpy(float),
            line["g_us_per_km"].to_numpy(float),
            line["length_km"].to_numpy(float),
            line["parallel"].to_numpy(float),
            base_kv,
            sn,
            float(grid.f_hz),
        )
        for end_pos, ends in ((fpos, f), (tpos, t)):
            m = cut_mask("l", line.index, end_pos)
            if m.any():
                ends[m] = new_aux(grp_vn[group[end_pos[m]]])
        rate = line["max_i_ka"].to_numpy(float) * line["df"].to_numpy(float) * line["parallel"].to_numpy(float)
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
            vn_f=grp_vn[group[fpos]],
            vn_t=grp_vn[group[tpos]],
            rate_f=rate,
            rate_t=rate,
            i_side=np.zeros(n, dtype=np.int64),
        )
    # --- two-winding transformers ----------------------------------------------------------------
    trafo = grid.trafo
    if len(trafo):
        hpos = _bus_positions(bus_index, trafo["hv_bus"], "trafo", "hv_bus")
        lpos = _bus_positions(bus_index, trafo["lv_bus"], "trafo", "lv_bus")
        f, t = group[hpos].copy(), group[lpos].copy()
        inp = _trafo_inputs(trafo)
        pi = trafo_pi(vn_hv_bus_kv=grp_vn[f], vn_lv_bus_kv=grp_vn[t], sys_sn_mva=sn, **inp)
        for end_pos, ends in ((hpos, f), (lpos, t)):
            m = cut_mask("t", trafo.index, end_pos)
            if m.any():
                ends[m] = new_aux(grp_vn[group[end_pos[m]]])
        s_rated = trafo["sn_mva"].to_numpy(float) * trafo["df"].to_numpy(float) * trafo["parallel"].to_numpy(float)
        n = len(trafo)
        br.add(
            ids=trafo.index.to_numpy(object),
            kind=np.full(n, "trafo", dtype=object),
            f=f,
            t=t,
            r=pi["r"],
            x=pi["x"],
            g=pi["g"],
            b=pi["b"],
            g_asym=pi["g_asym"],
            b_asym=pi["b_asym"],
            ratio=pi["ratio"],
            shift=pi["shift_degree"],
            in_service=trafo["in_service"].to_numpy(bool),
            vn_f=grp_vn[group[hpos]],
            vn_t=grp_vn[group[lpos]],
            rate_f=s_rated / (SQRT3 * inp["vn_hv_kv"]),
            rate_t=s_rated / (SQRT3 * inp["vn_lv_kv"]),
            i_side=np.ones(n, dtype=np.int64),
        )
    # --- three-winding transformers: star point = auxiliary bus --------------------------------
    t3 = grid.trafo3w
    if len(t3):
        pos3 = {s: _bus_positions(bus_index, t3[f"{s}_bus"], "trafo3w", f"{s}_bus") for s in ("hv", "mv", "lv")}
        star = new_aux(grp_vn[group[pos3["hv"]]])
        sides = trafo3w_to_trafos({c: t3[c].to_numpy() for c in t3.columns})
        n = len(t3)
        for side, inp in sides.items():
            outer = group[pos3[side]].copy()
            m = cut_mask("t3", t3.index, pos3[side])
            if m.any():
                outer[m] = new_aux(grp_vn[group[pos3[side][m]]])
            f, t = (outer, star) if side == "hv" else (star, outer)
            vn_all = np.concatenate([grp_vn, np.asarray(aux_vn)])
            pi = trafo_pi(vn_hv_bus_kv=vn_all[f], vn_lv_bus_kv=vn_all[t], sys_sn_mva=sn, **inp)
            rated = inp["sn_mva"] / (SQRT3 * (inp["vn_hv_kv"] if side == "hv" else inp["vn_lv_kv"]))
            inf = np.full(n, np.inf)
            br.add(
                ids=np.array([f"{i}/{side}" for i in t3.index], dtype=object),
                kind=np.full(n, "trafo3w", dtype=object),
                f=f,
                t=t,
                r=pi["r"],
                x=pi["x"],
                g=pi["g"],
                b=pi["b"],
                g_asym=pi["g_asym"],
                b_asym=pi["b_asym"],
                ratio=pi["ratio"],
                shift=pi["shift_degree"],
                in_service=t3["in_service"].to_numpy(bool),
                vn_f=vn_all[f],
                vn_t=vn_all[t],
                rate_f=rated if side == "hv" else inf,
                rate_t=inf if side == "hv" else rated,
                i_side=np.full(n, 1 if side == "hv" else 2, dtype=np.int64),
            )

    n_all = n_group + len(aux_vn)
    all_vn = np.concatenate([grp_vn, np.asarray(aux_vn, dtype=float)])
    all_in_service = np.concatenate([grp_in_service, np.ones(len(aux_vn), dtype=bool)])
    bf, bt = br.get("f", np.int64), br.get("t", np.int64)
    active = br.get("in_service", bool) & all_in_service[bf] & all_in_service[bt] if len(bf) else np.zeros(0, bool)

    # --- slack / PV buses --------------------------------------------------------------------------
    ext = grid.ext_grid
    ext_on = ext["in_service"].to_numpy(bool)
    ext_grp = group[_bus_positions(bus_index, ext["bus"], "ext_grid", "bus")] if len(ext) else np.zeros(0, np.int64)
    gen = grid.gen
    gen_on = gen["in_service"].to_numpy(bool)
    gen_grp = group[_bus_positions(bus_index, gen["bus"], "gen", "bus")] if len(gen) else np.zeros(0, np.int64)
    gen_slack = gen["slack"].to_numpy(bool) & gen_on
    ref_grp = np.concatenate([ext_grp[ext_on], gen_grp[gen_slack]])
    ref_vm = np.concatenate([ext["vm_pu"].to_numpy(float)[ext_on], gen["vm_pu"].to_numpy(float)[gen_slack]])
    ref_va = np.concatenate([ext["va_degree"].to_numpy(float)[ext_on], np.zeros(int(gen_slack.sum()))])
    keep = all_in_service[ref_grp]
    ref_grp, ref_vm, ref_va = ref_grp[keep], ref_vm[keep], ref_va[keep]

    island = find_islands(n_all, bf[active], bt[active])
    if slack is not None:
        ref_grp, ref_vm, ref_va = _override_slack(slack, bus_index, group, ext, gen, island, ref_grp, ref_vm, ref_va)
    if len(ref_grp) == 0:
        raise ValueError(f"grid {grid.name!r} has no slack: add an ext_grid or a gen with slack=True, or pass slack=ID")
    energised_island = np.zeros(island.max() + 1, dtype=bool)
    energised_island[island[ref_grp]] = True
    energised = energised_island[island] & all_in_service

    # renumber energised buses 0..n-1
    new_idx = np.full(n_all, -1, dtype=np.int64)
    new_idx[energised] = np.arange(int(energised.sum()))
    n = int(energised.sum())
    bus_type = np.full(n, PQ, dtype=np.int64)
    v_set = np.ones(n, dtype=np.complex128)
    # PV first, REF overrides (first set-point on a bus wins, as pandapower)
    pv_grp = gen_grp[gen_on & ~gen["slack"].to_numpy(bool)]
    pv_vm = gen["vm_pu"].to_numpy(float)[gen_on & ~gen["slack"].to_numpy(bool)]
    pv_ok = new_idx[pv_grp] >= 0 if len(pv_grp) else np.zeros(0, bool)
    pv_new, first = np.unique(new_idx[pv_grp[pv_ok]], return_index=True)
    bus_type[pv_new] = PV
    v_set[pv_new] = pv_vm[pv_ok][first]
    ref_new, first = np.unique(new_idx[ref_grp], return_index=True)
    bus_type[ref_new] = REF
    v_set[ref_new] = ref_vm[first] * np.exp(1j * np.deg2rad(ref_va[first]))

    # --- shunts --------------------------------------------------------------------------------------
    y_sh = np.zeros(n, dtype=np.complex128)
    y_sh_grid = np.zeros(nb, dtype=np.complex128)
    shunt = grid.shunt
    if len(shunt):
        sh_grp = group[_bus_positions(bus_index, shunt["bus"], "shunt", "bus")]
        sh_new = new_idx[sh_grp]
        ok = shunt["in_service"].to_numpy(bool) & (sh_new >= 0)
        vn_sh = shunt["vn_kv"].to_numpy(float)
        vn_sh = np.where(np.isnan(vn_sh), all_vn[sh_grp], vn_sh)
        v_ratio = (all_vn[sh_grp] / vn_sh) ** 2
        step = shunt["step"].to_numpy(float)
        y = (shunt["p_mw"].to_numpy(float) - 1j * shunt["q_mvar"].to_numpy(float)) * step * v_ratio / sn
        np.add.at(y_sh, sh_new[ok], y[ok])
        np.add.at(y_sh_grid, _bus_positions(bus_index, shunt["bus"], "shunt", "bus")[ok], y[ok])

    # --- branches in compiled numbering ------------------------------------------------------------
    f_new = new_idx[bf] if len(bf) else bf
    t_new = new_idx[bt] if len(bt) else bt
    active &= (f_new >= 0) & (t_new >= 0)
    yff, yft, ytf, ytt = branch_admittances(
        br.get("r"),
        br.get("x"),
        br.get("g"),
        br.get("b"),
        br.get("g_asym"),
        br.get("b_asym"),
        br.get("ratio"),
        br.get("shift"),
    )
    a = active
    rows = np.concatenate([f_new[a], f_new[a], t_new[a], t_new[a], np.arange(n)])
    cols = np.concatenate([f_new[a], t_new[a], f_new[a], t_new[a], np.arange(n)])
    vals = np.concatenate([yff[a], yft[a], ytf[a], ytt[a], y_sh])
    ybus = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    ybus.sum_duplicates()
    ybus.sort_indices()
    x = br.get("x")
    ratio = br.get("ratio")
    with np.errstate(divide="ignore"):
        b_dc = np.where(x != 0, 1.0 / (x * np.where(ratio != 0, ratio, 1.0)), 0.0)

    # --- injections ----------------------------------------------------------------------------------
    grp_new = new_idx[:n_group][group]  # compiled bus of each Grid bus

    def inj(table: str, sign: float, has_q: bool = True) -> ElementInjection:
        df = grid[table]
        e = _injection(df, group, bus_index, table, sign, has_q)
        b_new = np.where(e.bus_idx >= 0, new_idx[np.maximum(e.bus_idx, 0)], -1)
        return ElementInjection(e.ids, b_new.astype(np.int64), e.grid_bus_pos, e.p_mw, e.q_mvar, e.scaling, e.sign)

    load = grid.load
    zip_cols = ["const_z_p_percent", "const_i_p_percent", "const_z_q_percent", "const_i_q_percent"]
    zip_used = (load[zip_cols].to_numpy(float) != 0).any(axis=1) & load["in_service"].to_numpy(bool)
    if zip_used.any():
        raise NotImplementedError(
            f"loads {load.index[zip_used][:5].tolist()} have voltage-dependent (ZIP) shares; gridtwin models "
            "constant-power loads only so far. Set the const_z_*/const_i_* columns to 0."
        )
    gen_inj = inj("gen", 1.0, has_q=False)
    # gens on REF buses do not set P (the slack balances); keep them out of scheduled injections
    on_ref = (gen_inj.bus_idx >= 0) & (bus_type[np.maximum(gen_inj.bus_idx, 0)] == REF)
    gen_inj = ElementInjection(
        gen_inj.ids,
        np.where(on_ref, -1, gen_inj.bus_idx),
        gen_inj.grid_bus_pos,
        gen_inj.p_mw,
        gen_inj.q_mvar,
        gen_inj.scaling,
        1.0,
    )
    # the Grid bus that takes the balancing P/Q of each REF/PV bus: its first ext_grid, else first gen
    ctrl = np.full(n, -1, dtype=np.int64)
    gen_pos_on = _bus_positions(bus_index, gen["bus"], "gen", "bus")[gen_on] if len(gen) else np.zeros(0, np.int64)
    ext_pos_on = _bus_positions(bus_index, ext["bus"], "ext_grid", "bus")[ext_on] if len(ext) else np.zeros(0, np.int64)
    for pos in (gen_pos_on[::-1], ext_pos_on[::-1]):  # reversed: the first element wins, ext_grid over gen
        tgt = grp_new[pos]
        ok = tgt >= 0
        ctrl[tgt[ok]] = pos[ok]
    isolated = int((~energised[group] & bus_in_service).sum())  # Grid buses, not merged groups
    if isolated:
        warnings.warn(
            f"{isolated} buses of {grid.name!r} are not connected to a slack; they are reported as "
            "de-energised (NaN voltage)",
            stacklevel=2,
        )
    return PFModel(
        name=grid.name,
        base_mva=sn,
        f_hz=float(grid.f_hz),
        n_bus=n,
        bus_type=bus_type,
        vn_kv=all_vn[energised],
        v_set=v_set,
        y_shunt_pu=y_sh,
        grid_bus_ids=bus.index.to_numpy(object),
        grid_bus_idx=grp_new.astype(np.int64),
        island=np.unique(island[energised], return_inverse=True)[1].astype(np.int64),
        grid_bus_y_shunt_pu=y_sh_grid,
        ctrl_grid_bus_pos=ctrl,
        ybus=ybus,
        branch_ids=br.get("ids"),
        branch_kind=br.get("kind"),
        branch_active=active,
        f_idx=np.where(active, f_new, -1).astype(np.int64),
        t_idx=np.where(active, t_new, -1).astype(np.int64),
        yff=yff,
        yft=yft,
        ytf=ytf,
        ytt=ytt,
        vn_from_kv=br.get("vn_f"),
        vn_to_kv=br.get("vn_t"),
        rate_from_ka=br.get("rate_f"),
        rate_to_ka=br.get("rate_t"),
        i_side=br.get("i_side", np.int64),
        b_dc_pu=b_dc,
        shift_rad=np.deg2rad(br.get("shift")),
        load=inj("load", -1.0),
        sgen=inj("sgen", 1.0),
        storage=inj("storage", -1.0),
        gen=gen_inj,
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
