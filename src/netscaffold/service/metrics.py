"""Prometheus metrics of one service instance (its own registry; every name starts ``netscaffold_``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.hit_ratio = Gauge(
            "netscaffold_hit_ratio", "Share of flow requests that found their path scaffolded", registry=r
        )
        self.flow_requests = Counter(
            "netscaffold_flow_requests", "Flow requests reported", ["scaffolded"], registry=r
        )
        self.setup_latency = Histogram(
            "netscaffold_setup_latency_seconds",
            "Flow setup latency reported with flow requests",
            buckets=(1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=r,
        )
        self.reserved_bps = Gauge(
            "netscaffold_reserved_bps", "Bandwidth reserved (sum over reservations)", registry=r
        )
        self.unused_bps = Gauge(
            "netscaffold_reserved_unused_bps",
            "Reserved bandwidth not used by its flow in the last step",
            registry=r,
        )
        self.provisional_rules = Gauge(
            "netscaffold_provisional_rules", "Provisional table entries per device", ["device"], registry=r
        )
        self.apply_latency = Histogram("netscaffold_plan_apply_seconds", "Plan apply latency", registry=r)
        self.apply_failures = Counter(
            "netscaffold_plan_apply_failures", "Plan applies that failed", registry=r
        )
        self.forecast_error = Gauge(
            "netscaffold_forecast_error_nmae",
            "NMAE of the last forecast checked against what arrived",
            registry=r,
        )
        self.retrains = Counter("netscaffold_retrains", "Forecaster (re)trainings", registry=r)
        self.ray_jobs = Counter(
            "netscaffold_ray_jobs",
            "Analytics jobs run on Ray (serve --ray) by kind (retrain, forecast) and outcome (ok, refused, "
            "unavailable, failed)",
            ["kind", "outcome"],
            registry=r,
        )
        self.samples = Counter("netscaffold_telemetry_samples", "Telemetry samples ingested", registry=r)
        self.auth_failures = Counter(
            "netscaffold_auth_failures", "Requests refused by authentication", ["reason"], registry=r
        )
