"""gridtwin grid files (.json/.zarr): exact round trips, atomic writes, clear errors; CLI import-cim."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import solvers
import twin
from twin.cli import main
from twin.io.gridfile import is_grid_file, read_grid, write_grid
from twin.schema import SCHEMAS

CIGRE_MV = Path(__import__("cimpy").__file__).parent / "examples" / "sampledata" / "CIGRE_MV"


@pytest.mark.parametrize("suffix", [".json", ".zarr"])
@pytest.mark.parametrize("case", ["1-MV-urban--0-sw", "case300"])
def test_grid_file_round_trip_is_exact(tmp_path: Path, case: str, suffix: str) -> None:
    grid = twin.load(case)
    path = write_grid(grid, tmp_path / f"grid{suffix}")
    assert is_grid_file(path)
    back = twin.load(path)
    assert back.name == grid.name
    assert back.sn_mva == grid.sn_mva
    for comp in grid:
        a, b = grid[comp], back[comp]
        assert a.index.tolist() == b.index.tolist()
        for col in SCHEMAS[comp].column_names:
            if a[col].dtype == object:
                assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), (comp, col)
            else:
                np.testing.assert_array_equal(a[col].to_numpy(float), b[col].to_numpy(float), err_msg=f"{comp}.{col}")
    np.testing.assert_array_equal(solvers.run_pf(back).vm_pu, solvers.run_pf(grid).vm_pu)


def test_grid_file_errors(tmp_path: Path) -> None:
    grid = twin.load("case9")
    with pytest.raises(ValueError, match=r"grid files are \.json or \.zarr"):
        write_grid(grid, tmp_path / "g.csv")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "gridtwin-grid", "version": 99, "tables": {}}')
    with pytest.raises(ValueError, match="newer than this gridtwin reads"):
        read_grid(bad)
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "gridtwin-grid", ')
    with pytest.raises(ValueError, match="not valid JSON"):
        read_grid(broken)


def test_grid_file_write_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "g.zarr"
    write_grid(twin.load("case9"), path)
    write_grid(twin.load("case14"), path)
    assert twin.load(path).n_bus == 14
    assert [p.name for p in tmp_path.iterdir()] == ["g.zarr"]  # no temporary left behind


def test_cli_import_cim_writes_a_grid_that_pf_solves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cigre.json"
    assert main(["import-cim", str(CIGRE_MV), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"]["bus"] == 15
    assert any(r["cim_class"] == "ACLineSegment" and r["imported"] == 12 for r in report["report"])
    assert main(["pf", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["converged"] is True
    assert main(["pf", str(CIGRE_MV), "--json"]) == 0
    direct = json.loads(capsys.readouterr().out)
    assert direct["vm_min_pu"] == pytest.approx(summary["vm_min_pu"], abs=1e-12)


def test_cli_import_cim_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-cim", str(tmp_path / "missing.zip")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["import-cim", str(CIGRE_MV), "--out", str(tmp_path / "g.csv")]) == 2
    assert ".json or .zarr" in capsys.readouterr().err
