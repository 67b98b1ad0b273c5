"""Effective settings with their provenance: CLI flag > environment (NETSCAFFOLD_*) > file > default.

The file is ``netscaffold.toml``, named by ``--config`` or found in the working directory; its keys are the
names below at the top level.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netscaffold.errors import ConfigError

CONFIG_FILENAME = "netscaffold.toml"
ENV_PREFIX = "NETSCAFFOLD_"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    choices: tuple[str, ...] = ()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


SPECS: dict[str, SettingSpec] = {
    spec.name: spec
    for spec in (
        SettingSpec(
            "log_level",
            "WARNING",
            str.upper,
            "logging level",
            ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        ),
        SettingSpec("log_format", "text", str.lower, "log line format", ("text", "json")),
        SettingSpec("seed", 0, int, "seed of every random source"),
        SettingSpec("backend", "sim", str.lower, "backend for run and serve", ("sim", "linux")),
        SettingSpec("profile", "sdn-lan", str.lower, "reactive setup-cost profile of the emulator"),
        SettingSpec("device", "auto", str.lower, "torch device for the LSTM", ("auto", "cpu", "cuda")),
        SettingSpec("progress", True, _parse_bool, "show Rich progress bars on a terminal"),
    )
}


@dataclass(frozen=True)
class EffectiveSettings:
    values: Mapping[str, Any]
    sources: Mapping[str, str]
    config_file: Path | None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def _coerce(spec: SettingSpec, raw: Any, where: str) -> Any:
    try:
        value = spec.parse(raw) if isinstance(raw, str) else raw
        if isinstance(spec.default, bool) and not isinstance(value, bool):
            raise ValueError(f"expected a boolean, got {raw!r}")
        if isinstance(spec.default, int) and not isinstance(spec.default, bool):
            value = int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), element=where, field=spec.name) from None
    if spec.choices and value not in spec.choices:
        raise ConfigError(
            f"{value!r} is not one of {', '.join(spec.choices)}", element=where, field=spec.name
        )
    return value


def _line_of(text: str, key: str) -> int | None:
    match = re.search(rf"^\s*{re.escape(key)}\s*=", text, flags=re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file", file=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=str(path)) from None
    for key in data:
        if key not in SPECS:
            raise ConfigError(
                f"unknown key {key!r} (known: {', '.join(SPECS)})",
                file=str(path),
                line=_line_of(text, key),
            )
    return data


def find_config_file(explicit: Path | None, cwd: Path | None = None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError("config file does not exist", file=str(explicit))
        return explicit
    candidate = (cwd or Path.cwd()) / CONFIG_FILENAME
    return candidate if candidate.is_file() else None


def resolve(
    cli_values: Mapping[str, Any] | None = None,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> EffectiveSettings:
    """Resolve every setting; ``cli_values`` holds only the flags the user actually gave."""
    env = os.environ if environ is None else environ
    path = find_config_file(config_path, cwd)
    file_values = read_config_file(path) if path else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, spec in SPECS.items():
        env_name = ENV_PREFIX + name.upper()
        if cli_values and cli_values.get(name) is not None:
            values[name] = _coerce(spec, cli_values[name], "command line")
            sources[name] = "flag"
        elif env_name in env:
            values[name] = _coerce(spec, env[env_name], f"environment {env_name}")
            sources[name] = f"env {env_name}"
        elif name in file_values:
            values[name] = _coerce(spec, file_values[name], str(path))
            sources[name] = f"file {path}"
        else:
            values[name] = spec.default
            sources[name] = "default"
    return EffectiveSettings(values, sources, path)
