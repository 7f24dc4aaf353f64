"""Memory: peak resident set size of one trial worker and of one policy server.

Trial worker: ``testbed run`` of one trial (the kr-changwon scripted controller over gRPC with
its managed server, recording episodes), the process campaigns run per job. Policy server:
``testbed serve scripted:kr-changwon`` after answering an episode of ``Act`` calls. Peak RSS
is the kernel's high-water mark (``VmHWM`` in ``/proc/<pid>/status``), read while the process
lives, so this section needs Linux.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import gymnasium as gym

import envs  # noqa: F401  (registers the Testbed env ids)
from testbed.bench.figures import ENV_ID, BenchProfile, Figure, Progress
from testbed.episodes.rollout import run_episode
from testbed.link.client import RemotePolicy
from testbed.link.policy import SessionInfo

SITE = "kr-changwon"
_SERVING = re.compile(r"^serving (\S+) ")
_STARTUP_S = 120.0


class MemoryBenchError(RuntimeError):
    """A process to measure failed, or its memory cannot be read."""


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a live process (MiB).

    Raises:
        MemoryBenchError: If ``/proc/<pid>/status`` cannot be read (not Linux, or it exited).
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise MemoryBenchError(f"cannot read the peak RSS of process {pid}: {exc}") from exc
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    if match is None:
        raise MemoryBenchError(f"/proc/{pid}/status has no VmHWM line")
    return int(match.group(1)) / 1024.0


def trial_worker_mb(profile: BenchProfile) -> float:
    """Peak RSS of a ``testbed run`` process running one trial (polled until it exits)."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        command = [sys.executable, "-m", "testbed", "run", "policy=scripted_kr", f"site={SITE}",
                   "campaign.episodes=1", f"task.max_steps={profile.memory_steps}",
                   f"campaign.dir={folder}/campaign", "campaign.report=false",
                   "campaign.progress=false"]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        peak = 0.0
        while process.poll() is None:
            try:
                peak = max(peak, peak_rss_mb(process.pid))
            except MemoryBenchError:
                break  # it exited between poll() and the read
            try:
                process.wait(0.05)
            except subprocess.TimeoutExpired:
                pass
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise MemoryBenchError(f"the trial worker failed:\n{stderr[-3000:]}")
    if peak == 0.0:
        raise MemoryBenchError("the trial worker exited before its memory could be read")
    return peak


def policy_server_mb(profile: BenchProfile) -> float:
    """Peak RSS of ``testbed serve scripted:kr-changwon`` after an episode of Act calls."""
    command = [sys.executable, "-m", "testbed", "serve", f"scripted:{SITE}",
               "--address", "127.0.0.1:0"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        address = _await_address(process)
        env = gym.make(ENV_ID, site=SITE)
        assert isinstance(env.action_space, gym.spaces.Box)
        try:
            with RemotePolicy(address, observation_space=env.observation_space,
                              action_space=env.action_space, deadline_s=5.0) as remote:  # fmt: skip
                session = SessionInfo("bench-memory", site=SITE, seed=0)
                run_episode(env, remote, session, max_steps=profile.memory_steps)
        finally:
            env.close()
        return peak_rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _await_address(process: subprocess.Popen[str]) -> str:
    found: list[str] = []
    lines: list[str] = []

    def pump() -> None:  # reads the output (so the pipe never fills), noting the address
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = _SERVING.match(line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    ready = threading.Event()
    threading.Thread(target=pump, name="bench-server-output", daemon=True).start()
    if not ready.wait(_STARTUP_S) or not found:
        raise MemoryBenchError(
            f"testbed serve did not start within {_STARTUP_S:.0f} s:\n{''.join(lines)[-2000:]}"
        )
    return found[0]


def run(profile: BenchProfile, progress: Progress) -> tuple[list[Figure], list[str]]:
    """The memory section: peak RSS of a trial worker and of a policy server."""
    if not Path("/proc/self/status").exists():
        return [], ["memory: skipped, peak RSS is read from /proc (Linux only)"]
    progress("memory: one trial worker")
    worker = trial_worker_mb(profile)
    progress("memory: one policy server")
    server = policy_server_mb(profile)
    steps = {"steps": profile.memory_steps}
    return [
        Figure("memory", "trial worker peak RSS (testbed run)", worker, "MB",
               details=steps),
        Figure("memory", "policy server peak RSS (testbed serve)", server, "MB",
               details=steps),
    ], []  # fmt: skip
