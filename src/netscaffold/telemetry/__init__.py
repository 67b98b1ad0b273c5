"""Workloads (flows plus the telemetry a predictor sees), trace readers and the telemetry store.

Entry points: :func:`make_workload` (by kind name), the generators :func:`microservices`, :func:`batch`,
:func:`tm_replay`, :func:`flow_trace`; :class:`TelemetryStore`; :func:`load_telemetry_dir` and
:func:`write_telemetry_dir`; :func:`span_calls` (DeathStarBench spans to calls).
"""

from netscaffold.telemetry.batch import BatchConfig, batch
from netscaffold.telemetry.directory import TelemetryDir, load_telemetry_dir, write_telemetry_dir
from netscaffold.telemetry.flow_trace import SizeDistribution, flow_trace
from netscaffold.telemetry.microservices import MicroservicesConfig, microservices
from netscaffold.telemetry.registry import KINDS, WorkloadOptions, make_workload
from netscaffold.telemetry.spans import SpanCalls, span_calls, write_calls_csv
from netscaffold.telemetry.store import AppWindow, TelemetryStore
from netscaffold.telemetry.tm_replay import ReplayConfig, tm_replay
from netscaffold.telemetry.workload import Workload, WorkloadEvent

__all__ = [
    "KINDS",
    "AppWindow",
    "BatchConfig",
    "MicroservicesConfig",
    "ReplayConfig",
    "SizeDistribution",
    "SpanCalls",
    "TelemetryDir",
    "TelemetryStore",
    "Workload",
    "WorkloadEvent",
    "WorkloadOptions",
    "batch",
    "flow_trace",
    "load_telemetry_dir",
    "make_workload",
    "microservices",
    "span_calls",
    "tm_replay",
    "write_calls_csv",
    "write_telemetry_dir",
]
