"""Gymnasium environments of manufacturing cells built from factory data (PyBullet).

Importing this package registers the environments (explicitly, with string entry points)::

    import gymnasium as gym
    import envs  # noqa: F401

    env = gym.make("Testbed/ConveyorSort-v0", site="kr-changwon")

``Testbed/TouchPart-v0`` is the reach-and-touch sub-skill of the same cell, learnable in
minutes (see `envs.touch_part`). ``Testbed/Palletize-v0`` stacks cartons from the infeed
conveyor onto a pallet in the site's pattern (see `envs.palletize`).
"""

from gymnasium.envs.registration import register, registry

ENV_IDS = (
    "Testbed/ConveyorSort-v0",
    "Testbed/TouchPart-v0",
    "Testbed/Palletize-v0",
    "Testbed/PegInHole-v0",
)

if "Testbed/ConveyorSort-v0" not in registry:
    # No max_episode_steps here: the env truncates at its site's own time limit.
    register(id="Testbed/ConveyorSort-v0", entry_point="envs.conveyor_sort:ConveyorSortEnv")
if "Testbed/TouchPart-v0" not in registry:
    # Truncates at its own time_limit_s (a constructor argument), like ConveyorSort.
    register(id="Testbed/TouchPart-v0", entry_point="envs.touch_part:TouchPartEnv")
if "Testbed/Palletize-v0" not in registry:
    # Truncates at its site's palletize time limit.
    register(id="Testbed/Palletize-v0", entry_point="envs.palletize:PalletizeEnv")
if "Testbed/PegInHole-v0" not in registry:
    # Truncates at its site's peg-in-hole time limit.
    register(id="Testbed/PegInHole-v0", entry_point="envs.peg_in_hole:PegInHoleEnv")
