from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netscaffold import __version__
from netscaffold.cli.main import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"netscaffold {__version__}"


def test_help_does_not_import_heavy_modules() -> None:
    """`netscaffold --help` must stay instant: numpy, networkx, torch, numba load only inside commands."""
    probe = (
        "import sys\n"
        "from netscaffold.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'numba', 'networkx', 'numpy', 'scipy', 'matplotlib',"
        " 'pyarrow') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "HEAVY=\n" in result.stdout or result.stdout.rstrip().endswith("HEAVY=")


def test_config_show_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "netscaffold.toml").write_text('seed = 7\nlog_format = "json"\nprofile = "cloud-policy"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NETSCAFFOLD_PROFILE", "linux-local")
    code, out, _ = run_cli(["--log-format", "text", "config", "show", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    settings = doc["settings"]
    assert doc["schema_version"] == 1
    assert doc["version"] == __version__
    assert settings["seed"] == {"value": 7, "source": f"file {tmp_path / 'netscaffold.toml'}"}
    assert settings["profile"] == {"value": "linux-local", "source": "env NETSCAFFOLD_PROFILE"}
    assert settings["log_format"] == {"value": "text", "source": "flag"}
    assert settings["backend"] == {"value": "sim", "source": "default"}


def test_config_file_errors_are_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "netscaffold.toml"
    bad.write_text('seed = 1\ncolour = "blue"\n')
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["config", "show"], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert f"{bad}:2: unknown key 'colour'" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("seed = [", "invalid TOML"),
        ('seed = "many"', "invalid literal for int"),
        ('log_format = "xml"', "'xml' is not one of text, json"),
    ],
)
def test_config_value_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    (tmp_path / "netscaffold.toml").write_text(content + "\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["config", "show"], capsys)
    assert code == 2
    assert message in err


def test_missing_explicit_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["--config", str(tmp_path / "nope.toml"), "config", "show"], capsys)
    assert code == 2
    assert "nope.toml: config file does not exist" in err


def test_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli(["no-such-command"], capsys)
    assert code == 2


def test_json_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from netscaffold.logs import JsonFormatter

    record = logging.LogRecord("netscaffold.x", logging.INFO, "f", 1, "hello %s", ("you",), None)
    record.plan_ops = 3
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "hello you"
    assert doc["plan_ops"] == 3
    assert doc["level"] == "INFO"
