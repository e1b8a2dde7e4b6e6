"""Where the assets read the lake and write the marts: configurable, so tests and deployments differ only
in paths (the defaults come from `services.settings`)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from services.settings import Settings


class LakeResource(dg.ConfigurableResource):  # type: ignore[misc]
    """The Parquet lake the lander writes (read-only for the assets)."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)

    @classmethod
    def from_settings(cls, settings: Settings) -> LakeResource:
        return cls(root=str(settings.lake_root))


class MartsResource(dg.ConfigurableResource):  # type: ignore[misc]
    """The marts folder the assets write and the dashboards and notebooks read."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)

    @classmethod
    def from_settings(cls, settings: Settings) -> MartsResource:
        return cls(root=str(settings.marts_root))
