"""Gymnasium environments of manufacturing cells built from factory data (PyBullet).

Importing this package registers the environments (explicitly, with string entry points)::

    import gymnasium as gym
    import envs  # noqa: F401

    env = gym.make("Testbed/ConveyorSort-v0", site="kr-changwon")
"""

from gymnasium.envs.registration import register, registry

ENV_IDS = ("Testbed/ConveyorSort-v0",)

if "Testbed/ConveyorSort-v0" not in registry:
    # No max_episode_steps here: the env truncates at its site's own time limit.
    register(id="Testbed/ConveyorSort-v0", entry_point="envs.conveyor_sort:ConveyorSortEnv")
