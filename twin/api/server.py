"""Running the service: :func:`serve` (uvicorn in this process, TLS when given a certificate) and
:class:`ServiceProcess` (``gridtwin serve`` in a subprocess on a free loopback port, for tests and benches).

``python -m twin.api.server serve STORE ...`` runs the same command line as ``gridtwin serve``.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from twin.servers import LocalServer

if TYPE_CHECKING:
    from twin.api.site import Site

__all__ = ["ServiceProcess", "main", "serve"]


def serve(
    site: Site,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
    max_body: int | None = None,
    cors_origins: Sequence[str] = (),
    broker: str | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``site`` with uvicorn until interrupted (HTTPS when ``certfile`` and ``keyfile`` are given)."""
    import uvicorn

    from twin.api.app import DEFAULT_MAX_BODY, create_app

    if (certfile is None) != (keyfile is None):
        raise ValueError("TLS needs both --certfile and --keyfile (PEM files)")
    for f in (certfile, keyfile):
        if f is not None and not Path(f).is_file():
            raise ValueError(f"{f}: no such file; give PEM certificate and key files")
    app = create_app(site, max_body=max_body or DEFAULT_MAX_BODY, cors_origins=tuple(cors_origins), broker=broker)
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=None if certfile is None else str(certfile),
        ssl_keyfile=None if keyfile is None else str(keyfile),
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess(LocalServer):
    """``gridtwin serve STORE`` in a subprocess on a free loopback port; ``url`` once started.

    Parameters
    ----------
    store : str or Path
        The store to serve.
    grid, comm : str or Path, optional
        Passed as ``--grid`` / ``--comm``.
    extra_args : sequence of str
        More ``gridtwin serve`` options (``--max-body``, ``--cors-origin``, ``--broker`` ...).
    startup_timeout_s : float
        Seconds to wait for ``/healthz`` to answer.
    env : mapping, optional
        Environment of the process (default: this one's).
    """

    def __init__(
        self,
        store: str | Path,
        *,
        grid: str | Path | None = None,
        comm: str | Path | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.store = Path(store)
        self.args = [str(self.store)]
        self.args += ["--grid", str(grid)] if grid is not None else []
        self.args += ["--comm", str(comm)] if comm is not None else []
        self.args += list(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self.env = env
        self.url = ""
        self.log_path: Path | None = None

    def start(self) -> None:
        """Start the service and wait until ``/healthz`` answers (RuntimeError with its log when it does not)."""
        self._tmp = tempfile.TemporaryDirectory(prefix="gridtwin-serve-")
        port = _free_port()
        self.log_path = Path(self._tmp.name) / "serve.log"
        self._log = self.log_path.open("wb")
        cmd = [sys.executable, "-m", "twin.api.server", "serve", *self.args, "--host", "127.0.0.1", "--port", str(port)]
        env = dict(os.environ if self.env is None else self.env)
        self._proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        tls = "--certfile" in self.args
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        probe = ssl._create_unverified_context() if tls else None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if not self.is_running:
                break
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2, context=probe) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        log = self.log_path.read_text(errors="replace")
        self.stop()
        raise RuntimeError(
            f"gridtwin serve did not answer /healthz within {self.startup_timeout_s} s; log:\n{log[-3000:]}"
        )

    def log(self) -> str:
        """What the service printed so far."""
        return "" if self.log_path is None else self.log_path.read_text(errors="replace")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m twin.api.server serve|token ...``: the ``gridtwin serve`` and ``token`` commands alone."""
    import argparse

    from rich.console import Console

    from twin.cli_serve import add_serve_parsers

    parser = argparse.ArgumentParser(prog="gridtwin")
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_parsers(sub, lambda *p: " ".join(p))
    args = parser.parse_args(argv)
    out, err = Console(), Console(stderr=True)
    try:
        return int(args.handler(args, out, err))
    except ValueError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
