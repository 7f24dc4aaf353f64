"""`ManagedServer`: a ``testbed serve`` process the testbed starts for one trial and stops after.

The server binds 127.0.0.1 on a free port and prints ``serving <address> ...`` once it listens;
its log goes to a file in the trial folder so a crash can be diagnosed afterwards.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

from testbed.errors import PolicyUnavailableError

_SERVING = re.compile(r"^serving (\S+) ")


class ManagedServer:
    """Start ``python -m testbed serve <policy>`` on 127.0.0.1 and stop it on exit.

    Args:
        policy: The POLICY argument of ``testbed serve`` (``scripted:kr-changwon``).
        log_path: File receiving the server's output.
        startup_timeout_s: How long to wait for the bound address.
    """

    def __init__(self, policy: str, log_path: Path, startup_timeout_s: float = 60.0) -> None:
        self.policy = policy
        self.log_path = Path(log_path)
        self.startup_timeout_s = startup_timeout_s
        self.address = ""
        self.starts = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def alive(self) -> bool:
        """True while the server process runs."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> str:
        """Start (or restart) the server; returns its ``host:port``.

        Raises:
            PolicyUnavailableError: If it exits or does not bind within the startup timeout.
        """
        self.stop()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "testbed", "serve", self.policy,
                   "--address", "127.0.0.1:0"]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # a Ctrl-C in the campaign reaches it through stop()
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.starts += 1
        self.address = self._await_address(self._process)
        return self.address

    def _await_address(self, process: subprocess.Popen[str]) -> str:
        found: list[str] = []
        log = self.log_path.open("a", encoding="utf-8")
        ready = threading.Event()

        def pump() -> None:  # copies the output to the log, noting the bound address
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                log.flush()
                match = _SERVING.match(line)
                if match and not found:
                    found.append(match.group(1))
                    ready.set()
            log.close()
            ready.set()

        threading.Thread(target=pump, name="managed-server-log", daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not ready.wait(0.1):
            if time.monotonic() > deadline:
                self.stop()
                raise PolicyUnavailableError(
                    f"managed server {self.policy!r} did not start within "
                    f"{self.startup_timeout_s:.0f} s (log: {self.log_path})"
                )
        if not found:
            raise PolicyUnavailableError(
                f"managed server {self.policy!r} exited with code {process.wait()} before "
                f"serving (log: {self.log_path})"
            )
        return found[0]

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the server (graceful shutdown), then SIGKILL after ``grace_s``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> ManagedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
