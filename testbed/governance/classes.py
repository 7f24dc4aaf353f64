"""Artifact classes and the tags every artifact carries (site, jurisdiction, class).

The class of a file follows from what it is (`class_of_file`); its site and jurisdiction from
the record or bundle it came from. The gate records all three in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from envs.factory.governance import ARTIFACT_CLASSES, ArtifactClass

__all__ = ["ARTIFACT_CLASSES", "Artifact", "ArtifactClass", "Tags", "class_of_file"]

UNSPECIFIED = "unspecified"
"""The jurisdiction tag of a site whose bundle names none (``safety.jurisdiction``)."""

_BY_SUFFIX: dict[str, ArtifactClass] = {
    ".npz": "episode_records",
    ".csv": "episode_records",
    ".parquet": "episode_records",
    ".mp4": "images_video",
    ".gif": "images_video",
    ".png": "images_video",
    ".zip": "model_weights",
    ".log": "logs",
    ".jsonl": "logs",
    ".yaml": "raw_factory_data",
    ".stl": "raw_factory_data",
    ".obj": "raw_factory_data",
    ".urdf": "raw_factory_data",
}


@dataclass(frozen=True)
class Tags:
    """Where an artifact comes from and what it is.

    Attributes:
        site: The site id whose store holds it.
        jurisdiction: The site's jurisdiction code (``KR``...), or ``unspecified``.
        artifact_class: One of `ARTIFACT_CLASSES`.
    """

    site: str
    jurisdiction: str
    artifact_class: ArtifactClass

    def __post_init__(self) -> None:
        if self.artifact_class not in ARTIFACT_CLASSES:
            expected = ", ".join(ARTIFACT_CLASSES)
            raise ValueError(f"artifact class {self.artifact_class!r}; expected one of {expected}")


@dataclass(frozen=True)
class Artifact:
    """One thing that may leave a site.

    Attributes:
        name: Its path relative to the site's store (or a logical name), as clearances match it.
        tags: Its site, jurisdiction and class.
        redacted: Whether the requester states that persons in it are redacted (images, video).
    """

    name: str
    tags: Tags
    redacted: bool = False

    def describe(self) -> str:
        """``'t1/episodes/ep-000000.npz' (episode_records of site kr-changwon, KR)``."""
        tags = self.tags
        return f"{self.name!r} ({tags.artifact_class} of site {tags.site}, {tags.jurisdiction})"


def class_of_file(path: str | PurePath) -> ArtifactClass:
    """The class of a file the testbed writes, by its kind (``.npz`` record, ``.mp4``...).

    Per-episode tables (``episodes.csv``/``.parquet``) are episode records, not aggregate
    metrics: their rows give each episode's cycle times. Unknown kinds count as logs.
    """
    suffix = PurePath(path).suffix.lower()
    return _BY_SUFFIX.get(suffix, "logs")
