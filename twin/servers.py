"""Private server processes on loopback (``influxd`` for ingest tests and benches, ``mosquitto`` for dispatch).

:class:`LocalServer` holds what they share: a temporary directory, the process and its log, context-manager use,
and a stop that terminates, kills after 10 s and deletes the directory. Subclasses implement :meth:`start`.
"""

from __future__ import annotations

import subprocess
import tempfile
from types import TracebackType
from typing import IO, Self


class LocalServer:
    """Base of a server started in a temporary directory and stopped with it (``with Server() as s: ...``)."""

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        raise NotImplementedError

    def _halt(self) -> None:
        """Terminate the process (kill after 10 s) and close its log; the directory stays."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Stop the process (terminate, then kill after 10 s) and delete its directory."""
        self._halt()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
