"""Config schemas of a campaign, registered with Hydra's ConfigStore.

The YAML files in ``configs/`` extend these dataclasses (``defaults: [base_<group>, _self_]``), so
a typo in a key or a wrong type fails when the config is composed, before any trial starts.
Code below the Hydra entry point receives a `TestbedConfig` (``OmegaConf.to_object``), never a
raw ``DictConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from protos.compute import COUNTERS, DEFAULT_WATTS_PER_CORE

POLICY_KINDS = ("managed", "remote", "inprocess")
ACT_MODES = ("unary", "stream", "batch")
OBSERVATION_FORMS = ("auto", "packed", "named")


@dataclass
class SiteConfig:
    """Where a trial runs.

    Attributes:
        id: Site id: the ``site_id`` of the bundle's ``site.yaml``. Derived from ``path`` by
            default (``${site_id:${.path}}``); the packaged site options fall back to their
            own id when no path is given. An id that disagrees with the bundle is an error.
        path: A factory bundle folder, or the id of a packaged site; None uses the packaged
            site ``id``.
    """

    id: str = "${site_id:${.path}}"
    path: str | None = None

    @property
    def source(self) -> str:
        """What the env's ``site`` argument receives: the bundle folder or the packaged id."""
        return self.path or self.id


@dataclass
class TaskConfig:
    """Which env runs and how each episode is bounded and recorded.

    Attributes:
        env_id: Registered Gymnasium id.
        env_kwargs: Extra keyword arguments for ``gymnasium.make`` (besides ``site``).
        max_steps: Cap on control steps per episode; None runs to the task's own time limit.
        snapshot_every: Steps between simulator snapshots in the record (0: none).
        trial_prefix: Put before every trial name (``peg_in_hole__``), so that one campaign
            can sweep tasks with the same policies and sites; empty for the default task
            (ConveyorSort keeps the short names).
    """

    env_id: str = "Testbed/ConveyorSort-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    max_steps: int | None = None
    snapshot_every: int = 100
    trial_prefix: str = ""


