"""Train a Stable-Baselines3 model on a testbed task, evaluate it at its home site, write it out.

`train` is what ``testbed train`` runs below its Hydra entry point. It leaves in ``out_dir``:

- ``model.zip``: the SB3 model (``model.save``);
- ``model.json``: metadata (`METADATA_FORMAT`) read by ``policies.sb3_policy``: policy id and
  version, home and training sites, env id and kwargs, the observation fields and action the
  model was trained on, the training config, steps, seed, wall time, final evaluation, sha256
  of the model file, hashes of the site bundles, library versions;
- ``config.yaml``: the training config as run;
- ``train.log``: the run's log (SB3's tables and the testbed's messages);
- ``progress.csv``: SB3's training metrics (one row per log interval and evaluation);
- ``eval.csv``: the periodic evaluations at the home site;
- ``bc.csv``: with behaviour cloning, its losses and home-site success every ``bc.eval_every``
  gradient steps;
- ``learning_curve.png``: ``bc.csv`` and ``eval.csv`` plotted;
- ``monitor/N.monitor.csv``: every training episode of sub-env N (return, length, success);
- ``checkpoints/model_<steps>_steps.zip``: every ``checkpoint_freq`` steps, if on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import gymnasium
import numpy as np
import stable_baselines3
import torch
from omegaconf import OmegaConf
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.logger import CSVOutputFormat, HumanOutputFormat, Logger
from stable_baselines3.common.noise import NormalActionNoise

from envs.sites import load_site
from testbed.training.bc import BCReport, clone, load_demonstrations
from testbed.training.config import TrainConfig
from testbed.training.curves import plot_learning_curve
from testbed.training.envs import make_env, make_vec_env
from testbed.training.extractors import extractor_class

logger = logging.getLogger(__name__)

METADATA_FORMAT = "testbed.sb3-model/1"
"""Value of ``format`` in ``model.json``; ``policies.sb3_policy`` refuses other formats."""
FINAL_EVAL_SEED = 1_000_000
"""First seed of the final evaluation; training envs are seeded from ``cfg.seed`` upward."""
_EVAL_ENV_SEED_OFFSET = 10_000
_ACTIVATIONS = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
}
BC_EVAL_SEED = 2_000_000
"""First seed of the evaluations during behaviour cloning (the same episodes at every one)."""


@dataclass(frozen=True)
class EvalReport:
    """Deterministic episodes of a model at one site, with fixed seeds.

    Attributes:
        site: Where the episodes ran.
        episodes: How many.
        successes: Episodes whose ``success_at_end`` was true.
        success_rate: ``successes / episodes``.
        mean_return: Mean undiscounted return.
        mean_length: Mean episode length in control steps.
        first_seed: Episode ``i`` was reset with ``first_seed + i``.
    """

    site: str
    episodes: int
    successes: int
    success_rate: float
    mean_return: float
    mean_length: float
    first_seed: int


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    out_dir: Path
    model_path: Path
    metadata_path: Path
    steps: int
    wall_time_s: float
    final_eval: EvalReport
    bc: BCReport | None = None


def train(cfg: TrainConfig, out_dir: Path) -> TrainResult:
    """Train, evaluate and save a model as configured (see the module docstring for outputs).

    Raises:
        ValueError: If the config is invalid (naming the field).
    """
    cfg.check()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    with _run_log(out_dir / "train.log") as stream:
        torch.set_num_threads(cfg.torch_threads)
        sites = cfg.train_sites
        logger.info(
            "training %s on %s at %s: %s%d env steps",
            cfg.algo.name,
            cfg.env_id,
            sites,
            f"behaviour cloning of {cfg.bc.dataset}, then " if cfg.bc.dataset else "",
            cfg.total_timesteps,
        )
        model, wall_time_s, bc_report = _learn(cfg, out_dir, stream)
        model_path = out_dir / "model.zip"
        model.save(model_path)
        report = evaluate_model(
            model, cfg.env_id, cfg.site, cfg.env_kwargs, cfg.obs_keys, cfg.final_eval_episodes
        )
        logger.info("final evaluation at %s: %s", cfg.site, report)
        metadata = model_metadata(cfg, model, model_path, report, wall_time_s, bc_report)
        metadata_path = out_dir / "model.json"
        metadata_path.write_text(json.dumps(metadata, indent=2) + "\n")
        curve = plot_learning_curve(out_dir, title=str(metadata["policy_id"]))
        if curve is not None:
            logger.info("learning curve: %s", curve)
        logger.info("wrote %s (%d steps in %.1f s)", model_path, model.num_timesteps, wall_time_s)
    return TrainResult(
        out_dir, model_path, metadata_path, model.num_timesteps, wall_time_s, report, bc_report
    )


def _learn(
    cfg: TrainConfig, out_dir: Path, stream: TextIO
) -> tuple[BaseAlgorithm, float, BCReport | None]:
    """Build the envs and the model, clone the demonstrations if configured, run ``learn``.

    Returns:
        The model, the wall time of cloning and learning (s), the cloning's report if any.
    """
    subproc = cfg.vec_env == "subproc" or (cfg.vec_env == "auto" and cfg.n_envs > 1)
    vec_env = make_vec_env(
        cfg.env_id,
        cfg.train_sites,
        cfg.env_kwargs,
        cfg.obs_keys,
        cfg.n_envs,
        subproc=subproc,
        start_method=cfg.start_method,
        monitor_dir=out_dir / "monitor",
    )
    eval_env = make_vec_env(cfg.env_id, [cfg.site], cfg.env_kwargs, cfg.obs_keys, 1, subproc=False)
    eval_env.seed(cfg.seed + _EVAL_ENV_SEED_OFFSET)
    try:
        model = build_model(cfg, vec_env)
        model.set_logger(
            Logger(
                str(out_dir),
                [HumanOutputFormat(stream), CSVOutputFormat(str(out_dir / "progress.csv"))],
            )
        )
        start = time.perf_counter()
        bc_report = _clone(cfg, model, out_dir) if cfg.bc.dataset else None
        if cfg.total_timesteps:
            model.learn(
                cfg.total_timesteps,
                callback=_callbacks(cfg, eval_env, out_dir),
                progress_bar=cfg.progress_bar and _can_show_progress(),
            )
        model.logger.close()
        return model, time.perf_counter() - start, bc_report
    finally:
        vec_env.close()
        eval_env.close()


def _clone(cfg: TrainConfig, model: BaseAlgorithm, out_dir: Path) -> BCReport:
    """Behaviour cloning of ``cfg.bc.dataset`` into the model's policy (`testbed.training.bc`)."""
    keys = list(cfg.obs_keys)
    keys += [k for k in cfg.bc.aux_keys if keys and k not in keys]  # auxiliary targets too
    demos = load_demonstrations(cfg.bc.dataset, cfg.bc.datasets_root, keys)
    if demos.env_id != cfg.env_id:
        raise ValueError(
            f"bc.dataset {cfg.bc.dataset!r}: recorded in {demos.env_id!r}, expected {cfg.env_id!r}"
        )
    logger.info(
        "behaviour cloning: %d transitions of %d episodes of %s at %s",
        len(demos.actions),
        demos.episodes,
        demos.dataset_id,
        demos.env_kwargs.get("site", "?"),
    )

    def evaluate(step: int) -> float:
        report = evaluate_model(
            model, cfg.env_id, cfg.site, cfg.env_kwargs, cfg.obs_keys, cfg.bc.eval_episodes,
            first_seed=BC_EVAL_SEED,
        )  # fmt: skip
        return report.success_rate

    report = clone(
        model,
        demos,
        cfg.bc,
        seed=cfg.seed,
        csv_path=out_dir / "bc.csv",
        evaluate=evaluate if cfg.bc.eval_every else None,
        progress=cfg.progress_bar,
    )
    logger.info("behaviour cloning done: %s", report)
    return report


