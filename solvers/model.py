"""Compiled power-flow model: frozen dataclasses of numpy arrays, no pandas, no Grid.

Index kinds (never mixed): ``*_id`` stable string ids, ``*_pos`` rows of a Grid table,
``*_idx`` positions in the compiled arrays below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["BusIdx", "ElementInjection", "GridPos", "PFModel"]

BusIdx = NDArray[np.int64]
"""Positions in the compiled bus arrays (``*_idx``)."""
GridPos = NDArray[np.int64]
"""Row positions in a Grid table (``*_pos``)."""

# Bus types as in MATPOWER.
PQ, PV, REF = 1, 2, 3


@dataclass(frozen=True, slots=True)
class ElementInjection:
    """Power injections of one element family (loads, sgens, storage, gens) mapped to buses.

    ``sign`` is +1 for generator convention (sgen, gen) and -1 for consumer convention
    (load, storage): the bus injection at 1 pu voltage is ``sign * scaling * (p_mw + 1j q_mvar)``.

    Voltage-dependent loads (pandapower's ZIP model) carry the constant-impedance and
    constant-current fractions ``z_p, i_p`` of ``p_mw`` and ``z_q, i_q`` of ``q_mvar`` (0..1; the rest
    is constant power): at magnitude ``vm`` the element takes ``p_mw * (1 - z_p - i_p + i_p vm + z_p vm²)``,
    likewise for ``q_mvar``. ``None`` means constant power throughout.
    """

    ids: NDArray[np.object_]
    bus_idx: BusIdx  # -1 where the element is out of service or its bus de-energised
    grid_bus_pos: GridPos  # row of the element's bus in the Grid's bus table
    p_mw: NDArray[np.float64]
    q_mvar: NDArray[np.float64]
    scaling: NDArray[np.float64]
    sign: float
    z_p: NDArray[np.float64] | None = None
    i_p: NDArray[np.float64] | None = None
    z_q: NDArray[np.float64] | None = None
    i_q: NDArray[np.float64] | None = None

    @property
    def has_vdep(self) -> bool:
        """Whether any active element depends on the voltage (a non-zero Z or I share)."""
        if self.z_p is None:
            return False
        act = self.active
        return bool(np.any(np.stack([self.z_p, self.i_p, self.z_q, self.i_q])[:, act] != 0))

    def vdep_factors(
        self, vm: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]] | tuple[float, float]:
        """Multipliers of ``p_mw`` and ``q_mvar`` at magnitudes ``vm`` (pu, broadcast over elements)."""
        if self.z_p is None:
            return 1.0, 1.0
        fp = 1.0 - self.z_p - self.i_p + self.i_p * vm + self.z_p * vm**2
        fq = 1.0 - self.z_q - self.i_q + self.i_q * vm + self.z_q * vm**2
        return fp, fq

    def s_vdep_mva(
        self, n_bus: int, p_mw: NDArray[np.float64] | None = None, q_mvar: NDArray[np.float64] | None = None
    ) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
        """Constant-current and constant-impedance parts of the bus injections at 1 pu (MVA, generator sign).

        ``p_mw``/``q_mvar`` override the stored values: (n_element,) or (T, n_element), giving (T, n_bus).
        """
        p = self.p_mw if p_mw is None else p_mw
        q = self.q_mvar if q_mvar is None else q_mvar
        shape = (*np.shape(p)[:-1], n_bus)
        if self.z_p is None:
            return np.zeros(shape, dtype=np.complex128), np.zeros(shape, dtype=np.complex128)
        act = np.flatnonzero(self.active)
        inc = sp.csr_matrix(
            (self.sign * self.scaling[act], (self.bus_idx[act], act)), shape=(n_bus, len(self.ids))
        ).astype(np.complex128)
        pa, qa = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
        s_i = (inc @ np.atleast_2d(pa * self.i_p + 1j * qa * self.i_q).T).T
        s_z = (inc @ np.atleast_2d(pa * self.z_p + 1j * qa * self.z_q).T).T
        return s_i.reshape(shape), s_z.reshape(shape)

    @property
    def active(self) -> NDArray[np.bool_]:
        """Elements that inject into the compiled model."""
        return self.bus_idx >= 0

    def s_bus_mva(
        self, n_bus: int, p_mw: NDArray[np.float64] | None = None, q_mvar: NDArray[np.float64] | None = None
    ) -> NDArray[np.complex128]:
        """Return the bus injections (generator convention, MVA) of these elements.

        ``p_mw``/``q_mvar`` override the stored values (same order as ``ids``).
        """
        p = self.p_mw if p_mw is None else p_mw
        q = self.q_mvar if q_mvar is None else q_mvar
        act = self.active
        s = self.sign * self.scaling[act] * (p[act] + 1j * q[act])
        return np.bincount(self.bus_idx[act], weights=s.real, minlength=n_bus) + 1j * np.bincount(
            self.bus_idx[act], weights=s.imag, minlength=n_bus
        )


@dataclass(frozen=True, slots=True)
class PFModel:
    """Arrays of a compiled grid, ready for the kernels.

    Buses are the energised, merged buses (closed bus-bus switches fused) plus auxiliary buses
    (open branch ends, three-winding star points). Branches are in-service lines, transformers
    and three-winding windings whose both ends are energised.
    """

    name: str
    base_mva: float
    f_hz: float
    # --- buses ----------------------------------------------------------------------------
    n_bus: int
    bus_type: NDArray[np.int64]  # PQ / PV / REF per compiled bus
    vn_kv: NDArray[np.float64]
    v_set: NDArray[np.complex128]  # set-point voltage (REF: vm∠va, PV: vm∠0, PQ: 1∠0), pu
    y_shunt_pu: NDArray[np.complex128]  # shunt admittance per bus, pu (in Ybus diagonal)
    grid_bus_ids: NDArray[np.object_]  # every Grid bus id, in Grid order
    grid_bus_idx: BusIdx  # compiled bus of each Grid bus, -1 when de-energised
    island: NDArray[np.int64]  # island number of each compiled bus
    grid_bus_y_shunt_pu: NDArray[np.complex128]  # in-service shunt admittance per Grid bus, pu
    ctrl_grid_bus_pos: GridPos  # per compiled bus: Grid bus hosting its slack/gen (balances P/Q), -1 if none
    # --- admittances ------------------------------------------------------------------------
    ybus: sp.csr_matrix  # complex, pu, sorted indices, explicit diagonal
    # --- branches -----------------------------------------------------------------------------
    branch_ids: NDArray[np.object_]  # every branch of the Grid (line/…, trafo/…, trafo3w/…/hv|mv|lv)
    branch_kind: NDArray[np.object_]
    branch_active: NDArray[np.bool_]
    f_idx: BusIdx  # compiled from bus (valid where active)
    t_idx: BusIdx
    yff: NDArray[np.complex128]
    yft: NDArray[np.complex128]
    ytf: NDArray[np.complex128]
    ytt: NDArray[np.complex128]
    vn_from_kv: NDArray[np.float64]
    vn_to_kv: NDArray[np.float64]
    rate_from_ka: NDArray[np.float64]  # loading_pct = 100 * max(i_from/rate_from, i_to/rate_to)
    rate_to_ka: NDArray[np.float64]
    i_side: NDArray[np.int64]  # i_ka reports: 0 max of both ends (lines), 1 from end, 2 to end
    b_dc_pu: NDArray[np.float64]  # 1 / x of the series branch for DC power flow (pu), 0 if x == 0
    shift_rad: NDArray[np.float64]  # phase shift of the branch, rad
    # --- injections -------------------------------------------------------------------------
    load: ElementInjection
    sgen: ElementInjection
    storage: ElementInjection
    gen: ElementInjection
    meta: dict[str, object] = field(default_factory=dict)
    cache: dict[str, object] = field(default_factory=dict)  # derived solver structures (Jacobian pattern)

    @property
    def pv_idx(self) -> BusIdx:
        """Compiled indices of PV buses."""
        return np.flatnonzero(self.bus_type == PV)

    @property
    def pq_idx(self) -> BusIdx:
        """Compiled indices of PQ buses."""
        return np.flatnonzero(self.bus_type == PQ)

    @property
    def ref_idx(self) -> BusIdx:
        """Compiled indices of reference (slack) buses."""
        return np.flatnonzero(self.bus_type == REF)

    def s_vdep_mva(self) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
        """Constant-current and constant-impedance shares of :meth:`s_bus_mva` per bus (MVA at 1 pu)."""
        return self.load.s_vdep_mva(self.n_bus)

    def s_bus_mva(self) -> NDArray[np.complex128]:
        """Return the scheduled bus injections of the stored element values at 1 pu (generator convention, MVA)."""
        n = self.n_bus
        return (
            self.load.s_bus_mva(n)
            + self.sgen.s_bus_mva(n)
            + self.storage.s_bus_mva(n)
            + self.gen.s_bus_mva(n, q_mvar=np.zeros_like(self.gen.p_mw))
        )

    @property
    def size(self) -> dict[str, int]:
        """Counts of compiled buses, branches and injecting elements."""
        return {
            "bus": self.n_bus,
            "branch": int(self.branch_active.sum()),
            "pv": int((self.bus_type == PV).sum()),
            "ref": int((self.bus_type == REF).sum()),
        }
