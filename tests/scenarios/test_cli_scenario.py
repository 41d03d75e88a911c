"""``gridtwin scenario run|compare`` end to end (in-process scheduler; the Dask paths are tested in test_runner)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.cli import main

SPEC = """\
base:
  grid: 1-MV-urban--0-sw
  start: 2016-01-04
  days: 2
scenarios:
  - name: today
  - name: electrified
    modifications:
      - {kind: ev, share: 0.6}
      - {kind: heat_pumps, share: 0.6}
  - name: broken
    modifications:
      - {kind: trafo_replacement, trafo: trafo/404, sn_mva: 40}
"""


def test_run_resume_and_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "what_if.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "what_if.zarr"
    assert main(["scenario", "run", str(spec), "--out", str(out), "--scheduler", "sync"]) == 1  # one failed
    text = capsys.readouterr().out
    assert "3 scenarios ran (1 failed)" in text
    assert "broken" in text
    # a rerun keeps the finished ones and tries the failed one again
    assert main(["scenario", "run", str(spec), "--out", str(out), "--scheduler", "sync"]) == 1
    assert "1 scenarios ran (1 failed), 2 skipped" in capsys.readouterr().out
    assert main(["scenario", "compare", str(out), "--report", str(tmp_path / "r.html")]) == 0
    table = capsys.readouterr().out
    assert table.index("electrified") < table.index("today")  # worst first
    assert "trafo/404" in table or "failed" in table
    html = (tmp_path / "r.html").read_text()
    assert "electrified" in html
    assert "<script src=" not in html


def test_bad_spec_names_file_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(SPEC.replace("share: 0.6}\n      - {kind: heat", "share: 1.6}\n      - {kind: heat"))
    assert main(["scenario", "run", str(spec), "--scheduler", "sync"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:9: scenarios[1].modifications[0].share: must be between 0 and 1" in err