def _can_show_progress() -> bool:
    missing = [m for m in ("tqdm", "rich") if importlib.util.find_spec(m) is None]
    if missing:
        logger.warning("progress bar off: %s not installed (pip install tqdm rich)", missing)
    return not missing


def build_model(cfg: TrainConfig, env: Any) -> BaseAlgorithm:
    """The configured SB3 algorithm on `env` (CPU, seeded).

    Raises:
        ValueError: If ``algo.hyperparameters`` holds an argument the algorithm does not take.
    """
    name = cfg.algo.name.upper()
    algorithm = getattr(stable_baselines3, name)
    kwargs = dict(cfg.algo.hyperparameters)
    policy_kwargs = dict(kwargs.pop("policy_kwargs", None) or {})
    policy_kwargs.setdefault("net_arch", list(cfg.algo.net_arch))
    if cfg.algo.activation:
        policy_kwargs.setdefault("activation_fn", _ACTIVATIONS[cfg.algo.activation])
    if cfg.algo.features_extractor:
        policy_kwargs["features_extractor_class"] = extractor_class(cfg.algo.features_extractor)
    noise_std = float(kwargs.pop("action_noise_std", 0.0))
    if noise_std > 0.0:
        size = int(np.prod(env.action_space.shape))
        kwargs["action_noise"] = NormalActionNoise(np.zeros(size), noise_std * np.ones(size))
    try:
        return algorithm(
            cfg.algo.policy,
            env,
            seed=cfg.seed,
            device="cpu",
            verbose=0,
            policy_kwargs=policy_kwargs,
            **kwargs,
        )
    except TypeError as exc:
        raise ValueError(f"algo.hyperparameters: {name} rejected {sorted(kwargs)}: {exc}") from exc


