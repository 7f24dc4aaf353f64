"""Policy link: the testbed's Act round trips against a bare grpcio echo of the same payload.

Payload: the ConveyorSort observation (10 float32 fields, 25 floats) -> a 4-float action. The
bare echo sends the same raw bytes through generic grpcio handlers (no protobuf, no sessions,
no validation), so ``testbed / echo`` is what the policy contract costs on top of gRPC itself.

Modes: an in-process call, the bare echo (unary, stream), the testbed client's unary ``Act``,
``ActStream`` and ``ActBatch`` over 8 sessions (reported per episode-step), each with named
observations (10 tensors, protocol 1.0's form) and with packed ones (one byte string, 1.1).
All clients are opened up front and every round times every mode once, so load on a shared
machine hits all modes alike; percentiles are over the samples of all rounds (wall time: a
round trip is what an episode waits for).

The policy server is made by a factory the caller passes in (``testbed bench`` serves with the
``policies`` SDK), because the testbed itself never imports ``policies``.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import gymnasium
import numpy as np

from testbed.bench.figures import BenchProfile, Figure, Progress
from testbed.link.client import RemotePolicy
from testbed.link.policy import Capabilities, Policy, PolicySpec, SessionInfo, spaces_to_specs

SIZES = {"ee_pos": 3, "ee_vel": 3, "gripper": 1, "holding": 1, "part_pos": 3, "part_vel": 3,
         "part_size": 3, "part_type": 4, "bin_pos": 3, "time": 1}  # fmt: skip
OBS_SPACE = gymnasium.spaces.Dict(
    {n: gymnasium.spaces.Box(-5.0, 5.0, (k,), np.float32) for n, k in SIZES.items()}
)
ACT_SPACE = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
BATCH = 8
FORMS = ("named", "packed")
#: Goals by observation form: the named form keeps its 1.0 goals; DESIGN.md's are for packed.
GOAL_RATIO = {"named": 1.3, "packed": 1.2}
GOAL_BATCH_MS = {"named": 0.1, "packed": 0.08}


class Served(Protocol):
    """A running policy server, as the server factory returns it."""

    @property
    def address(self) -> str:
        """``host:port`` it listens on."""
        ...

    def stop(self, grace: float | None = ...) -> None:
        """Stop serving."""
        ...


#: Serves a policy on 127.0.0.1 (any free port) and returns once it answers.
ServerFactory = Callable[[Policy], Served]


class TinyPolicy:
    """A near-free policy with the ConveyorSort spaces: the figures measure the link."""

    def __init__(self) -> None:
        observation, action = spaces_to_specs(OBS_SPACE, ACT_SPACE)
        self._spec = PolicySpec("bench-tiny", "1", observation, action, Capabilities(max_batch=64))
        self._action = np.zeros(4, np.float32)

    def spec(self) -> PolicySpec:
        """Identity and spaces."""
        return self._spec

    def reset(self, session: SessionInfo) -> None:
        """Nothing to reset."""

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """The same zero action every step."""
        return self._action


def _echo_server() -> tuple[grpc.Server, str]:
    reply = np.zeros(4, np.float32).tobytes()

    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        return reply

    def stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in requests:
            yield reply

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.stream_stream_rpc_method_handler(stream),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def _echo_modes(stack: ExitStack, payload: bytes) -> dict[str, Callable[[], object]]:
    server, address = _echo_server()
    stack.callback(server.stop, 0)
    channel = grpc.insecure_channel(address)
    stack.callback(channel.close)
    unary = channel.unary_unary("/bench.Echo/Unary")
    requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    replies = channel.stream_stream("/bench.Echo/Stream")(iter(requests.get, None))
    stack.callback(requests.put, None)

    def exchange() -> bytes:
        requests.put(payload)
        return next(replies)

    return {"echo unary": lambda: unary(payload, timeout=5), "echo stream": exchange}


def _testbed_modes(
    stack: ExitStack, address: str, obs: dict[str, np.ndarray]
) -> dict[str, Callable[[], object]]:
    modes: dict[str, Callable[[], object]] = {}
    for form in FORMS:
        for mode in ("unary", "stream"):
            remote = RemotePolicy(address, observation_space=OBS_SPACE, action_space=ACT_SPACE,
                                  mode=mode, deadline_s=5.0, observation_form=form)  # type: ignore[arg-type]  # fmt: skip
            stack.callback(remote.close)
            session = SessionInfo(f"bench-{mode}-{form}", seed=0)
            remote.reset(session)
            modes[f"testbed {mode} {form}"] = _bind_act(remote, session, obs)
        batch = RemotePolicy(address, observation_space=OBS_SPACE, action_space=ACT_SPACE,
                             mode="batch", deadline_s=5.0, observation_form=form)  # type: ignore[arg-type]  # fmt: skip
        stack.callback(batch.close)
        sessions = [SessionInfo(f"bench-batch-{form}-{i}", seed=i) for i in range(BATCH)]
        for session in sessions:
            batch.reset(session)
        modes[f"testbed batch {form}"] = _bind_batch(batch, sessions, [obs] * BATCH)
    return modes


def _bind_act(remote: RemotePolicy, session: SessionInfo, obs: Any) -> Callable[[], object]:
    return lambda: remote.act(session, obs)


def _bind_batch(
    remote: RemotePolicy, sessions: list[SessionInfo], observations: list[Any]
) -> Callable[[], object]:
    return lambda: remote.act_batch(sessions, observations)


@dataclass
class LinkSamples:
    """Round trips of one mode.

    Attributes:
        ms: Wall time of each round trip (ms).
        cpu_s: CPU time of this process (client and in-process server) over all of them.
    """

    ms: list[np.ndarray] = field(default_factory=list)
    cpu_s: float = 0.0

    @property
    def calls(self) -> int:
        """Round trips timed."""
        return int(sum(part.size for part in self.ms))

    def percentile(self, q: float) -> float:
        """A percentile of the round-trip times (ms)."""
        return float(np.percentile(np.concatenate(self.ms), q))


def measure_link(
    serve: ServerFactory, profile: BenchProfile, progress: Progress
) -> dict[str, LinkSamples]:
    """Round trips per mode, all modes interleaved round by round."""
    rng = np.random.default_rng(0)
    obs = {n: rng.uniform(-1, 1, k).astype(np.float32) for n, k in SIZES.items()}
    payload = np.concatenate(list(obs.values())).tobytes()
    policy = TinyPolicy()
    session = SessionInfo("in-process", seed=0)
    with ExitStack() as stack:
        server = serve(policy)
        stack.callback(server.stop, 0)
        modes: dict[str, Callable[[], object]] = {"in-process": lambda: policy.act(session, obs)}
        modes.update(_echo_modes(stack, payload))
        modes.update(_testbed_modes(stack, server.address, obs))
        samples = {name: LinkSamples() for name in modes}
        for round_index in range(profile.link_rounds):
            progress(f"link: round {round_index + 1}/{profile.link_rounds}")
            for name, call in modes.items():
                _time_calls(call, profile.link_steps, samples[name])
    return samples


def _time_calls(call: Callable[[], object], steps: int, into: LinkSamples) -> None:
    for _ in range(max(10, steps // 10)):  # warm-up: channel, threads, caches
        call()
    clock = time.perf_counter
    out = np.empty(steps)
    cpu = time.process_time()
    for i in range(steps):
        start = clock()
        call()
        out[i] = clock() - start
    into.cpu_s += time.process_time() - cpu
    into.ms.append(out * 1000.0)


def run(
    profile: BenchProfile, serve: ServerFactory, progress: Progress
) -> tuple[list[Figure], list[str]]:
    """The policy-link section: p50 round trips and their ratios to the bare echo."""
    samples = measure_link(serve, profile, progress)
    p50 = {name: s.percentile(50) for name, s in samples.items()}

    def figure(name: str, label: str, value: float, per: int = 1, **kwargs: Any) -> Figure:
        mode = samples[name]
        details = {
            "p99_ms": mode.percentile(99) / per,
            "round_trips": mode.calls,
            # Client and server share this process: CPU per round trip is the work both do.
            "cpu_us_per_round_trip": mode.cpu_s / mode.calls * 1e6 / per,
        }
        return Figure("link", label, value, "ms", details=details, **kwargs)

    figures = [
        figure("in-process", "in-process act (p50)", p50["in-process"]),
        figure("echo unary", "bare grpcio echo, unary (p50)", p50["echo unary"]),
        figure("echo stream", "bare grpcio echo, stream (p50)", p50["echo stream"]),
    ]
    for mode in ("unary", "stream"):
        for form in FORMS:
            name, goal = f"testbed {mode} {form}", GOAL_RATIO[form]
            ratio = p50[name] / p50[f"echo {mode}"]
            figures.append(
                figure(name, f"testbed {mode} Act, {form} (p50)", p50[name],
                       reference=p50[f"echo {mode}"], reference_name=f"echo {mode}",
                       ratio=ratio, ratio_name="vs echo", goal=f"<= {goal}x", met=ratio <= goal)
            )  # fmt: skip
    for form in FORMS:
        name, goal = f"testbed batch {form}", GOAL_BATCH_MS[form]
        per_step = p50[name] / BATCH
        figures.append(
            figure(name, f"testbed ActBatch x{BATCH}, {form}, per episode-step (p50)", per_step,
                   per=BATCH, reference=p50["echo unary"], reference_name="echo unary",
                   ratio=per_step / p50["echo unary"], ratio_name="vs echo",
                   goal=f"<= {goal} ms", met=per_step <= goal)
        )  # fmt: skip
    return figures, []
