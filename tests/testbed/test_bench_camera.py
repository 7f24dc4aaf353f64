"""``testbed bench`` camera section: env steps/s with and without images, wire bytes, link p50."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

import envs  # noqa: F401  (registers the env ids)
from policies import serve
from policies.scripted import scripted_policy
from testbed.bench import cameras
from testbed.bench.figures import QUICK

TINY = replace(QUICK, env_steps=40, env_blocks=1, env_sites=("kr-changwon",), link_steps=10,
               link_rounds=2)  # fmt: skip


def _serve(policy: object) -> object:
    server = serve(policy, "127.0.0.1:0")
    assert server.wait_until_serving(30)
    return server


def test_camera_section_measures_every_figure() -> None:
    lines: list[str] = []
    figures, notes = cameras.run(TINY, scripted_policy, _serve, lines.append)  # type: ignore[arg-type]
    env, wire, link = figures
    assert env.unit == "steps/s" and env.reference_name == "without images"
    assert env.value < env.reference  # rendering a frame is not free
    assert env.ratio is not None and math.isclose(env.ratio, env.reference / env.value - 1.0)
    assert env.met == (env.ratio <= 1.0) and env.details["steps"] == 10
    raw, png = wire.details["raw"], wire.details["png"]
    assert raw > 96 * 96 * 3 > png > 0 and wire.value == png and wire.reference == raw
    assert raw - wire.details["without_image"] >= 96 * 96 * 3
    assert link.unit == "ms" and link.details["calls"] == 20 and link.value > 0
    assert link.details["p50_ms_png"] > 0
    assert any("TinyRenderer" in n for n in notes) and lines


def test_wire_bytes_of_an_image_observation() -> None:
    rng = np.random.default_rng(0)
    noisy = {"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
             "ee_pos": np.zeros(3, np.float32)}  # fmt: skip
    flat = {"image": np.full((32, 32, 3), 7, np.uint8), "ee_pos": np.zeros(3, np.float32)}
    raw, png, without = cameras.wire_bytes(noisy)
    assert raw - without >= 32 * 32 * 3 and png > raw - without  # noise does not compress
    raw_flat, png_flat, _ = cameras.wire_bytes(flat)
    assert raw_flat == raw and png_flat < png / 10
