"""Shedding problem as arrays: devices, (device, step) pairs that can be curtailed, and linear constraint rows.

Everything the model builder needs is prepared here with numpy (the template); :mod:`solvers.shedding.build`
only turns these arrays into Pyomo components (the formulation).

Sign conventions: a *pair* is one controllable device at one step with something to curtail (``ub_mw > 0``).
Curtailing ``x`` MW of it changes the bus injection (generator convention) by ``effect_p · x`` MW and
``effect_q · x`` Mvar: loads ``+scaling`` (shedding raises the net injection), static generators ``-scaling``,
storage ``+scaling`` while charging and ``-scaling`` while discharging (its operation is reduced towards zero).
``effect_q = effect_p · q/p`` keeps each device's power factor.

Constraint rows are all written ``coef · x - slack ≤ rhs`` (lower limits are negated), one row per
(asset or bus, step), with a non-negative slack of penalty ``penalty`` per unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from solvers.model import PFModel
from solvers.shedding.linearise import Sensitivity

__all__ = ["BaseCase", "Devices", "RowBlock", "SheddingData", "build_data", "build_payback", "expand_rows"]

FAMILIES = ("load", "sgen", "storage")
MIN_PAIR_MW = 1e-7  # pairs below 0.1 W of curtailable power are not created
RISE_WEIGHT = 1e-2  # weight of upward changes (MW) relative to the cheapest shed energy weight


@dataclass(frozen=True, slots=True)
class Devices:
    """Controllable devices (one row per element) and their curtailable pairs."""

    ids: NDArray[np.object_]
    kind: NDArray[np.object_]  # "load" | "sgen" | "storage"
    elem_pos: NDArray[np.int64]  # position in the model's ElementInjection of that family
    bus_idx: NDArray[np.int64]  # compiled bus
    weight: NDArray[np.float64]  # cost per MWh
    pair_device: NDArray[np.int64]
    pair_time: NDArray[np.int64]
    ub_mw: NDArray[np.float64]  # curtailable power of the pair, MW
    effect_p: NDArray[np.float64]  # injection change per MW curtailed, MW/MW
    effect_q: NDArray[np.float64]  # Mvar/MW
    pair_pos: NDArray[np.int64]  # (n_device, n_time) pair number or -1

    @property
    def n_pair(self) -> int:
        """Number of (device, step) pairs."""
        return len(self.pair_device)

    def neighbour(self, shift: int) -> NDArray[np.int64]:
        """Pair of the same device ``shift`` steps later (earlier when negative), -1 when it does not exist."""
        t = self.pair_time + shift
        ok = (t >= 0) & (t < self.pair_pos.shape[1])
        out = np.full(self.n_pair, -1, dtype=np.int64)
        out[ok] = self.pair_pos[self.pair_device[ok], t[ok]]
        return out


@dataclass(frozen=True, slots=True)
class RowBlock:
    """Rows ``coef · x - slack ≤ rhs`` in CSR form over pair numbers, with their meaning."""

    kind: NDArray[np.object_]  # "loading" | "vm_max" | "vm_min"
    entity: NDArray[np.object_]  # branch id or Grid bus id
    time: NDArray[np.int64]
    indptr: NDArray[np.int64]
    pair: NDArray[np.int64]
    coef: NDArray[np.float64]
    rhs: NDArray[np.float64]
    penalty: NDArray[np.float64]
    scale: NDArray[np.float64]  # quantity per row unit: +1 (loading %, vm) or -1 (negated lower limits)

    @property
    def n_row(self) -> int:
        """Number of rows."""
        return len(self.rhs)


@dataclass(frozen=True, slots=True)
class BaseCase:
    """AC operating point at the forecast injections (time × branch / compiled bus)."""

    loading_pct: NDArray[np.float64]
    p_from_mw: NDArray[np.float64]
    q_from_mvar: NDArray[np.float64]
    vm_pu: NDArray[np.float64]  # (time, compiled bus)


@dataclass(frozen=True, slots=True)
class SheddingData:
    """Everything the model builder needs, as arrays."""

    devices: Devices
    rows: RowBlock
    dt_h: float
    discrete: bool
    min_on_steps: int
    rise_weight: float  # objective weight per MW of upward change (fewest commands)
    payback: Devices | None = None  # rebound: every step of each heating device, ub = headroom (MW)
    rebound: float = 0.0  # share of shed energy paid back later

    @property
    def n_col(self) -> int:
        """Row columns: curtailment pairs, then pay-back pairs."""
        return self.devices.n_pair + (self.payback.n_pair if self.payback is not None else 0)


def build_devices(
    model: PFModel,
    values: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
    chosen: dict[str, NDArray[np.int64]],
    weight: dict[str, NDArray[np.float64]],
) -> Devices:
    """Collect the devices ``chosen[family]`` (element positions) and their curtailable pairs.

    ``values[family]`` = (p, q) matrices (time, element) of the forecast, MW / Mvar (consumer sign for loads and
    storage, generator sign for sgens, as in the Grid tables).
    """
    parts: dict[str, list[NDArray]] = {k: [] for k in ("ids", "kind", "pos", "bus", "w", "ub", "ep", "eq")}
    for fam in FAMILIES:
        pos = chosen.get(fam, np.zeros(0, np.int64))
        e = getattr(model, fam)
        p, q = (v[:, pos] for v in values[fam])
        scaling = e.scaling[pos][None, :]
        if fam == "storage":
            ub, ep = np.abs(p), np.sign(p) * scaling
        else:
            ub = np.maximum(p, 0.0)
            ep = np.broadcast_to(scaling if fam == "load" else -scaling, p.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            eq = np.where(ub > MIN_PAIR_MW, ep * q / np.where(p != 0, p, 1.0), 0.0)
        parts["ids"].append(e.ids[pos])
        parts["kind"].append(np.full(len(pos), fam, dtype=object))
        parts["pos"].append(pos)
        parts["bus"].append(e.bus_idx[pos])
        parts["w"].append(weight[fam])
        parts["ub"].append(ub)
        parts["ep"].append(ep)
        parts["eq"].append(eq)
    ub = np.hstack(parts["ub"])  # (time, device)
    exists = ub.T > MIN_PAIR_MW  # (device, time)
    dev, t = np.nonzero(exists)
    pair_pos = np.full(exists.shape, -1, dtype=np.int64)
    pair_pos[dev, t] = np.arange(len(dev))
    return Devices(
        ids=np.concatenate(parts["ids"]).astype(object),
        kind=np.concatenate(parts["kind"]),
        elem_pos=np.concatenate(parts["pos"]).astype(np.int64),
        bus_idx=np.concatenate(parts["bus"]).astype(np.int64),
        weight=np.concatenate(parts["w"]).astype(float),
        pair_device=dev.astype(np.int64),
        pair_time=t.astype(np.int64),
        ub_mw=ub.T[dev, t],
        effect_p=np.hstack(parts["ep"]).T[dev, t],
        effect_q=np.hstack(parts["eq"]).T[dev, t],
        pair_pos=pair_pos,
    )


def expand_rows(
    g: sp.csr_matrix, entity: NDArray[np.int64], time: NDArray[np.int64], devices: Devices
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Non-zeros of rows (entity, time) of ``g`` (entity × device) restricted to existing pairs.

    Returns
    -------
    (row, pair, nz) : arrays of int
        Row number, pair number and position in ``g.data`` of every kept entry (sorted by row).
    """
    start, stop = g.indptr[entity], g.indptr[entity + 1]
    length = stop - start
    row = np.repeat(np.arange(len(entity)), length)
    offset = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
    nz = np.repeat(start, length) + offset
    pair = devices.pair_pos[g.indices[nz], np.repeat(time, length)]
    keep = pair >= 0
    return row[keep], pair[keep], nz[keep]


