"""Entry point of the ``netscaffold`` command.

Every :class:`~netscaffold.errors.NetscaffoldError` becomes one line on stderr and its exit code
(0 ok, 1 failure, 2 bad input or usage); bad input never shows a traceback.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from netscaffold import __version__
from netscaffold.cli.common import AppState
from netscaffold.errors import EXIT_BAD_INPUT, NetscaffoldError

# Modules that add commands; each exposes ``register(app)``. Later stages add theirs here.
COMMAND_MODULES: tuple[str, ...] = (
    "netscaffold.cli.topology",
    "netscaffold.cli.traffic",
    "netscaffold.cli.config",
    "netscaffold.cli.run",
    "netscaffold.cli.lab",
    "netscaffold.cli.workload",
    "netscaffold.cli.emulate",
    "netscaffold.cli.forecast",
    "netscaffold.cli.serve",
    "netscaffold.cli.service_cmds",
)

app = typer.Typer(
    name="netscaffold",
    help="Predictive virtual-network scaffolding: forecast flows, pre-configure their paths, "
    "refine when reality arrives.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: Rich's help renderer imports ~0.4 s of modules, over the 0.5 s `--help` budget.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"netscaffold {__version__}")
        raise typer.Exit


@app.callback()
def _global_options(
    ctx: typer.Context,
    log_level: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING, ERROR (env NETSCAFFOLD_LOG_LEVEL)")
    ] = None,
    log_format: Annotated[str | None, typer.Option(help="text or json (env NETSCAFFOLD_LOG_FORMAT)")] = None,
    config: Annotated[
        Path | None, typer.Option(help="settings file (default: ./netscaffold.toml if present)")
    ] = None,
    version: Annotated[  # noqa: ARG001 (handled by its eager callback)
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    ctx.obj = AppState(flags={"log_level": log_level, "log_format": log_format}, config_path=config)


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="netscaffold")
    except NetscaffoldError as exc:
        typer.echo(f"netscaffold: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("netscaffold: interrupted", err=True)
        sys.exit(130)
    except RecursionError:  # pathological input (deeply nested files) is still bad input
        typer.echo("netscaffold: error: input nested too deeply", err=True)
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
