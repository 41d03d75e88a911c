"""CGMES 2.4.15 test models written by PowSyBl from pandapower's MATPOWER cases (the CGMES import suite's big case).

No public CGMES set is as large as the PEGASE cases, so :func:`build_powsybl_cgmes` makes one: pandapower
case → MATPOWER ``.mat`` (``to_mpc``) → ``pypowsybl.network.load`` → OpenLoadFlow (so the SV profile holds a
solved state) → ``network.save(format="CGMES")`` (EQ, TP, SSH, SV) → one deflated zip. The zip is cached
outside the repository (see :func:`bench_cache_folder`) under a name that holds the pypowsybl and
pandapower versions, so repeated runs reuse it and a new version rebuilds it.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["bench_cache_folder", "build_powsybl_cgmes", "cached_cgmes_path"]

#: Export parameters: CIM 16 is CGMES 2.4.15 (what ``cim.load`` and pandapower's converter read).
_CGMES_EXPORT = {"iidm.export.cgmes.cim-version": "16"}


def bench_cache_folder() -> Path:
    """Cache folder of generated benchmark inputs: ``$XDG_CACHE_HOME/gridtwin/bench`` (``~/.cache/gridtwin/bench``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gridtwin" / "bench"


def cached_cgmes_path(case: str, cache_dir: Path | None = None) -> Path:
    """Path of the cached zip of ``case`` for the installed pypowsybl and pandapower (it may not exist yet)."""
    versions = "-".join(f"{dist}{_version(dist)}" for dist in ("pypowsybl", "pandapower"))
    return (cache_dir or bench_cache_folder()) / f"{case}_cgmes-2.4.15_{versions}.zip"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def build_powsybl_cgmes(case: str = "case9241pegase", *, cache_dir: Path | None = None, rebuild: bool = False) -> Path:
    """Return a CGMES 2.4.15 zip (EQ, TP, SSH, SV) of a pandapower case written by PowSyBl, building it if needed.

    Parameters
    ----------
    case : str
        Name of a function of ``pandapower.networks`` that returns a MATPOWER-like case
        (``case9241pegase``, ``case1354pegase``, ``case14``, …).
    cache_dir : Path, optional
        Folder of the cached zip; :func:`bench_cache_folder` by default. Never the repository.
    rebuild : bool
        Build again even when the cached zip exists.

    Returns
    -------
    Path
        The zip (``<case>_EQ.xml``, ``_TP``, ``_SSH``, ``_SV``), deflated.

    Raises
    ------
    ModuleNotFoundError
        pypowsybl is not installed (``pip install pypowsybl``).
    ValueError
        ``case`` is not in ``pandapower.networks``, a line has unequal end shunts (CGMES 2.4.15
        would average them), or OpenLoadFlow does not converge on the case.
    """
    out = cached_cgmes_path(case, cache_dir)
    if out.exists() and not rebuild:
        return out
    import pandapower.networks as pn_cases
    import pypowsybl.network as pn
    from pandapower.converter.matpower import to_mpc

    make_net = getattr(pn_cases, case, None)
    if make_net is None:
        raise ValueError(f"{case!r} is not a case of pandapower.networks; use e.g. 'case9241pegase'")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"gridtwin-{case}-") as tmp:
        mat = Path(tmp) / f"{case}.mat"
        to_mpc(make_net(), filename=str(mat), init="flat")
        network = pn.load(str(mat))
        _check_line_shunts(network, case)
        _solve_state(network, case)
        network.save(str(Path(tmp) / case), format="CGMES", parameters=_CGMES_EXPORT)
        partial = out.with_name(f"{out.name}.{os.getpid()}.part")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for xml in sorted(Path(tmp).glob(f"{case}_*.xml")):
                zf.write(xml, xml.name)
        partial.replace(out)  # atomic: an interrupted build leaves no half-written cache entry
    return out


def _check_line_shunts(network: Any, case: str) -> None:
    """Refuse lines whose two end shunts differ: CGMES 2.4.15 holds one ``bch`` per segment and the export averages.

    PowSyBl's MATPOWER importer writes each branch's charging as two equal halves, so this holds for
    MATPOWER cases; ``tests/cim/test_powsybl.py`` shows the exact rewrite (shunt compensators) otherwise.
    """
    lines = network.get_lines(all_attributes=True)
    odd = lines.index[(lines["g1"] != lines["g2"]) | (lines["b1"] != lines["b2"])]
    if len(odd):
        raise ValueError(
            f"{case}: {len(odd)} line(s) with unequal end shunts (first: {list(odd[:5])}); the CGMES 2.4.15 "
            "export would average them: move them into shunt compensators first (tests/cim/test_powsybl.py)"
        )


def _solve_state(network: Any, case: str) -> None:
    """Run OpenLoadFlow on ``network`` (MATPOWER reference bus as slack, no reactive limits) so its SV is solved."""
    import pypowsybl.loadflow as lf

    params = lf.Parameters(
        distributed_slack=False,
        use_reactive_limits=False,
        read_slack_bus=True,  # the MATPOWER importer marks the reference bus with a slackTerminal extension
        provider_parameters={
            "generatorsWithZeroMwTargetAreNotStarted": "false",
            "newtonRaphsonStoppingCriteriaType": "UNIFORM_CRITERIA",
            "newtonRaphsonConvEpsPerEq": "1e-10",
        },
    )
    result = lf.run_ac(network, params)[0]
    if result.status != lf.ComponentStatus.CONVERGED:
        raise ValueError(f"{case}: OpenLoadFlow did not converge ({result.status_text}); the SV would not be solved")
