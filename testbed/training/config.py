"""Config schemas of ``testbed train``, registered with Hydra's ConfigStore.

The YAML options in ``configs/train/`` extend `TrainConfig` (``defaults: [base_train, _self_]``),
so a misspelt key or a wrong type fails when the config is composed, before any env is built.
The primary config ``configs/train.yaml`` picks one option of the ``train`` group::

    testbed train                                   # configs/train/ppo_touch_kr.yaml
    testbed train train=sac_touch_kr train.total_timesteps=20000 train.seed=3

This module does not touch ``testbed.config`` (the campaign schemas): training has its own
primary config and group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from testbed.imports import is_import_path

ALGORITHMS = ("PPO", "SAC", "TD3", "A2C", "DDPG")
BC_ALGORITHMS = ("PPO", "A2C")
ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu")
VEC_ENVS = ("auto", "dummy", "subproc")
START_METHODS = ("forkserver", "spawn", "fork")
_POSITIVE = ("n_envs", "eval_episodes", "final_eval_episodes", "torch_threads")
_BC_POSITIVE = ("gradient_steps", "batch_size", "eval_episodes")
_NON_NEGATIVE = ("eval_freq", "checkpoint_freq")


@dataclass
class AlgoConfig:
    """Which Stable-Baselines3 algorithm, and its constructor arguments.

    Attributes:
        name: One of `ALGORITHMS`.
        policy: SB3 policy class name; ``MultiInputPolicy`` for the testbed's Dict observations.
        net_arch: Hidden layer sizes of the actor and critic networks.
        activation: Hidden layers' activation, one of `ACTIVATIONS`; empty: the algorithm's
            default (tanh for PPO and A2C, ReLU for SAC, TD3, DDPG).
        features_extractor: The policy's features extractor as ``module:Class`` (an SB3
            ``BaseFeaturesExtractor`` subclass, e.g. ``policies.vision:KeypointExtractor``),
            its keyword arguments in ``hyperparameters.policy_kwargs.features_extractor_kwargs``;
            empty: SB3's default (``CombinedExtractor``). The saved model names the class, so
            whatever serves the model must import the same module.
        hyperparameters: Further keyword arguments of the algorithm's constructor
            (``learning_rate``, ``n_steps``, ``batch_size``, ``gamma``, ``buffer_size``...).
    """

    name: str = "PPO"
    policy: str = "MultiInputPolicy"
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = ""
    features_extractor: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class BCConfig:
    """Behaviour cloning from a Minari dataset, before (or instead of) reinforcement learning.

    The actor of `AlgoConfig`'s policy (PPO or A2C: an SB3 ``ActorCriticPolicy``) is fitted to
    the dataset's actions (mean squared error of the policy's mean action), so the result is an
    ordinary SB3 model: served by ``testbed serve sb3:``, and fine-tuned by the same algorithm
    for `TrainConfig.total_timesteps` env steps afterwards (0: behaviour cloning only).

    Attributes:
        dataset: Minari dataset id (``testbed export minari``); empty: no behaviour cloning.
        datasets_root: Folder holding the dataset (``MINARI_DATASETS_PATH``); empty: Minari's.
        gradient_steps: Optimiser steps.
        batch_size: Transitions per step.
        learning_rate: Adam's learning rate (decayed to a tenth by cosine annealing).
        weight_decay: AdamW's weight decay.
        validation_episodes: Episodes held out of training for the validation loss.
        eval_every: Gradient steps between evaluations at the home site (0: none).
        eval_episodes: Episodes per evaluation during training.
        standardize: Train the actor on inputs standardised by the training set's mean and
            standard deviation, then fold the scaling into its first layer, so the saved model
            still reads raw observations. Positions in metres vary by centimetres: without it
            a gate at a few millimetres (align, then descend) needs first-layer weights that
            Adam's steps of about the learning rate take far too long to grow. Not for
            policies with a trainable features extractor (a CNN on images).
        image_shift_px: Random-shift augmentation of image fields (DrQ, Kostrikov et al.
            2020): each training image is padded by this many pixels (edge pixels repeated)
            and cropped back at a random offset, a new one per sample and step; 0: off.
            Demonstrations are few and a CNN memorises them; shifted copies make it read
            where things are relative to each other instead.
        aux_keys: Observation fields the features extractor is also trained to predict (an
            auxiliary loss through a linear head that is dropped after cloning), e.g.
            ``[part_pos]`` for a CNN that must find the part in the image. They need not be
            policy inputs: the saved model still reads only `TrainConfig.obs_keys`. Only for
            a policy with a trainable features extractor.
        aux_weight: Weight of the auxiliary loss (mean squared error of the standardised
            fields) against the action loss.
        keep_best: Keep the policy of the evaluation (every `eval_every` steps and at the
            end) with the highest success rate, not the last one; the final evaluation runs
            other episodes, so its figure is not the one the choice was made on. Closed-loop
            success of a clone can swing between evaluations while the loss falls steadily.
    """

    dataset: str = ""
    datasets_root: str = ""
    gradient_steps: int = 20_000
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    validation_episodes: int = 4
    eval_every: int = 5_000
    eval_episodes: int = 10
    standardize: bool = False
    image_shift_px: int = 0
    aux_keys: list[str] = field(default_factory=list)
    aux_weight: float = 1.0
    keep_best: bool = False


@dataclass
class TrainConfig:
    """One training run.

    Attributes:
        env_id: Registered Gymnasium id of the task.
        site: Home site: where the run evaluates, and where it trains unless `sites` is set.
        sites: Domain randomisation: every episode of every sub-env draws its site from this
            list (empty: train at `site` only).
        env_kwargs: Extra keyword arguments of the env (besides ``site``).
        obs_keys: Observation fields fed to the model (empty: all of them).
        algo: The algorithm and its hyperparameters.
        bc: Behaviour cloning from a dataset first (off unless ``bc.dataset`` is set).
        total_timesteps: Env steps to train for (summed over sub-envs); with behaviour
            cloning, the fine-tuning steps after it (0: none).
        seed: Seed of the algorithm, the networks and the training envs.
        n_envs: Parallel sub-envs.
        vec_env: ``dummy`` (one process), ``subproc`` (one process per sub-env) or ``auto``
            (dummy for one sub-env, subproc otherwise).
        start_method: How `SubprocVecEnv` starts workers (forkserver or spawn: safe with
            PyBullet clients in the parent).
        eval_freq: Env steps between evaluations at the home site (0: none during training).
        eval_episodes: Episodes per evaluation during training.
        final_eval_episodes: Episodes of the final evaluation at the home site (fixed seeds,
            recorded in ``model.json``).
        checkpoint_freq: Env steps between checkpoints (0: none).
        progress_bar: Show SB3's progress bar (needs ``tqdm`` and ``rich``).
        torch_threads: Threads torch may use (1 leaves the cores to the simulators).
        policy_id: Id the served policy reports; empty: ``sb3-<algo>-<task>@<sites>``.
        version: Version the served policy reports; empty: the first 12 hex digits of the
            model file's sha256.
        out_dir: Where the model and its files go; empty: Hydra's run directory.
    """

    env_id: str = "Testbed/TouchPart-v0"
    site: str = "kr-changwon"
    sites: list[str] = field(default_factory=list)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    obs_keys: list[str] = field(default_factory=list)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    bc: BCConfig = field(default_factory=BCConfig)
    total_timesteps: int = 50_000
    seed: int = 0
    n_envs: int = 1
    vec_env: str = "auto"
    start_method: str = "forkserver"
    eval_freq: int = 10_000
    eval_episodes: int = 20
    final_eval_episodes: int = 100
    checkpoint_freq: int = 0
    progress_bar: bool = True
    torch_threads: int = 1
    policy_id: str = ""
    version: str = ""
    out_dir: str = ""

    @property
    def train_sites(self) -> list[str]:
        """The sites training episodes are drawn from."""
        return list(self.sites) or [self.site]

    def _bc_problems(self) -> list[str]:
        problems = [
            f"bc.{name}: expected >= 1, got {getattr(self.bc, name)}"
            for name in _BC_POSITIVE
            if getattr(self.bc, name) < 1
        ]
        if self.algo.name.upper() not in BC_ALGORITHMS:
            problems.append(
                f"algo.name: behaviour cloning trains an actor-critic policy: expected one of "
                f"{BC_ALGORITHMS}, got {self.algo.name!r}"
            )
        if self.bc.validation_episodes < 0 or self.bc.eval_every < 0:
            problems.append("bc.validation_episodes, bc.eval_every: expected >= 0")
        if self.bc.aux_weight < 0:
            problems.append(f"bc.aux_weight: expected >= 0, got {self.bc.aux_weight}")
        if self.bc.keep_best and self.bc.eval_every == 0:
            problems.append(
                "bc.keep_best: expected bc.eval_every >= 1 (it keeps the best evaluated policy), "
                "got bc.eval_every=0"
            )
        if not 0 <= self.bc.image_shift_px <= 32:
            problems.append(f"bc.image_shift_px: expected 0 .. 32, got {self.bc.image_shift_px}")
        return problems

    def check(self) -> None:
        """Reject values the schema's types cannot express.

        Raises:
            ValueError: Naming the field, the expectation and the value.
        """
        problems = []
        if self.algo.name.upper() not in ALGORITHMS:
            problems.append(f"algo.name: expected one of {ALGORITHMS}, got {self.algo.name!r}")
        if self.algo.activation and self.algo.activation not in ACTIVATIONS:
            problems.append(
                f"algo.activation: expected one of {ACTIVATIONS}, got {self.algo.activation!r}"
            )
        if self.algo.features_extractor and not is_import_path(self.algo.features_extractor):
            problems.append(
                "algo.features_extractor: expected module:Class (e.g. "
                f"policies.vision:KeypointExtractor), got {self.algo.features_extractor!r}"
            )
        if self.vec_env not in VEC_ENVS:
            problems.append(f"vec_env: expected one of {VEC_ENVS}, got {self.vec_env!r}")
        if self.start_method not in START_METHODS:
            problems.append(
                f"start_method: expected one of {START_METHODS}, got {self.start_method!r}"
            )
        for name in _POSITIVE:
            if getattr(self, name) < 1:
                problems.append(f"{name}: expected >= 1, got {getattr(self, name)}")
        least = 0 if self.bc.dataset else 1
        if self.total_timesteps < least:
            problems.append(f"total_timesteps: expected >= {least}, got {self.total_timesteps}")
        if self.bc.dataset:
            problems += self._bc_problems()
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                problems.append(f"{name}: expected >= 0, got {getattr(self, name)}")
        if len(set(self.obs_keys)) != len(self.obs_keys):
            problems.append(f"obs_keys: expected each field once, got {list(self.obs_keys)}")
        if problems:
            raise ValueError("train config: " + "; ".join(problems))


def register_train_configs() -> None:
    """Store the schema as ``train/base_train`` (idempotent; call before composing)."""
    ConfigStore.instance().store(group="train", name="base_train", node=TrainConfig)
