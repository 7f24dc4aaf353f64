"""The physics client a `Sim` owns: connected quietly, disconnected exactly once."""

from __future__ import annotations

import gc

import pybullet
import pytest

from envs.sim import Sim

GRAVITY = (0.0, 0.0, -9.81)


def test_connecting_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    sim = Sim(1 / 240, GRAVITY)
    sim.close()
    out, _ = capfd.readouterr()
    assert "argv" not in out  # BulletClient's connect(options="") prints argv[0]= per client


def test_closing_twice_does_not_close_the_client_that_reused_the_id() -> None:
    old = Sim(1 / 240, GRAVITY)
    old_id = old.client.client_id
    old.close()
    old.close()
    new = Sim(1 / 240, GRAVITY)
    try:
        assert new.client.client_id == old_id  # pybullet hands the freed id out again
        del old
        gc.collect()
        assert pybullet.isConnected(physicsClientId=new.client.client_id)
        new.step()
    finally:
        new.close()


def test_a_sim_that_was_never_closed_disconnects_when_collected() -> None:
    sim = Sim(1 / 240, GRAVITY)
    client_id = sim.client.client_id
    del sim
    gc.collect()
    assert not pybullet.isConnected(physicsClientId=client_id)
