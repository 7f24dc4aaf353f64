"""`ManagedServer`: a ``testbed serve`` process the testbed starts for one trial and stops after.

The server binds 127.0.0.1 on a free port and prints ``serving <address> ...`` once it listens;
its log goes to a file in the trial folder so a crash can be diagnosed afterwards.

The server runs in its own session (a Ctrl-C in the campaign's terminal reaches it through
`ManagedServer.stop`, not twice), so a signal to the campaign's process group does not reach it.
It still ends with its campaign, however the campaign dies (``kill -9`` included), two ways:

- its stdin is a pipe whose only write end this process holds; ``testbed serve
  --exit-with-parent`` stops at end of file, which the kernel delivers when this process dies
  (any platform, any thread);
- on Linux the kernel also sends it SIGKILL when the thread that started it ends
  (``prctl(PR_SET_PDEATHSIG)``). That thread is the trial's (`run_trial` ->
  `PolicyConnection.open`/``recover``), which outlives the server: the trial stops it first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from testbed.errors import PolicyUnavailableError

_SERVING = re.compile(r"^serving (\S+) ")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when its parent thread ends.

    None off Linux, or where libc has no ``prctl``. The function runs in the child between fork
    and exec, so it only calls what was looked up before the fork.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal
            os._exit(1)

    return set_signal


class ManagedServer:
    """Start ``python -m testbed serve <policy>`` on 127.0.0.1 and stop it on exit.

    Args:
        policy: The POLICY argument of ``testbed serve`` (``scripted:kr-changwon``).
        log_path: File receiving the server's output.
        startup_timeout_s: How long to wait for the bound address.
        env_id: The trial's env id (``--env``: which task's scripted controller, or spaces).
        extra_args: More ``testbed serve`` options (the campaign's ``--energy-counter``).
    """

    def __init__(
        self,
        policy: str,
        log_path: Path,
        startup_timeout_s: float = 60.0,
        env_id: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.policy = policy
        self.extra_args = list(extra_args)
        self.env_id = env_id
        self.log_path = Path(log_path)
        self.startup_timeout_s = startup_timeout_s
        self.address = ""
        self.starts = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def alive(self) -> bool:
        """True while the server process runs."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the running server (None when it is not running)."""
        return self._process.pid if self._process is not None and self.alive else None

    def start(self) -> str:
        """Start (or restart) the server; returns its ``host:port``.

        Raises:
            PolicyUnavailableError: If it exits or does not bind within the startup timeout.
        """
        self.stop()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "testbed", "serve", self.policy,
                   "--address", "127.0.0.1:0", "--exit-with-parent"]  # fmt: skip
        if self.env_id is not None:
            command += ["--env", self.env_id]
        command += self.extra_args
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE,  # its lifeline: end of file when this process dies
            text=True,
            start_new_session=True,  # a Ctrl-C in the campaign reaches it through stop()
            preexec_fn=_parent_death_signal(),  # only prctl, looked up before the fork
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
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdin is not None:
            process.stdin.close()

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
