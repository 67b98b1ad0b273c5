"""Running ``ip``, ``nft`` and ``tc``: the one place that starts them. Every call names its namespace
(``ip -n``, ``tc -n``, ``ip netns exec NS nft``) so that nothing runs in the root namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from netscaffold.errors import BackendError, BackendUnavailableError

NETNS_DIR = "/run/netns"
TOOL_TIMEOUT_S = 30.0


class ToolError(Exception):
    """A tool exited non-zero; ``line`` is the failing batch line (1-based) when the tool said so."""

    def __init__(self, argv: tuple[str, ...], stderr: str, line: int | None) -> None:
        self.argv = argv
        self.stderr = stderr
        self.line = line
        said = [
            t for t in stderr.strip().splitlines() if t and not t.startswith(("Command failed", "We have"))
        ]
        errors = [t for t in said if t.startswith("Error")]
        last = (errors or said or ["failed"])[-1]
        super().__init__(f"{' '.join(argv[:4])}: {last}")


def require_facilities() -> None:
    """Refuse early, with the reason, where the kernel or the tools cannot host a lab."""
    if os.geteuid() != 0:
        raise BackendUnavailableError("the linux backend needs root (network namespaces, nftables, tc)")
    missing = [tool for tool in ("ip", "nft", "tc") if shutil.which(tool) is None]
    if missing:
        raise BackendUnavailableError(f"missing tools on PATH: {', '.join(missing)}")


def _failed_line(stderr: str) -> int | None:
    for text in reversed(stderr.splitlines()):
        if "Command failed -:" in text:
            try:
                return int(text.rsplit(":", 1)[1])
            except ValueError:
                return None
    return None


def run(argv: Sequence[str], stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"cannot run {argv[0]}: {exc}", backend="linux") from None
    if proc.returncode != 0:
        raise ToolError(tuple(argv), proc.stderr, _failed_line(proc.stderr))
    return proc.stdout


def ip_batch(netns: str, lines: Sequence[str], *, family: int | None = None) -> None:
    if lines:
        flag = [f"-{family}"] if family else []
        run(["ip", *flag, "-n", netns, "-batch", "-"], "\n".join(lines) + "\n")


def tc_batch(netns: str, lines: Sequence[str]) -> None:
    if lines:
        run(["tc", "-n", netns, "-batch", "-"], "\n".join(lines) + "\n")


def nft_json(netns: str, document: dict[str, Any]) -> None:
    run(["ip", "netns", "exec", netns, "nft", "-j", "-f", "-"], json.dumps(document))


def ip_json(netns: str, args: Sequence[str]) -> Any:
    text = run(["ip", "-n", netns, "-j", *args])
    return json.loads(text) if text.strip() else []


def list_namespaces() -> list[str]:
    """Names under /run/netns (what ``ip netns list`` shows), read without starting a process."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def add_namespace(netns: str) -> None:
    run(["ip", "netns", "add", netns])


def delete_namespace(netns: str) -> None:
    run(["ip", "netns", "delete", netns])
