"""Open a grid by name or path: pandapower built-in cases, SimBench codes, files."""

from __future__ import annotations

import warnings
from pathlib import Path

from twin.grid import Grid
from twin.io.gridfile import is_grid_file, read_grid
from twin.io.matpower import from_matpower
from twin.io.pandapower import from_pandapower
from twin.io.simbench import from_simbench, is_simbench_code

__all__ = ["builtin_case_names", "load"]

# Friendly names for pandapower's network builders that are not called case*.
_ALIASES = {
    "cigre_mv": "create_cigre_network_mv",
    "cigre_lv": "create_cigre_network_lv",
    "cigre_hv": "create_cigre_network_hv",
    "mv_oberrhein": "mv_oberrhein",
}


def builtin_case_names() -> list[str]:
    """Return the pandapower built-in case names :func:`load` accepts (besides SimBench codes)."""
    import pandapower.networks as pn

    cases = sorted(n for n in dir(pn) if n.startswith(("case", "GBnetwork", "GBreducednetwork", "iceland")))
    return [*cases, *_ALIASES]


def load(name_or_path: str | Path) -> Grid:
    """Open a grid.

    Parameters
    ----------
    name_or_path : str or Path
        One of:

        - a pandapower built-in case (``"case118"``, ``"case1354pegase"``, ``"case9241pegase"``,
          ``"cigre_mv"``, ``"cigre_lv"``, ...; see :func:`builtin_case_names`);
        - a SimBench code (``"1-MV-urban--0-sw"``);
        - a file: MATPOWER ``.m``/``.mat``, pandapower ``.json``/``.p``, a gridtwin grid file
          (``.json``/``.zarr`` from :func:`twin.io.gridfile.write_grid`);
        - CGMES: a ``.zip`` of profiles, a folder of ``.xml`` profiles or one ``.xml`` file
          (read by :func:`cim.load`).

    Returns
    -------
    Grid

    Raises
    ------
    ValueError
        If the name is neither a file, a known case nor a SimBench code; the message lists
        what is accepted.
    """
    text = str(name_or_path)
    path = Path(text)
    if path.exists():
        return _load_file(path)
    if is_simbench_code(text):
        return from_simbench(text)
    import pandapower.networks as pn

    builder = getattr(pn, _ALIASES.get(text, text), None)
    if builder is None or not callable(builder) or text.startswith("_"):
        near = [c for c in builtin_case_names() if text.lower()[:4] in c.lower()][:8]
        raise ValueError(
            f"{text!r} is not a file, a pandapower case or a SimBench code. "
            f"Similar built-in cases: {near or builtin_case_names()[:8]}; SimBench codes look like "
            "'1-MV-urban--0-sw'."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = builder()
    return from_pandapower(net, name=text)


def _load_file(path: Path) -> Grid:
    suffix = path.suffix.lower()
    if is_grid_file(path):
        return read_grid(path)
    if suffix in (".zip", ".xml") or (path.is_dir() and any(path.glob("*.xml"))):
        import cim  # cim builds on twin: imported here, where it is needed

        return cim.load(path)
    if suffix in (".m", ".mat"):
        return from_matpower(path)
    if suffix in (".json", ".p"):
        import pandapower as pp

        try:
            net = pp.from_json(str(path)) if suffix == ".json" else pp.from_pickle(str(path))
        except Exception as err:
            raise ValueError(f"{path}: not a pandapower net file ({err})") from err
        grid = from_pandapower(net, name=path.stem)
        grid.meta["path"] = str(path)
        return grid
    raise ValueError(
        f"{path}: unknown grid file type {suffix!r}; use .m/.mat (MATPOWER), .json/.p (pandapower), a gridtwin "
        ".json/.zarr grid file, or CGMES (.zip, .xml, a folder of .xml)"
    )
