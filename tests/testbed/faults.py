"""A fault-injection policy server: a seeded schedule picks, per step, how the server misbehaves.

Run it as a separate process (crash and restart kill the serving process)::

    python -m tests.testbed.faults --port 0 --schedule-seed 7 --log faults.jsonl

It prints ``serving 127.0.0.1:PORT`` once it listens. A supervisor process keeps the port and
restarts the serving child when a fault kills it, like a team's process manager would.

Fault kinds (`KINDS`), applied to the step the schedule names:

========  ==========================================================  =========================
kind      what the server does                                         the testbed records
========  ==========================================================  =========================
crash     the serving process exits; restarted after `CRASH_DOWN_S`    PolicyUnavailableError
restart   the serving process exits and restarts at once (sessions     PolicyUnavailableError
          are lost)
close     unary: the call fails UNAVAILABLE (the client's retry too);  PolicyUnavailableError
          stream: the server ends the stream; ActBatch: that item
          is UNAVAILABLE in-band
hang      answers after `HANG_S` (far past any deadline)               deadline
stall     stream: stops answering the stream for `HANG_S`, then drops  deadline
          that step; unary: like hang
late      answers `LATE_S` after the deadline                          deadline
nan       answers an action with a NaN                                 invalid_action:non-finite
========  ==========================================================  =========================

On ``ActBatch`` each item's step is scheduled as on ``Act``; a crash, restart, hang, stall or
late answer hits every episode of the call (as a dead or slow server would), close and nan only
their own item.

Every injected fault is appended to the ``--log`` file (JSON lines, fsynced before acting), so a
test can compare what was injected with what the episode records say. Faults are one-shot per
(campaign, episode, step), also across restarts, so a retried episode is not hit again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from policies._handshake import check_open
from policies.protocol import Capabilities, PolicySpec
from protos.specs import spec_to_proto
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc
from tests.policies.doubles import specs

KINDS = ("crash", "restart", "close", "hang", "stall", "late", "nan")
RECORDED_AS = {
    "crash": "PolicyUnavailableError",
    "restart": "PolicyUnavailableError",
    "close": "PolicyUnavailableError",
    "hang": "deadline",
    "stall": "deadline",
    "late": "deadline",
    "nan": "invalid_action:non-finite",
}
_FATAL_KINDS = ("crash", "restart")
CRASH_EXIT, RESTART_EXIT = 70, 71
CRASH_DOWN_S, HANG_S = 0.5, 2.0
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FaultSchedule:
    """Which fault (if any) hits a step: a pure function of (seed, campaign, episode, step).

    Attributes:
        seed: The schedule's seed.
        rate: Probability that a step gets a fault.
        first_step: No fault before this step (step 0 failing means the episode never started,
            which a trial retries rather than records).
    """

    seed: int
    rate: float = 0.05
    first_step: int = 1

    def kind_at(self, campaign: str, episode: int, step: int) -> str | None:
        if step < self.first_step:
            return None
        rng = random.Random(f"{self.seed}/{campaign}/{episode}/{step}")  # sha512 of the text
        return rng.choice(KINDS) if rng.random() < self.rate else None


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every fault the server injected, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class FaultServicer(pb_grpc.PolicyServiceServicer):
    """A `PolicyService` that holds position (zero actions) except where the schedule strikes."""

    def __init__(self, schedule: FaultSchedule, log: Path, late_s: float) -> None:
        observation, action = specs()
        # Hand-written: it serves the named form only, so it does not advertise packing.
        caps = Capabilities(max_batch=8, packed_observations=False)
        self._spec = PolicySpec("faulty", "1", observation, action, caps)
        self._spec_proto = spec_to_proto(self._spec)
        self._schedule, self._log, self._late_s = schedule, log, late_s
        self._sessions: dict[str, tuple[str, int]] = {}  # id -> (campaign, episode)
        self._done = {(f["campaign"], f["episode"], f["step"]) for f in read_log(log)}
        self._attempts: Counter[tuple[str, int, int]] = Counter()
        self._lock = threading.Lock()

    # --- sessions -----------------------------------------------------------------------------

    def GetSpec(self, request: Any, context: Any) -> pb.PolicySpec:
        return self._spec_proto

    def OpenSession(self, request: pb.OpenSessionRequest, context: Any) -> Any:
        errors, _ = check_open(self._spec, request)
        if errors:
            return pb.OpenSessionResponse(errors=errors, spec=self._spec_proto)
        session_id = f"{os.getpid()}-{len(self._sessions)}-{random.getrandbits(32):08x}"
        self._sessions[session_id] = (request.campaign, request.episode)
        return pb.OpenSessionResponse(accepted=True, session_id=session_id, spec=self._spec_proto)

    def ResetSession(self, request: pb.ResetSessionRequest, context: Any) -> Any:
        known = self._sessions.get(request.session_id)
        if known is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"ResetSession: {request.session_id!r}")
        self._sessions[request.session_id] = (known[0], request.episode)
        return pb.ResetSessionResponse()

    def CloseSession(self, request: pb.CloseSessionRequest, context: Any) -> Any:
        self._sessions.pop(request.session_id, None)
        return pb.CloseSessionResponse()

    # --- acting -------------------------------------------------------------------------------

    def _fault(self, request: pb.ActRequest, context: Any) -> str | None:
        known = self._sessions.get(request.session_id)
        if known is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Act: session {request.session_id!r} lost")
        key = (*known, request.step)
        kind = self._schedule.kind_at(*key)
        with self._lock:
            self._attempts[key] += 1
            if kind is None:
                return None
            if key in self._done:  # one-shot; but a closed call fails its client's retry too
                return kind if kind == "close" and self._attempts[key] <= 2 else None
            self._done.add(key)
            with self._log.open("a") as log:
                entry = {"campaign": key[0], "episode": key[1], "step": key[2], "kind": kind}
                log.write(json.dumps({**entry, "pid": os.getpid()}) + "\n")
                log.flush()
                os.fsync(log.fileno())
        if kind in ("crash", "restart"):
            os._exit(CRASH_EXIT if kind == "crash" else RESTART_EXIT)
        return kind

    def _reply(self, request: pb.ActRequest, kind: str | None) -> pb.ActResponse:
        action = np.zeros(4, np.float32)
        if kind == "nan":
            action[1] = np.nan
        elif kind == "late":
            time.sleep(self._late_s)
        elif kind in ("hang", "stall"):
            time.sleep(HANG_S)
        tensor = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[4], data=action.tobytes())
        return pb.ActResponse(session_id=request.session_id, step=request.step, action=tensor)

    def Act(self, request: pb.ActRequest, context: Any) -> pb.ActResponse:
        kind = self._fault(request, context)
        if kind == "close":
            context.abort(grpc.StatusCode.UNAVAILABLE, "fault injection: connection closed")
        return self._reply(request, kind)

    def ActBatch(self, request: pb.ActBatchRequest, context: Any) -> pb.ActBatchResponse:
        """Each item's fault as on `Act`: crash and restart end the whole call, hang, stall and
        late delay it (every item misses its deadline), close and nan hit their item in-band."""
        items = list(request.items)
        # A fault that kills the process goes first: no other item's fault is logged and lost.
        order = sorted(range(len(items)), key=lambda i: self._peek(items[i]) not in _FATAL_KINDS)
        kinds = {i: self._fault(items[i], context) for i in order}
        delays = {"hang": HANG_S, "stall": HANG_S, "late": self._late_s}
        time.sleep(max((delays.get(str(kind), 0.0) for kind in kinds.values()), default=0.0))
        replies = []
        for index, item in enumerate(items):
            if kinds[index] == "close":
                status = pb.StepStatus(code=grpc.StatusCode.UNAVAILABLE.value[0],
                                       message="fault injection: connection closed")  # fmt: skip
                replies.append(pb.ActResponse(session_id=item.session_id, step=item.step,
                                              status=status))  # fmt: skip
            else:
                replies.append(self._reply(item, "nan" if kinds[index] == "nan" else None))
        return pb.ActBatchResponse(items=replies)

    def _peek(self, request: pb.ActRequest) -> str | None:
        known = self._sessions.get(request.session_id)
        return None if known is None else self._schedule.kind_at(*known, request.step)

    def ActStream(self, requests: Iterator[pb.ActRequest], context: Any) -> Iterator[Any]:
        for request in requests:
            kind = self._fault(request, context)
            if kind == "close":
                return  # the server ends the stream
            if kind == "stall":
                time.sleep(HANG_S)  # nothing on the stream meanwhile; that step is dropped
                continue
            yield self._reply(request, kind)


# --------------------------------------------------------------------------- processes


def serve_child(port: int, schedule: FaultSchedule, log: Path, late_s: float) -> None:
    """Serve on 127.0.0.1:``port`` until killed (the child process)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    pb_grpc.add_PolicyServiceServicer_to_server(FaultServicer(schedule, log, late_s), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"serving 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def supervise(args: argparse.Namespace) -> int:
    """Keep a serving child on one port; restart it when a fault kills it."""
    port = args.port or _free_port()
    command = [sys.executable, "-m", "tests.testbed.faults", "--child", "--port", str(port),
               "--schedule-seed", str(args.schedule_seed), "--rate", str(args.rate),
               "--log", str(args.log), "--late-s", str(args.late_s)]  # fmt: skip
    child: list[subprocess.Popen[str]] = []
    signal.signal(signal.SIGTERM, lambda *_: (child and child[0].kill(), sys.exit(0)))
    announced = False
    for _ in range(args.max_restarts + 1):
        child[:] = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)]
        assert child[0].stdout is not None
        line = child[0].stdout.readline()  # "serving ..." once it listens
        if not announced and line.startswith("serving"):
            print(line.strip(), flush=True)
            announced = True
        code = child[0].wait()
        if code not in (CRASH_EXIT, RESTART_EXIT):
            return code
        time.sleep(CRASH_DOWN_S if code == CRASH_EXIT else 0.0)
    return 1


def start_fault_server(
    seed: int, log: Path, rate: float = 0.05, late_s: float = 0.5, timeout_s: float = 30.0
) -> tuple[subprocess.Popen[str], str]:
    """Start the supervisor in a subprocess; return it and ``host:port`` once it serves."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.testbed.faults", "--port", "0", "--schedule-seed", str(seed),
         "--rate", str(rate), "--log", str(log), "--late-s", str(late_s)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,  # so the test can stop the supervisor and its child together
    )  # fmt: skip
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and process.poll() is None:
        if selector.select(timeout=0.1):
            line = process.stdout.readline()
            if line.startswith("serving "):
                return process, line.split()[1]
    stop_fault_server(process)
    raise AssertionError("the fault server did not report its address")


def stop_fault_server(process: subprocess.Popen[str]) -> None:
    """Kill the supervisor and its child (bounded wait)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--schedule-seed", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--late-s", type=float, default=0.5)
    parser.add_argument("--max-restarts", type=int, default=100)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    schedule = FaultSchedule(args.schedule_seed, args.rate)
    if args.child:
        serve_child(args.port, schedule, args.log, args.late_s)
        return 0
    return supervise(args)


if __name__ == "__main__":
    sys.exit(main())
