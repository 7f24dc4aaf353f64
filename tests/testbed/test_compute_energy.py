"""Compute energy per policy call: measured in-process and reported by a server, the same way."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import grpc
import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from policies.server import PolicyServer, serve
from protos.compute import CPU_ESTIMATE, UNKNOWN, ComputeMeter, ComputeUsage
from protos.specs import Capabilities
from protos.v1 import policy_service_pb2 as pb
from testbed.episodes.compute import ComputeTally, PolicyMeter
from testbed.episodes.rollout import run_episode
from testbed.link.client import RemotePolicy
from testbed.link.policy import SessionInfo
from tests.policies.doubles import (
    LinearPolicy,
    action_space,
    observation_space,
    sample_observation,
)

WATTS = 10.0
BUSY_S = 0.002


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class BusyPolicy(LinearPolicy):
    """LinearPolicy that burns ``BUSY_S`` of CPU per action (act_batch: per session)."""

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        _spin(BUSY_S)
        return super().act(session, observation)

    def act_batch(
        self, sessions: Sequence[SessionInfo], observations: Sequence[Mapping[str, np.ndarray]]
    ) -> list[np.ndarray]:
        return [self.act(s, o) for s, o in zip(sessions, observations, strict=True)]


class DropCompute(grpc.ServerInterceptor):
    """Makes a server answer Act like a protocol 1.0 server: no ``compute`` field at all."""

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if not details.method.endswith("/Act"):
            return handler

        def act(request: Any, context: grpc.ServicerContext) -> Any:
            reply = pb.ActResponse()
            reply.CopyFrom(handler.unary_unary(request, context))
            reply.ClearField("compute")
            return reply

        return grpc.unary_unary_rpc_method_handler(
            act, handler.request_deserializer, handler.response_serializer
        )


def _meter() -> ComputeMeter:
    return ComputeMeter(CPU_ESTIMATE, watts_per_core=WATTS, gpu=False)


@pytest.fixture
def running() -> Iterator[Callable[..., PolicyServer]]:
    servers: list[PolicyServer] = []

    def start(policy: Any, **kw: Any) -> PolicyServer:
        server = serve(policy, "127.0.0.1:0", compute_meter=_meter(), **kw)
        assert server.wait_until_serving(5)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=0)


def _client(address: str, **kw: Any) -> RemotePolicy:
    return RemotePolicy(
        address, observation_space=observation_space(), action_space=action_space(),
        connect_timeout_s=2.0, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["unary", "stream"])
def test_server_reports_each_replys_compute(running: Any, mode: str) -> None:
    session = SessionInfo("s", site="kr-changwon", seed=1)
    with _client(running(BusyPolicy()).address, mode=mode) as remote:
        assert remote.compute_of(session).joules is None  # nothing asked yet: unknown
        remote.reset(session)
        remote.act(session, sample_observation(np.random.default_rng(0)))
        usage = remote.compute_of(session)
    assert usage.source == CPU_ESTIMATE
    assert usage.cpu_seconds >= BUSY_S
    assert usage.joules == pytest.approx(usage.cpu_seconds * WATTS)


def test_act_batch_splits_one_calls_compute_evenly(running: Any) -> None:
    sessions = [SessionInfo(f"s{i}", seed=i) for i in range(4)]
    policy = BusyPolicy(Capabilities(batching=True, max_batch=8))
    with _client(running(policy).address, mode="batch") as remote:
        for session in sessions:
            remote.reset(session)
        rng = np.random.default_rng(1)
        remote.act_batch(sessions, [sample_observation(rng) for _ in sessions])
        usages = [remote.compute_of(s) for s in sessions]
    assert len({u.joules for u in usages}) == 1  # equal shares of the one call
    total = sum(u.cpu_seconds for u in usages)
    assert total >= len(sessions) * BUSY_S  # the shares add up to the whole call
    assert sum(u.joules or 0.0 for u in usages) == pytest.approx(total * WATTS)


def test_a_server_without_the_field_gives_unknown_never_zero(running: Any) -> None:
    session = SessionInfo("s", seed=1)
    with _client(running(BusyPolicy(), interceptors=[DropCompute()]).address) as remote:
        remote.reset(session)
        remote.act(session, sample_observation(np.random.default_rng(0)))
        usage = remote.compute_of(session)
    assert usage == ComputeUsage(0.0, None, UNKNOWN)


@pytest.fixture(scope="module")
def env() -> Iterator[gym.Env]:
    made = gym.make("Testbed/ConveyorSort-v0", site="kr-changwon")
    yield made
    made.close()


def _episode(env: gym.Env, policy: Any, meter: ComputeMeter | None = None) -> dict[str, Any]:
    session = SessionInfo("ep", site="kr-changwon", seed=3)
    result = run_episode(env, policy, session, max_steps=8, policy_id="p@1", meter=meter)
    assert result.steps == 8 and not result.faults
    return result.compute.summary(WATTS)


def test_in_process_and_remote_policies_are_measured_alike(env: gym.Env, running: Any) -> None:
    here = _episode(env, BusyPolicy(), _meter())
    with _client(running(BusyPolicy()).address) as remote:
        there = _episode(env, remote)
    for summary in (here, there):
        assert summary["calls"] == summary["measured_calls"] == summary["actions"] == 8
        assert summary["source"] == CPU_ESTIMATE
        assert summary["cpu_seconds"] >= 8 * BUSY_S
        assert summary["joules"] == pytest.approx(summary["cpu_seconds"] * WATTS)


def test_an_old_servers_episode_has_unknown_compute(env: gym.Env, running: Any) -> None:
    with _client(running(BusyPolicy(), interceptors=[DropCompute()]).address) as remote:
        summary = _episode(env, remote)
    assert summary["calls"] == 8 and summary["measured_calls"] == 0
    assert summary["joules"] is None and summary["source"] == UNKNOWN


def test_tally_counts_measured_calls_and_their_actions() -> None:
    tally = ComputeTally()
    tally.add(ComputeUsage(0.01, 0.12, CPU_ESTIMATE), 1)
    tally.add(ComputeUsage(0.02, 0.24, CPU_ESTIMATE), 5)  # a chunk of 5 actions
    tally.add(ComputeUsage(0.01, 0.12, CPU_ESTIMATE), 0)  # a refused action: compute, no action
    tally.add(None, 0)  # no reply: not measured
    tally.add(ComputeUsage(0.0, None, UNKNOWN), 1)  # a reply without compute
    summary = tally.summary(WATTS, price_per_kwh=0.3, currency="EUR")
    assert summary["calls"] == 5 and summary["measured_calls"] == 3 and summary["actions"] == 6
    assert summary["joules"] == pytest.approx(0.48)
    assert summary["cpu_seconds"] == pytest.approx(0.04)
    assert summary["source"] == CPU_ESTIMATE and summary["watts_per_core"] == WATTS
    assert summary["price_per_kwh"] == 0.3
    tally.add(ComputeUsage(0.0, 1.0, "rapl"), 1)
    assert tally.summary()["source"] == "mixed: cpu-estimate, rapl"
    assert ComputeTally().summary(WATTS)["joules"] is None  # no call measured: unknown, not 0
    assert ComputeTally().summary(WATTS)["watts_per_core"] is None


def test_policy_meter_trusts_a_policys_own_report() -> None:
    class Reporting:
        def compute_of(self, session: SessionInfo) -> ComputeUsage:
            return ComputeUsage(1.0, 2.0, "rapl")

    meter = PolicyMeter(Reporting(), _meter())
    assert meter.reported and meter.start() is None
    session = SessionInfo("s")
    assert meter.stop(None, [session, session]) == [ComputeUsage(1.0, 2.0, "rapl")] * 2
    local = PolicyMeter(LinearPolicy(), _meter())
    mark = local.start()
    _spin(0.004)
    first, second = local.stop(mark, [session, session])
    assert first == second and first.cpu_seconds >= 0.002  # one call shared by two sessions


def test_bench_compares_in_process_and_remote_compute_per_action() -> None:
    import dataclasses

    from policies.scripted import scripted_policy
    from testbed.bench import compute_energy
    from testbed.bench.figures import QUICK

    def serve_it(policy: Any) -> PolicyServer:
        server = serve(policy, "127.0.0.1:0")
        assert server.wait_until_serving(10)
        return server

    lines: list[str] = []
    profile = dataclasses.replace(QUICK, memory_steps=30)
    figures, notes = compute_energy.run(profile, scripted_policy, serve_it, lines.append)
    (figure,) = figures
    assert figure.unit == "mJ/action" and figure.value > 0 and (figure.reference or 0) > 0
    local, remote = figure.details["in_process"], figure.details["remote"]
    assert local["actions"] == remote["actions"] == 30
    assert local["source"] == remote["source"] != UNKNOWN  # the same meter on both sides
    assert figure.ratio == pytest.approx((figure.reference or 0) / figure.value)
    assert "in-process" in notes[0] and "remote" in notes[0] and len(lines) == 2


def test_testbed_serve_measures_with_the_given_watts_per_core(env: gym.Env) -> None:
    from tests.testbed.servers import start_cli_server, stop

    process, address = start_cli_server(
        "scripted:kr-changwon", "--energy-counter", "cpu-estimate", "--watts-per-core", "24"
    )
    try:
        with RemotePolicy(
            address, observation_space=env.observation_space,
            action_space=env.action_space,  # type: ignore[arg-type]
        ) as remote:  # fmt: skip
            summary = _episode(env, remote)
    finally:
        stop(process)
    assert summary["source"] == CPU_ESTIMATE and summary["measured_calls"] == 8
    assert summary["joules"] == pytest.approx(summary["cpu_seconds"] * 24.0)


def test_testbed_serve_refuses_an_unknown_counter() -> None:
    from typer.testing import CliRunner

    from testbed.cli import _register, app

    _register()
    args = ["serve", "scripted:kr-changwon", "--energy-counter", "tdp", "--address", "127.0.0.1:0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--energy-counter" in result.output and "'tdp'" in result.output
    assert "Traceback" not in result.output
