"""Backends realise NetworkConfigs: ``sim`` (the embedded emulator) and ``linux`` (the kernel)."""

from netscaffold.backends.protocol import ApplyReport, Backend, Clock, ManualClock, WallClock

__all__ = ["ApplyReport", "Backend", "Clock", "ManualClock", "WallClock"]
