"""Fuzzing the running service with schemathesis against its OpenAPI schema: no request may end in a 500."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.api.conftest import LiveServer

# computing a plan (HiGHS) or running a scenario set per generated example would take minutes: the role and
# payload tests cover those two; every other operation is fuzzed
EXPENSIVE = ("POST /api/v1/plans", "POST /api/v1/scenarios")


def test_schemathesis_finds_no_server_error(live_server: LiveServer, tmp_path: Path) -> None:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert exe is not None, "schemathesis is a test dependency (pyproject [test])"
    cmd = [
        exe,
        "run",
        f"{live_server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {live_server.tokens['admin']}",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "20",
        "--seed",
        "1",
        "--request-timeout",
        "20",
        "--generation-deterministic",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    for name in EXPENSIVE:
        cmd += ["--exclude-name", name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:] + "\nserver log:\n" + live_server.process.log()[-4000:]
    assert "passed" in output
    assert "operations" in output.lower()
