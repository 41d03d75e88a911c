"""Per-unit pi-model parameters of lines and transformers (pandapower's equations, vectorised).

These functions take plain arrays (one entry per branch) and return arrays; the only place
that reads Grid columns is :mod:`solvers.compile`, which calls them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["branch_admittances", "line_pi", "trafo3w_to_trafos", "trafo_pi"]

F64 = NDArray[np.float64]


def line_pi(
    r_ohm_per_km: F64,
    x_ohm_per_km: F64,
    c_nf_per_km: F64,
    g_us_per_km: F64,
    length_km: F64,
    parallel: F64,
    base_kv: F64,
    sn_mva: float,
    f_hz: float,
) -> tuple[F64, F64, F64, F64]:
    """Return ``r, x, g, b`` (pu on ``sn_mva`` and ``base_kv``) of lines; g, b are total shunt values."""
    base_r = base_kv**2 / sn_mva
    r = r_ohm_per_km * length_km / base_r / parallel
    x = x_ohm_per_km * length_km / base_r / parallel
    b = 2 * f_hz * np.pi * c_nf_per_km * 1e-9 * base_r * length_km * parallel
    g = g_us_per_km * 1e-6 * base_r * length_km * parallel
    return r, x, g, b


def _tap_adjusted_voltages(
    vn_hv_kv: F64,
    vn_lv_kv: F64,
    shift_degree: F64,
    tap_side: NDArray[np.object_],
    tap_pos: F64,
    tap_neutral: F64,
    tap_step_percent: F64,
    tap_step_degree: F64,
    tap_changer_type: NDArray[np.object_],
) -> tuple[F64, F64, F64]:
    """Apply tap positions: rated voltages and phase shift at the current tap (pandapower 3 rules).

    ``Ratio``/``Symmetrical`` changers change the voltage of their side (with an angle when
    ``tap_step_degree`` is set); ``Ideal`` changers only add a phase shift; an empty type means no
    tap changer (as pandapower 3.5, which ignores ``tap_pos`` then).
    """
    vnh = vn_hv_kv.astype(float).copy()
    vnl = vn_lv_kv.astype(float).copy()
    shift = shift_degree.astype(float).copy()
    tap_diff = tap_pos - tap_neutral
    has_tap = np.isfinite(tap_pos) & np.isfinite(tap_neutral)
    step_pct = np.nan_to_num(tap_step_percent, nan=0.0)
    step_deg = np.nan_to_num(tap_step_degree, nan=0.0)
    for side, vn, direction in (("hv", vnh, 1.0), ("lv", vnl, -1.0)):
        on_side = has_tap & (tap_side == side)
        ideal = on_side & (tap_changer_type == "Ideal")
        if ideal.any():
            deg_set = step_deg[ideal] != 0
            pct_set = step_pct[ideal] != 0
            if (deg_set & pct_set).any():
                raise ValueError("ideal phase shifter with both tap_step_degree and tap_step_percent set")
            td = tap_diff[ideal]
            shift[ideal] += np.where(
                deg_set,
                direction * td * step_deg[ideal],
                direction * 2 * np.rad2deg(np.arcsin(td * step_pct[ideal] / 100 / 2)),
            )
        cplx = on_side & np.isin(tap_changer_type, ("Ratio", "Symmetrical"))
        if cplx.any():
            du = vn[cplx] * step_pct[cplx] * tap_diff[cplx] / 100
            ang = np.deg2rad(step_deg[cplx])
            u1 = vn[cplx]
            re = u1 + du * np.cos(ang)
            im = du * np.sin(ang)
            vn[cplx] = np.hypot(re, im)
            shift[cplx] += np.rad2deg(np.arctan(direction * im / re))
    return vnh, vnl, shift


def trafo_pi(
    *,
    vn_hv_bus_kv: F64,
    vn_lv_bus_kv: F64,
    sn_mva: F64,
    vn_hv_kv: F64,
    vn_lv_kv: F64,
    vk_percent: F64,
    vkr_percent: F64,
    pfe_kw: F64,
    i0_percent: F64,
    shift_degree: F64,
    tap_side: NDArray[np.object_],
    tap_pos: F64,
    tap_neutral: F64,
    tap_step_percent: F64,
    tap_step_degree: F64,
    tap_changer_type: NDArray[np.object_],
    parallel: F64,
    r_ratio_hv: F64,
    x_ratio_hv: F64,
    sys_sn_mva: float,
) -> dict[str, F64]:
    """Return the pi model of two-winding transformers in pu (pandapower's ``trafo_model="t"``).

    Returns a dict with ``r, x, g, b, g_asym, b_asym`` (pu on the LV bus base), ``ratio`` (off-nominal
    tap ratio) and ``shift_degree``.
    """
    vnh, vnl, shift = _tap_adjusted_voltages(
        vn_hv_kv,
        vn_lv_kv,
        shift_degree,
        tap_side,
        tap_pos,
        tap_neutral,
        tap_step_percent,
        tap_step_degree,
        tap_changer_type,
    )
    ratio = (vnh / vnl) / (vn_hv_bus_kv / vn_lv_bus_kv)
    tap_lv = (vnl / vn_lv_bus_kv) ** 2 * sys_sn_mva
    z_sc = vk_percent / 100.0 / sn_mva * tap_lv
    r_sc = vkr_percent / 100.0 / sn_mva * tap_lv
    x_sc = np.sign(z_sc) * np.sqrt(z_sc**2 - r_sc**2)
    r = r_sc / parallel
    x = x_sc / parallel
    base_z = vn_lv_bus_kv**2 / sys_sn_mva
    pfe_mw = pfe_kw * 1e-3
    ym_mva = i0_percent / 100.0 * sn_mva
    b_sq = np.maximum(ym_mva**2 - pfe_mw**2, 0.0)
    scale = base_z * parallel / (vn_lv_kv**2) / (vnl / vn_lv_kv) ** 2
    g = pfe_mw * scale
    b = -np.sqrt(b_sq) * scale
    r, x, g, b, g_asym, b_asym = _wye_delta(r, x, g, b, r_ratio_hv, x_ratio_hv)
    return {"r": r, "x": x, "g": g, "b": b, "g_asym": g_asym, "b_asym": b_asym, "ratio": ratio, "shift_degree": shift}


def _wye_delta(r: F64, x: F64, g: F64, b: F64, r_ratio: F64, x_ratio: F64) -> tuple[F64, ...]:
    """Turn the T model (series split hv/lv, magnetising branch in the middle) into a pi model."""
    r, x, g, b = r.copy(), x.copy(), g.copy(), b.copy()
    g_asym = np.zeros_like(g)
    b_asym = np.zeros_like(b)
    t = (g != 0) | (b != 0)
    if not t.any():
        return r, x, g, b, g_asym, b_asym
    za = r[t] * r_ratio[t] + 1j * x[t] * x_ratio[t]
    zb = r[t] * (1 - r_ratio[t]) + 1j * x[t] * (1 - x_ratio[t])
    zc = 1 / (g[t] + 1j * b[t])
    zsum = za * zb + za * zc + zb * zc
    zab = zsum / zc
    yf = zb / zsum  # 1 / zac with zac = zsum / zb
    yt = za / zsum  # 1 / zbc with zbc = zsum / za
    r[t] = zab.real
    x[t] = zab.imag
    g[t] = 2 * yf.real
    b[t] = 2 * yf.imag
    g_asym[t] = 2 * yt.real - g[t]
    b_asym[t] = 2 * yt.imag - b[t]
    return r, x, g, b, g_asym, b_asym


def trafo3w_to_trafos(t3: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Split three-winding transformers into three star-connected two-winding ones (pandapower's way).

    ``t3`` maps trafo3w column names to arrays. Returns ``{side: columns}`` for ``side`` in
    ``hv, mv, lv``; each side's trafo has its outer bus on the HV (``hv``) or LV (``mv``, ``lv``) end
    and the star point on the other. Column names are those :func:`trafo_pi` takes.
    """
    n = len(t3["vn_hv_kv"])
    sn = np.stack([t3["sn_hv_mva"], t3["sn_mv_mva"], t3["sn_lv_mva"]])
    vk = np.stack([t3["vk_hv_percent"], t3["vk_mv_percent"], t3["vk_lv_percent"]])
    vkr = np.stack([t3["vkr_hv_percent"], t3["vkr_mv_percent"], t3["vkr_lv_percent"]])

    def to_bus(z: np.ndarray) -> np.ndarray:
        return sn[0] * np.array(
            [z[0] / sn[[0, 1]].min(axis=0), z[1] / sn[[1, 2]].min(axis=0), z[2] / sn[[0, 2]].min(axis=0)]
        )

    def wye(zn: np.ndarray) -> np.ndarray:
        return 0.5 * sn / sn[0] * np.array([zn[0] + zn[2] - zn[1], zn[1] + zn[0] - zn[2], zn[2] + zn[1] - zn[0]])

    vk_d, vkr_d = to_bus(vk), to_bus(vkr)
    vki_d = np.sqrt(vk_d**2 - vkr_d**2)
    vkr_2w = wye(vkr_d)
    vki_2w = wye(vki_d)
    vk_2w = np.sign(vki_2w) * np.sqrt(vki_2w**2 + vkr_2w**2)
    if np.any(vk_2w == 0):
        raise ValueError("three-winding transformer whose star equivalent has a zero impedance winding")
    loss_side = np.asarray(t3["loss_side"], dtype=object)
    star = np.asarray(t3["tap_at_star_point"], dtype=bool)
    out: dict[str, dict[str, np.ndarray]] = {}
    nan = np.full(n, np.nan)
    for k, side in enumerate(("hv", "mv", "lv")):
        on_side = np.asarray(t3["tap_side"], dtype=object) == side
        step_pct = np.where(on_side, t3["tap_step_percent"], nan)
        step_deg = np.where(on_side, t3["tap_step_degree"], nan)
        pos = np.where(on_side, t3["tap_pos"], nan)
        neutral = np.where(on_side, t3["tap_neutral"], nan)
        tap_side = np.where(on_side, "hv" if side == "hv" else "lv", "").astype(object)
        st = on_side & star
        if st.any():
            tc = step_pct[st] * np.exp(1j * np.deg2rad(np.nan_to_num(step_deg[st])))
            tcor = 100 * tc / (100 + tc * (pos[st] - neutral[st]))
            step_pct[st] = np.abs(tcor)
            step_deg[st] = np.rad2deg(np.angle(tcor)) - 180
            tap_side[st] = "lv" if side == "hv" else "hv"
        out[side] = {
            "sn_mva": sn[k],
            "vn_hv_kv": np.asarray(t3["vn_hv_kv"], dtype=float),
            "vn_lv_kv": np.asarray(t3[f"vn_{side}_kv"], dtype=float),
            "vk_percent": vk_2w[k],
            "vkr_percent": vkr_2w[k],
            "pfe_kw": np.where(loss_side == side, t3["pfe_kw"], 0.0),
            "i0_percent": np.where(loss_side == side, t3["i0_percent"], 0.0),
            "shift_degree": np.zeros(n) if side == "hv" else np.asarray(t3[f"shift_{side}_degree"], dtype=float),
            "tap_side": tap_side,
            "tap_pos": pos,
            "tap_neutral": neutral,
            "tap_step_percent": step_pct,
            "tap_step_degree": step_deg,
            "tap_changer_type": np.asarray(t3["tap_changer_type"], dtype=object),
            "parallel": np.ones(n),
            "r_ratio_hv": np.full(n, 0.5),
            "x_ratio_hv": np.full(n, 0.5),
        }
    return out


def branch_admittances(
    r: F64, x: F64, g: F64, b: F64, g_asym: F64, b_asym: F64, ratio: F64, shift_degree: F64
) -> tuple[NDArray[np.complex128], ...]:
    """Return ``yff, yft, ytf, ytt`` of pi branches (MATPOWER/pandapower convention, pu)."""
    ys = 1.0 / (r + 1j * x)
    bcf = g + 1j * b
    bct = (g + g_asym) + 1j * (b + b_asym)
    tap = np.where(ratio != 0, ratio, 1.0) * np.exp(1j * np.deg2rad(shift_degree))
    ytt = ys + bct / 2
    yff = (ys + bcf / 2) / (tap * np.conj(tap))
    yft = -ys / np.conj(tap)
    ytf = -ys / tap
    return yff, yft, ytf, ytt
