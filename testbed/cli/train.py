"""``testbed train [hydra overrides]``: train a Stable-Baselines3 policy (Hydra entry point).

Composes ``configs/train.yaml`` (one option of the ``train/`` group, schema
`testbed.training.config.TrainConfig`) and runs `testbed.training.train.train` in Hydra's run
directory, or in ``train.out_dir`` if set::

    testbed train                                        # train/ppo_touch_kr
    testbed train train=sac_touch_kr train.seed=1
    testbed train train=ppo_touch_mix train.total_timesteps=200000 train.n_envs=2
    testbed train --cfg job                              # print the composed config
    testbed train -m train.seed=0,1,2                    # a sweep: one run per seed
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from testbed.cli import app

if TYPE_CHECKING:  # Hydra is imported when the command runs: other commands start faster
    from omegaconf import DictConfig

CONFIG_DIR_ENV = "TESTBED_CONFIG_DIR"


def config_dir() -> Path:
    """The folder holding ``train.yaml``: ``$TESTBED_CONFIG_DIR``, else the shipped configs.

    The shipped configs are `testbed.config.CONFIG_DIR`: the repository's ``configs/`` in a
    checkout, the packaged copy in an installed wheel.

    Raises:
        FileNotFoundError: If ``train.yaml`` is not there, naming the folder and the variable.
    """
    from testbed.config import CONFIG_DIR  # Hydra's schemas: imported when the command runs

    override = os.environ.get(CONFIG_DIR_ENV)
    folder = Path(override) if override else CONFIG_DIR
    if not (folder / "train.yaml").is_file():
        raise FileNotFoundError(
            f"{folder / 'train.yaml'}: not found; set {CONFIG_DIR_ENV} to a folder holding "
            "train.yaml and train/"
        )
    return folder.resolve()


def _run(cfg: DictConfig) -> None:
    """Below the Hydra entry point: convert once to dataclasses, then train."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from testbed.cli._errors import handled, report
    from testbed.errors import UsageError
    from testbed.training.config import TrainConfig
    from testbed.training.train import train

    train_cfg = OmegaConf.to_object(cfg.train)
    assert isinstance(train_cfg, TrainConfig)
    out_dir = Path(train_cfg.out_dir or HydraConfig.get().runtime.output_dir)
    # Hydra would print a traceback for anything raised here: report it in the CLI's one
    # style instead (SystemExit passes through Hydra).
    try:
        try:
            train_cfg.check()
        except ValueError as exc:
            raise UsageError(str(exc), "testbed train --cfg job  # the composed config") from None
        result = train(train_cfg, out_dir)
    except handled() as error:
        raise SystemExit(report(error)) from None
    final = result.final_eval
    cloned = f"cloned {result.bc.transitions} transitions, " if result.bc is not None else ""
    print(
        f"{cloned}trained {result.steps} env steps in {result.wall_time_s:.0f} s; "
        f"success at {final.site}: {final.successes}/{final.episodes} "
        f"({final.success_rate:.0%}); model: {result.model_path}",
        flush=True,
    )


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def train_command(ctx: typer.Context) -> None:
    """Train an SB3 policy; arguments are Hydra overrides (``--help`` shows Hydra's help).

    An unknown key or recipe is refused before anything runs (exit code 2, docs/cli.md).
    """
    import hydra

    from testbed.training.config import register_train_configs

    register_train_configs()
    if all(a in ("-m", "--multirun") or not a.startswith("-") for a in ctx.args):
        from testbed.cli._overrides import check_overrides

        check_overrides(list(ctx.args), config_dir(), "train", "testbed train")
    main = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")(_run)
    # Hydra parses sys.argv: hand it the overrides as if `train` were the program.
    saved = sys.argv
    sys.argv = [f"{Path(saved[0]).name} train", *ctx.args]
    try:
        main()
    finally:
        sys.argv = saved
