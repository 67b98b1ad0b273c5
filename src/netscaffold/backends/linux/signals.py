"""SIGTERM and Ctrl-C for a process driving a lab: provisional items are withdrawn, confirmed and static
ones kept, the lab stays up unless asked to tear it down, and the process exits promptly.

``with graceful_shutdown(backend, teardown=False): ...`` turns SIGTERM into :class:`Shutdown` (Ctrl-C is
already KeyboardInterrupt) while the block runs, and on leaving the block, however it is left, calls
``backend.shutdown``. The previous handlers are restored afterwards.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from netscaffold.backends.linux.backend import LinuxBackend


class Shutdown(BaseException):
    """SIGTERM arrived: unwind to the nearest ``graceful_shutdown`` block."""


def _raise_shutdown(signum: int, _frame: FrameType | None) -> None:
    raise Shutdown(f"signal {signal.Signals(signum).name}")


@contextmanager
def graceful_shutdown(backend: LinuxBackend, *, teardown: bool = False) -> Iterator[LinuxBackend]:
    previous = signal.signal(signal.SIGTERM, _raise_shutdown)
    try:
        yield backend
    except (Shutdown, KeyboardInterrupt):
        pass  # asked to stop: not an error of the block
    finally:
        try:
            backend.shutdown(teardown=teardown)
        finally:
            signal.signal(signal.SIGTERM, previous)


def exit_on_sigterm(code: int = 143) -> None:
    """For a process whose labs are its own (``netscaffold run --backend linux``): SIGTERM raises
    ``SystemExit(code)``, so the ``finally`` blocks that tear those labs down run and the process exits
    promptly, as on Ctrl-C."""

    def _exit(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(code)

    signal.signal(signal.SIGTERM, _exit)
