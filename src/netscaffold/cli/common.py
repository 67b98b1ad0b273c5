"""Shared CLI plumbing: settings resolution, logging set-up, JSON output, Rich console."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from netscaffold.settings import EffectiveSettings


@dataclass
class AppState:
    """What the global options gave; settings are resolved on first use."""

    flags: dict[str, Any] = field(default_factory=dict)
    config_path: Path | None = None

    @cached_property
    def settings(self) -> EffectiveSettings:
        from netscaffold import settings
        from netscaffold.logs import setup_logging

        effective = settings.resolve(self.flags, self.config_path)
        setup_logging(effective["log_level"], effective["log_format"])
        return effective


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def settings_for(ctx: typer.Context, **command_flags: Any) -> EffectiveSettings:
    """Settings with this command's own flags (those not None) taking precedence."""
    app_state = state(ctx)
    app_state.flags.update({k: v for k, v in command_flags.items() if v is not None})
    app_state.__dict__.pop("settings", None)
    return app_state.settings


def emit_json(payload: dict[str, Any], *, seed: int | None = None, inputs: list[Path] | None = None) -> None:
    from netscaffold.reporting import envelope, to_json

    typer.echo(to_json(envelope(payload, seed=seed, inputs=inputs or [])))


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)