def _callbacks(cfg: TrainConfig, eval_env: Any, out_dir: Path) -> list[BaseCallback]:
    # SB3 counts callback calls per vec-env step (n_envs env steps), the config env steps.
    callbacks: list[BaseCallback] = []
    if cfg.eval_freq:
        callbacks.append(
            EvalCallback(
                eval_env,
                n_eval_episodes=cfg.eval_episodes,
                eval_freq=max(cfg.eval_freq // cfg.n_envs, 1),
                log_path=str(out_dir / "eval"),
                deterministic=True,
                verbose=0,
                callback_after_eval=EvalCsv(out_dir / "eval.csv"),
            )
        )
    if cfg.checkpoint_freq:
        callbacks.append(
            CheckpointCallback(
                save_freq=max(cfg.checkpoint_freq // cfg.n_envs, 1),
                save_path=str(out_dir / "checkpoints"),
                name_prefix="model",
            )
        )
    return callbacks


class EvalCsv(BaseCallback):
    """Appends each evaluation of its parent `EvalCallback` to a CSV file and the log."""

    HEADER = "timesteps,mean_return,std_return,mean_length,success_rate,episodes\n"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _on_step(self) -> bool:
        parent = self.parent
        assert isinstance(parent, EvalCallback)
        returns = np.asarray(parent.evaluations_results[-1], dtype=np.float64)
        lengths = np.asarray(parent.evaluations_length[-1], dtype=np.float64)
        successes = parent.evaluations_successes[-1] if parent.evaluations_successes else []
        rate = float(np.mean(successes)) if len(successes) else float("nan")
        if not self.path.exists():
            self.path.write_text(self.HEADER)
        with self.path.open("a") as csv:
            csv.write(
                f"{self.num_timesteps},{returns.mean():.4f},{returns.std():.4f},"
                f"{lengths.mean():.2f},{rate:.4f},{returns.size}\n"
            )
        logger.info(
            "eval at %d steps: return %.3f, success %.2f over %d episodes",
            self.num_timesteps,
            returns.mean(),
            rate,
            returns.size,
        )
        return True


def evaluate_model(
    model: BaseAlgorithm,
    env_id: str,
    site: str,
    env_kwargs: dict[str, Any],
    obs_keys: list[str],
    episodes: int,
    first_seed: int = FINAL_EVAL_SEED,
) -> EvalReport:
    """Run `episodes` deterministic episodes at `site`, episode ``i`` seeded ``first_seed + i``."""
    env = make_env(env_id, [site], env_kwargs, obs_keys)
    returns, lengths, successes = [], [], 0
    try:
        for index in range(episodes):
            observation, _ = env.reset(seed=first_seed + index)
            total, steps, done = 0.0, 0, False
            info: dict[str, Any] = {}
            while not done:
                action, _ = model.predict(observation, deterministic=True)
                observation, reward, terminated, truncated, info = env.step(action)
                total, steps, done = total + float(reward), steps + 1, terminated or truncated
            returns.append(total)
            lengths.append(steps)
            successes += bool(info.get("is_success", False))
    finally:
        env.close()
    return EvalReport(
        site=site,
        episodes=episodes,
        successes=successes,
        success_rate=successes / episodes,
        mean_return=float(np.mean(returns)),
        mean_length=float(np.mean(lengths)),
        first_seed=first_seed,
    )


def model_metadata(
    cfg: TrainConfig,
    model: BaseAlgorithm,
    model_path: Path,
    report: EvalReport,
    wall_time_s: float,
    bc_report: BCReport | None = None,
) -> dict[str, Any]:
    """The ``model.json`` record of a saved model (see the module docstring).

    ``algorithm`` is the SB3 class that loads the model; ``method`` says how it was trained:
    ``rl``, ``bc`` (behaviour cloning only) or ``bc+rl`` (cloned, then fine-tuned).
    """
    sha256 = hashlib.sha256(model_path.read_bytes()).hexdigest()
    sites = cfg.train_sites
    task = cfg.env_id.rsplit("/", 1)[-1].lower()
    bundles = {site: load_site(site).bundle_hash for site in dict.fromkeys([cfg.site, *sites])}
    spaces = getattr(model.observation_space, "spaces", {"observation": model.observation_space})
    method = ("bc+rl" if cfg.total_timesteps else "bc") if bc_report is not None else "rl"
    prefix = "sb3" if bc_report is None else ("bc" if method == "bc" else "bc-sb3")
    return {
        "format": METADATA_FORMAT,
        "policy_id": cfg.policy_id or f"{prefix}-{cfg.algo.name.lower()}-{task}@{'+'.join(sites)}",
        "version": cfg.version or sha256[:12],
        "algorithm": cfg.algo.name.upper(),
        "method": method,
        "bc": asdict(bc_report) if bc_report is not None else None,
        "env_id": cfg.env_id,
        "env_kwargs": dict(cfg.env_kwargs),
        "home_site": cfg.site,
        "train_sites": sites,
        "observation": {name: _box_record(_env_layout(box)) for name, box in spaces.items()},
        "action": _box_record(model.action_space),
        "steps": int(model.num_timesteps),
        "seed": cfg.seed,
        "wall_time_s": round(wall_time_s, 2),
        "final_eval": asdict(report),
        "hashes": {"model_sha256": sha256, "site_bundles": bundles},
        "train_config": OmegaConf.to_container(OmegaConf.structured(cfg)),
        "versions": {
            "python": platform.python_version(),
            "stable_baselines3": stable_baselines3.__version__,
            "torch": torch.__version__,
            "gymnasium": gymnasium.__version__,
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _env_layout(box: Any) -> Any:
    """An image field as the env publishes it: ``(H, W, C)``.

    Testbed envs publish images channel-last (`envs.camera_obs`); SB3 wraps such an env in
    ``VecTransposeImage``, so the model's own space is ``(C, H, W)``. The metadata (and so the
    served spec) keeps the env's layout; SB3's ``predict`` transposes what it is given.
    """
    shape = tuple(box.shape)
    if np.dtype(box.dtype) == np.uint8 and len(shape) == 3 and shape[0] in (1, 3, 4):
        if shape[2] not in (1, 3, 4):
            return gymnasium.spaces.Box(0, 255, (shape[1], shape[2], shape[0]), dtype=np.uint8)
    return box


def _box_record(box: Any) -> dict[str, Any]:
    low = np.asarray(box.low, dtype=np.float64)
    high = np.asarray(box.high, dtype=np.float64)
    if (
        np.dtype(box.dtype) == np.uint8
        and np.all(low == low.flat[0])
        and np.all(high == high.flat[0])
    ):
        # An image: one bound for every pixel (FieldSpec broadcasts it), not 2 x H x W x C.
        return {"shape": list(box.shape), "dtype": "uint8",
                "low": float(low.flat[0]), "high": float(high.flat[0])}  # fmt: skip
    return {
        "shape": list(box.shape),
        "dtype": np.dtype(box.dtype).name,
        "low": low.tolist(),
        "high": high.tolist(),
    }


@contextmanager
def _run_log(path: Path) -> Iterator[TextIO]:
    """Send ``testbed.training``'s log records to `path` for the duration; yields the stream."""
    package = logging.getLogger("testbed.training")  # this module's and bc's records
    with path.open("a") as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        package.addHandler(handler)
        previous = package.level
        package.setLevel(logging.INFO)
        try:
            yield stream
        finally:
            package.removeHandler(handler)
            package.setLevel(previous)