@dataclass
class ClientTlsConfig:
    """Client-side TLS for a remote policy (paths to PEM files)."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None


@dataclass
class PolicyConfig:
    """How to reach a policy. Every policy has a name and a home site.

    Attributes:
        name: Short name used in trial names and reports (``scripted_kr``).
        home_site: The site the policy was built or trained for.
        kind: ``managed`` (the testbed starts ``testbed serve <serve>`` on 127.0.0.1 for the
            trial and stops it afterwards), ``remote`` (a server someone else runs at
            ``address``) or ``inprocess`` (``factory`` is instantiated with Hydra).
        serve: The POLICY argument of ``testbed serve`` (managed).
        address: ``host:port`` of the server (remote).
        factory: A ``_target_`` node that builds the policy object (inprocess).
        mode: ``unary`` (Act, reproducible evaluation), ``stream`` (ActStream) or ``batch``
            (``batch_size`` episodes of the trial in lockstep, one ActBatch per step; each
            episode records what ``unary`` would).
        batch_size: Episodes run in lockstep in ``batch`` mode (the ActBatch size; at most the
            server's ``max_batch``, checked at the handshake).
        deadline_ms: Deadline of each action request.
        observation_form: How observations travel to a remote or managed server:
            ``auto`` (packed where the server advertises it, protocol 1.1; the named map for a
            1.0 server), ``packed`` (required) or ``named`` (docs/policy_service.md).
        image_encoding: How image fields travel (docs/cameras.md): ``raw`` uint8 bytes, or
            ``png`` (lossless, about a tenth of the bytes; the named form only).
        token_env: Name of the environment variable holding the bearer token (remote); the
            token itself never appears in a config or a log.
        tls: TLS options (remote).
        team: The model team the policy belongs to (attributed in records and the report).
            Empty: the common name of the client certificate (``tls.cert``), if any.
        seed: Training seed of the policy, if it has one (the unit of replication for IQM).
        startup_timeout_s: How long a managed server may take to become healthy.
        max_restarts: Restarts of a managed server that died, per trial.
    """

    name: str = MISSING
    home_site: str = MISSING
    kind: str = "managed"
    serve: str | None = None
    address: str | None = None
    factory: dict[str, Any] | None = None
    mode: str = "unary"
    batch_size: int = 8
    deadline_ms: float = 1000.0
    observation_form: str = "auto"
    image_encoding: str = "raw"
    token_env: str | None = None
    tls: ClientTlsConfig = field(default_factory=ClientTlsConfig)
    team: str = ""
    seed: int | None = None
    startup_timeout_s: float = 60.0
    max_restarts: int = 2


@dataclass
class CampaignConfig:
    """Settings shared by every trial of a campaign.

    Attributes:
        name: Campaign name; its folder is ``dir``.
        dir: Campaign folder (each trial writes only into its own subfolder).
        episodes: Episodes per trial. Seeds are ``seed * 10000 + i`` for episode ``i``, the
            same list at every site (paired episodes).
        workers: Parallel trials for the joblib launcher.
        max_consecutive_faults: Consecutive faulty policy calls that end an episode.
        max_unavailable_episodes: Episodes in a row the policy may be unreachable before the
            trial stops (its remaining episodes run on the next attempt).
        progress: Show progress bars.
        report: Write the campaign report at the end of every run (the summary is printed
            either way).
        federated: Keep each site's trials in the site's own store
            (``<dir>/stores/<site>/<trial>/``); the campaign folder then gets the coordinator's
            report, built from what each site's egress rules let out
            (`testbed.campaign.stores`, docs/governance.md).
        stores: Site id -> the root of its store (``campaign.stores.kr-changwon=/data/kr``);
            naming one turns per-site stores on; the sites not named use the default.
    """

    name: str = "default"
    dir: str = "outputs/campaigns/${campaign.name}"
    episodes: int = 3
    workers: int = 2
    max_consecutive_faults: int = 25
    max_unavailable_episodes: int = 2
    progress: bool = True
    report: bool = True
    federated: bool = False
    stores: dict[str, str] = field(default_factory=dict)


def trial_name(config: Any) -> str:
    """The name of the trial a `TestbedConfig` (or a composed ``DictConfig``) describes.

    ``[<task.trial_prefix>]<policy>__<site>__s<seed>``: unique within a campaign. A policy with
    a training seed (``policy.seed``) runs as ``<policy>__t<training seed>__<site>__s<seed>``,
    so several training seeds of one policy (the unit of replication of the report's IQM) are
    trials of one campaign.
    """
    policy, training_seed = config.policy.name, getattr(config.policy, "seed", None)
    if training_seed is not None:
        policy = f"{policy}__t{training_seed}"
    return f"{config.task.trial_prefix}{policy}__{config.site.id}__s{config.seed}"


@dataclass
class EnergyConfig:
    """How the policy's compute energy is measured and priced (`protos.compute`).

    Not part of a trial's hash: it changes how compute is labelled and priced, never what an
    episode does. A remote policy's compute is what its server measured with its own settings.

    Attributes:
        counter: ``auto`` (Linux RAPL where readable, else CPU time x ``watts_per_core``),
            ``rapl`` (RAPL or an error), ``cpu-estimate`` or ``off`` (compute unknown); NVIDIA
            GPU counters are added wherever NVML answers.
        watts_per_core: Watts per busy core of the estimate. Default 12.0: the Green
            Algorithms calculator's figure for an unknown CPU (Lannelongue et al. 2021).
        price_per_kwh: Energy price for the cost per 1,000 episodes; None: no cost shown.
        currency: The price's currency (a label).
    """

    counter: str = "auto"
    watts_per_core: float = DEFAULT_WATTS_PER_CORE
    price_per_kwh: float | None = None
    currency: str = "EUR"


@dataclass
class TestbedConfig:
    """One trial: a policy at a site for a block of seeded episodes."""

    site: SiteConfig = MISSING
    task: TaskConfig = MISSING
    policy: PolicyConfig = MISSING
    campaign: CampaignConfig = field(default_factory=CampaignConfig)
    seed: int = 0
    energy: EnergyConfig = field(default_factory=EnergyConfig)

    @property
    def trial_name(self) -> str:
        """Unique name of the trial within its campaign (`trial_name`)."""
        return trial_name(self)

    @property
    def seeds(self) -> list[int]:
        """Episode seeds of the trial (the same at every site)."""
        return [self.seed * 10_000 + i for i in range(self.campaign.episodes)]


def validate(config: TestbedConfig) -> None:
    """Check what the types alone cannot.

    Raises:
        ValueError: Naming the config key and what was expected.
    """
    _validate_site(config.site)
    policy = config.policy
    if policy.kind not in POLICY_KINDS:
        raise ValueError(f"policy.kind: expected one of {POLICY_KINDS}, got {policy.kind!r}")
    needs = {"managed": "serve", "remote": "address", "inprocess": "factory"}[policy.kind]
    if not getattr(policy, needs):
        raise ValueError(f"policy.{needs}: required for a {policy.kind} policy {policy.name!r}")
    if policy.mode not in ACT_MODES:
        raise ValueError(f"policy.mode: expected one of {ACT_MODES}, got {policy.mode!r}")
    if policy.batch_size < 1:
        raise ValueError(f"policy.batch_size: expected >= 1, got {policy.batch_size}")
    if policy.observation_form not in OBSERVATION_FORMS:
        raise ValueError(
            f"policy.observation_form: expected one of {OBSERVATION_FORMS}, "
            f"got {policy.observation_form!r}"
        )
    if policy.image_encoding not in ("raw", "png"):
        raise ValueError(
            f"policy.image_encoding: expected one of ('raw', 'png'), got {policy.image_encoding!r}"
        )
    if policy.image_encoding == "png" and policy.observation_form == "packed":
        raise ValueError(
            "policy.image_encoding: 'png' travels in the named form only; "
            "set policy.observation_form to auto or named"
        )
    if policy.deadline_ms <= 0:
        raise ValueError(f"policy.deadline_ms: expected > 0, got {policy.deadline_ms}")
    if config.campaign.episodes < 1:
        raise ValueError(f"campaign.episodes: expected >= 1, got {config.campaign.episodes}")
    if config.task.max_steps is not None and config.task.max_steps < 1:
        raise ValueError(f"task.max_steps: expected >= 1 or null, got {config.task.max_steps}")
    if config.seed < 0:
        raise ValueError(f"seed: expected >= 0, got {config.seed}")
    _validate_energy(config.energy)


def _validate_energy(energy: EnergyConfig) -> None:
    if energy.counter not in COUNTERS:
        raise ValueError(f"energy.counter: expected one of {COUNTERS}, got {energy.counter!r}")
    if not energy.watts_per_core > 0:
        raise ValueError(f"energy.watts_per_core: expected > 0, got {energy.watts_per_core}")
    if energy.price_per_kwh is not None and not energy.price_per_kwh >= 0:
        raise ValueError(f"energy.price_per_kwh: expected >= 0 or null, got {energy.price_per_kwh}")


def _validate_site(site: SiteConfig) -> None:
    if site.path is None:
        return
    bundle_id = bundle_site_id(site.path)
    if site.id != bundle_id:
        raise ValueError(
            f"site.id is {site.id!r} but site.path {site.path} is the bundle of site "
            f"{bundle_id!r} (site_id in its site.yaml): leave site.id out (it comes from the "
            "bundle) or make the two agree"
        )


def bundle_site_id(path: str) -> str:
    """The ``site_id`` in the ``site.yaml`` of a bundle folder (or of a packaged site id).

    Only that one key is read; the bundle as a whole is validated when its env is built.

    Raises:
        ValueError: If ``path`` is no bundle folder, or its ``site.yaml`` has no ``site_id``.
    """
    import yaml

    from envs.errors import EnvsError
    from envs.sites import resolve_site

    try:
        site_yaml = resolve_site(path) / "site.yaml"
        data = yaml.safe_load(site_yaml.read_text(encoding="utf-8"))
    except (EnvsError, OSError, yaml.YAMLError) as exc:
        raise ValueError(f"site.path: cannot read the site_id of bundle {path!r}: {exc}") from None
    site_id = data.get("site_id") if isinstance(data, dict) else None
    if not isinstance(site_id, str) or not site_id:
        raise ValueError(f"site.path: {site_yaml} has no site_id (a string naming the site)")
    return site_id


def _site_id(path: str | None, packaged: str | None = None) -> str:
    """The ``${site_id:path[,packaged]}`` resolver: the bundle's id, else the packaged site."""
    if path:
        return bundle_site_id(path)
    if packaged:
        return packaged
    raise ValueError("site: choose a site option (site=kr-changwon) or a bundle (site.path=DIR)")


def register_configs() -> None:
    """Store the schemas so YAML files can extend them (``defaults: [base_site, _self_]``).

    Also registers two resolvers: ``${testbed_models:}`` (the shipped ``models/`` folder, in a
    checkout or an installed wheel alike), so configs can name shipped models wherever the
    campaign is launched from, and
    ``${site_id:path[,packaged]}`` (the ``site_id`` of the bundle at ``path``, or ``packaged``
    when no path is given), so a site's identity always comes from its bundle.
    """
    if not OmegaConf.has_resolver("testbed_models"):
        OmegaConf.register_new_resolver("testbed_models", lambda: str(MODELS_DIR))
    if not OmegaConf.has_resolver("site_id"):
        OmegaConf.register_new_resolver("site_id", _site_id)
    if not OmegaConf.has_resolver("testbed_trial_dir"):
        from testbed.campaign.stores import trial_dir_resolver

        OmegaConf.register_new_resolver("testbed_trial_dir", trial_dir_resolver)
    store = ConfigStore.instance()
    store.store(name="base_config", node=TestbedConfig)
    store.store(group="site", name="base_site", node=SiteConfig)
    store.store(group="task", name="base_task", node=TaskConfig)
    store.store(group="policy", name="base_policy", node=PolicyConfig)


#: The Hydra configs. ``testbed/_configs`` is a link to the repository's top-level ``configs/``
#: (the one to edit); building a wheel copies the files in, so an installed testbed (not only
#: ``pip install -e``) runs campaigns too.
CONFIG_DIR = Path(__file__).resolve().parent / "_configs"
#: The shipped example models (``models/``), linked and packaged the same way.
MODELS_DIR = Path(__file__).resolve().parent / "_models"