def _csr(n_row: int, row: NDArray[np.int64], pair: NDArray[np.int64], coef: NDArray[np.float64]) -> tuple:
    order = np.argsort(row, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=n_row))]).astype(np.int64)
    return indptr, pair[order], coef[order]


def _penalty(indptr: NDArray[np.int64], pair: NDArray[np.int64], coef: NDArray[np.float64], cost: NDArray) -> NDArray:
    """Slack penalty per row: 10 × the dearest relief among the entries that relieve it by ≥ 0.1 % of the best."""
    n_row = len(indptr) - 1
    out = np.full(n_row, 10.0 * float(cost.max(initial=1.0)))
    if not len(coef):
        return out
    row = np.repeat(np.arange(n_row), np.diff(indptr))
    relief = np.maximum(-coef, 0.0)
    best = np.zeros(n_row)
    np.maximum.at(best, row, relief)
    ok = relief >= 1e-3 * best[row]
    ok &= relief > 0
    price = np.zeros(n_row)
    np.maximum.at(price, row[ok], cost[pair[ok]] / relief[ok])
    return np.maximum(out, 10.0 * price)


def loading_rows(
    sens: Sensitivity, base: BaseCase, devices: Devices, branch: NDArray[np.int64], time: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Entries of the loading rows (branch, time): d(loading %)/d(curtailment MW).

    Loading is proportional to |S| at the AC operating point, so ΔL ≈ L0 (P0 ΔP + Q0 ΔQ) / S0² (first order).
    """
    g = sp.csr_matrix(sens.flow[:, devices.bus_idx])
    row, pair, nz = expand_rows(g, branch, time, devices)
    p0 = base.p_from_mw[time, branch]
    q0 = base.q_from_mvar[time, branch]
    s2 = np.maximum(p0**2 + q0**2, 1e-12)
    k = base.loading_pct[time, branch] / s2
    coef = k[row] * g.data[nz] * (p0[row] * devices.effect_p[pair] + q0[row] * devices.effect_q[pair])
    return row, pair, coef


def voltage_rows(
    sens: Sensitivity,
    base: BaseCase,
    devices: Devices,
    bus: NDArray[np.int64],
    time: NDArray[np.int64],
    base_mva: float,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Entries of voltage rows (compiled bus, time): d(vm)/d(curtailment MW) by LinDistFlow, pu/MW."""
    ubus, inv = np.unique(bus, return_inverse=True)
    g = sens.voltage(ubus, devices.bus_idx)
    g.eliminate_zeros()
    row, pair, nz = expand_rows(g, inv.astype(np.int64), time, devices)
    vm0 = base.vm_pu[time, bus]
    dv2 = g.data[nz].real * devices.effect_p[pair] + g.data[nz].imag * devices.effect_q[pair]
    return row, pair, dv2 / (2.0 * vm0[row] * base_mva)


def assemble_rows(
    blocks: list[tuple[str, NDArray, NDArray, tuple, NDArray, NDArray, NDArray]], col_cost: NDArray[np.float64]
) -> RowBlock:
    """Stack row families ``(kind, entity_ids, time, (row, column, coef), value0, limit, sign)`` into one RowBlock.

    ``sign`` +1: ``value0 + coef·x ≤ limit``; -1: ``value0 + coef·x ≥ limit``. ``col_cost`` is the objective
    weight of each column (sets the slack penalties).
    """
    kinds, ents, times, rows, pairs, coefs, rhs, scale = [], [], [], [], [], [], [], []
    offset = 0
    for kind, ent, t, (row, pair, coef), value0, limit, sign in blocks:
        kinds.append(np.full(len(t), kind, dtype=object))
        ents.append(np.asarray(ent, dtype=object))
        times.append(t)
        rows.append(row + offset)
        pairs.append(pair)
        coefs.append(sign * coef)
        rhs.append(sign * (limit - value0))
        scale.append(np.full(len(t), float(sign)))
        offset += len(t)
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    indptr, pair, coef = _csr(
        offset,
        row,
        np.concatenate(pairs) if pairs else np.zeros(0, np.int64),
        np.concatenate(coefs) if coefs else np.zeros(0),
    )
    scale_rows = scale
    return RowBlock(
        kind=np.concatenate(kinds) if kinds else np.zeros(0, object),
        entity=np.concatenate(ents) if ents else np.zeros(0, object),
        time=np.concatenate(times).astype(np.int64) if times else np.zeros(0, np.int64),
        indptr=indptr,
        pair=pair,
        coef=coef,
        rhs=np.concatenate(rhs) if rhs else np.zeros(0),
        penalty=_penalty(indptr, pair, coef, col_cost),
        scale=np.concatenate(scale_rows) if blocks else np.zeros(0),
    )


def build_payback(
    devices: Devices,
    p_mw: NDArray[np.float64],
    heating: NDArray[np.bool_],
    rated_mw: NDArray[np.float64],
    q_per_p: NDArray[np.float64],
    scaling: NDArray[np.float64],
) -> Devices:
    """Pay-back pairs of the heating devices: every step, ``ub`` = rated power minus the forecast (MW).

    ``p_mw`` and ``q_per_p`` are (time, device); ``heating``, ``rated_mw`` and ``scaling`` per device. Paying
    back raises consumption: ``effect_p = -scaling``, the opposite of shedding, and Q follows the power factor.
    """
    n_t = devices.pair_pos.shape[1]
    dev = np.repeat(np.flatnonzero(heating), n_t)
    t = np.tile(np.arange(n_t), int(heating.sum()))
    ub = np.maximum(rated_mw[dev] - p_mw[t, dev], 0.0)
    pair_pos = np.full(devices.pair_pos.shape, -1, dtype=np.int64)
    pair_pos[dev, t] = np.arange(len(dev))
    return Devices(
        devices.ids, devices.kind, devices.elem_pos, devices.bus_idx, np.zeros(len(devices.ids)),
        dev.astype(np.int64), t.astype(np.int64), ub, -scaling[dev], -scaling[dev] * q_per_p[t, dev], pair_pos,
    )  # fmt: skip


def build_data(
    devices: Devices,
    rows: RowBlock,
    dt_h: float,
    *,
    discrete: bool = False,
    min_on_steps: int = 1,
    payback: Devices | None = None,
    rebound: float = 0.0,
) -> SheddingData:
    """Bundle devices and rows; the upward-change weight is 10⁻² × the cheapest energy weight (fewer commands).

    On the electrified MV case this weight cuts the commands by about 30 % for 0.05 % more shed energy.
    """
    w = devices.weight[devices.pair_device] * dt_h
    rise = RISE_WEIGHT * float(w[w > 0].min()) if (w > 0).any() else 1e-6
    return SheddingData(devices, rows, dt_h, discrete, max(1, int(min_on_steps)), rise, payback, rebound)


def cost_weights(ids: NDArray[np.object_], cost: pd.Series | None) -> NDArray[np.float64]:
    """Cost per MWh of each id (1.0 where ``cost`` does not name it); raises on negative or non-finite costs."""
    if cost is None:
        return np.ones(len(ids))
    c = pd.Series(cost, dtype=float)
    bad = c[~np.isfinite(c.to_numpy()) | (c.to_numpy() < 0)]
    if len(bad):
        raise ValueError(f"cost must be finite and >= 0 per MWh; bad entries {bad.head(5).to_dict()}")
    return c.reindex(pd.Index(ids)).fillna(1.0).to_numpy(float)
