"""Standard benchmark cases: pandapower nets, their Grids and per-step injection sets.

Every tool in a benchmark starts from the same pandapower net, so the peers and gridtwin
solve the same data: gridtwin reads it through :func:`twin.from_pandapower`, the peers read
the net itself (:mod:`benchmarks.peers`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr
    from numpy.typing import NDArray
    from pandapower.auxiliary import pandapowerNet

    from twin.grid import Grid

__all__ = [
    "SIMBENCH_CODE",
    "SIMBENCH_YEAR_STEPS",
    "SINGLE_PF_CASES",
    "SMOKE_CASE",
    "SNAPSHOT_CASE",
    "Snapshots",
    "build_grid",
    "build_load_snapshots",
    "build_net",
    "initial_voltage_method",
    "read_simbench_snapshots",
]

#: Cases of the single power flow suite.
SINGLE_PF_CASES: tuple[str, ...] = ("case1354pegase", "case9241pegase")
#: Case of the random load snapshot suite.
SNAPSHOT_CASE = "case1354pegase"
#: SimBench grid of the profile suites.
SIMBENCH_CODE = "1-MV-urban--0-sw"
#: Steps of "a full year" in the memory suite (365 days × 96; SimBench's 2016 profiles hold 35,136).
SIMBENCH_YEAR_STEPS = 35_040
#: The tiny case used by ``--smoke`` (tests).
SMOKE_CASE = "case14"


@dataclass(frozen=True)
class Snapshots:
    """Per-step set-points, columns in the row order of the pandapower tables.

    Attributes
    ----------
    load_p_mw, load_q_mvar : ndarray, shape (time, load)
        Load set-points, MW / Mvar (before pandapower's ``scaling``, as in ``net.load``).
    sgen_p_mw : ndarray, shape (time, sgen), or None
        Static generator active set-points, MW; None keeps the net's values.
    load_id, sgen_id : tuple of str
        Grid ids of the columns (``"load/<pandapower index>"``).
    """

    load_p_mw: NDArray[np.float64]
    load_q_mvar: NDArray[np.float64]
    sgen_p_mw: NDArray[np.float64] | None
    load_id: tuple[str, ...]
    sgen_id: tuple[str, ...]

    @property
    def n_steps(self) -> int:
        """Number of time steps."""
        return int(self.load_p_mw.shape[0])

    def head(self, n_steps: int) -> Snapshots:
        """Return the first ``n_steps`` steps."""
        return Snapshots(
            self.load_p_mw[:n_steps],
            self.load_q_mvar[:n_steps],
            None if self.sgen_p_mw is None else self.sgen_p_mw[:n_steps],
            self.load_id,
            self.sgen_id,
        )

    def to_dataarrays(self) -> dict[str, xr.DataArray]:
        """Return the inputs of :func:`solvers.run_pf_timeseries` (``load_p_mw``, ``load_q_mvar``, ``sgen_p_mw``)."""
        import xarray as xr

        out = {
            "load_p_mw": xr.DataArray(self.load_p_mw, dims=("time", "load"), coords={"load": list(self.load_id)}),
            "load_q_mvar": xr.DataArray(self.load_q_mvar, dims=("time", "load"), coords={"load": list(self.load_id)}),
        }
        if self.sgen_p_mw is not None:
            out["sgen_p_mw"] = xr.DataArray(self.sgen_p_mw, dims=("time", "sgen"), coords={"sgen": list(self.sgen_id)})
        return out


def build_net(name: str) -> pandapowerNet:
    """Build the pandapower net of a built-in case (``"case1354pegase"``) or a SimBench code."""
    from twin.io.simbench import is_simbench_code

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_simbench_code(name):
            import simbench as sb

            return sb.get_simbench_net(name)
        import pandapower.networks as pn

        builder = getattr(pn, name, None)
        if builder is None or not name.startswith("case"):
            raise ValueError(f"{name!r} is neither a pandapower case (e.g. 'case1354pegase') nor a SimBench code")
        return builder()


def build_grid(net: pandapowerNet, name: str) -> Grid:
    """Return gridtwin's Grid of ``net`` (the same data the peers get)."""
    import twin

    return twin.from_pandapower(net, name=name)


def initial_voltage_method(net: pandapowerNet) -> str:
    """Return the start every tool gets on ``net``: ``"flat"``, or ``"dc"`` for SimBench nets.

    SimBench's HV/MV transformers shift by 150°: from a flat start pandapower's Newton-Raphson
    does not converge on them, so all tools start from a DC solution there. PEGASE cases
    (whose few phase shifters are small) converge from a flat start in every tool.
    """
    shift = net.trafo["shift_degree"].to_numpy(dtype=float) if len(net.trafo) else np.zeros(0)
    return "dc" if np.any(np.abs(shift) > 90.0) else "flat"


def build_load_snapshots(
    net: pandapowerNet, n_steps: int, *, seed: int = 0, low: float = 0.8, high: float = 1.2
) -> Snapshots:
    """Return ``n_steps`` random load snapshots of ``net``.

    Each (step, load) draws one factor, uniform in ``[low, high]`` from
    ``np.random.default_rng(seed)`` with shape ``(n_steps, n_load)``; it scales both P and Q of
    that load at that step. Static generators keep their values.
    """
    rng = np.random.default_rng(seed)
    factor = rng.uniform(low, high, size=(n_steps, len(net.load)))
    return Snapshots(
        load_p_mw=np.ascontiguousarray(net.load["p_mw"].to_numpy(dtype=float) * factor),
        load_q_mvar=np.ascontiguousarray(net.load["q_mvar"].to_numpy(dtype=float) * factor),
        sgen_p_mw=None,
        load_id=tuple(f"load/{i}" for i in net.load.index),
        sgen_id=tuple(f"sgen/{i}" for i in net.sgen.index),
    )


def read_simbench_snapshots(code: str, n_steps: int, net: pandapowerNet) -> Snapshots:
    """Return the first ``n_steps`` steps of a SimBench grid's own load and sgen profiles.

    Columns follow the row order of ``net.load`` / ``net.sgen``; elements without a profile keep
    their value in ``net``.
    """
    import twin

    prof = twin.read_simbench_profiles(code, steps=n_steps)
    load_id = tuple(f"load/{i}" for i in net.load.index)
    sgen_id = tuple(f"sgen/{i}" for i in net.sgen.index)

    def _columns(name: str, ids: tuple[str, ...], base: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.tile(base, (prof.sizes["time"], 1))
        if name in prof:
            da = prof[name]
            dim = next(d for d in da.dims if d != "time")
            pos = {i: k for k, i in enumerate(ids)}
            cols = [pos[str(i)] for i in da[dim].to_numpy()]
            out[:, cols] = da.transpose("time", dim).to_numpy()
        return np.ascontiguousarray(out)

    return Snapshots(
        load_p_mw=_columns("load_p_mw", load_id, net.load["p_mw"].to_numpy(dtype=float)),
        load_q_mvar=_columns("load_q_mvar", load_id, net.load["q_mvar"].to_numpy(dtype=float)),
        sgen_p_mw=_columns("sgen_p_mw", sgen_id, net.sgen["p_mw"].to_numpy(dtype=float)),
        load_id=load_id,
        sgen_id=sgen_id,
    )
