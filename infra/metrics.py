"""Prometheus metrics, one registry per running app (tests build many apps in one process)."""

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chipledger_http_requests", "HTTP requests by route and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "chipledger_http_request_duration_seconds", "HTTP request latency",
            ["method", "route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.appended = Counter(
            "chipledger_events_appended", "Events appended to the log, by kind",
            ["kind"], registry=self.registry,
        )
        self.head_position = Gauge(
            "chipledger_log_head_position", "Position of the last sealed event",
            registry=self.registry,
        )
        self.projection_lag = Gauge(
            "chipledger_projection_lag_events", "Events the read models have yet to process",
            ["projection"], registry=self.registry,
        )
        self.webhook_deliveries = Gauge(
            "chipledger_webhook_deliveries", "Webhook deliveries by state",
            ["state"], registry=self.registry,
        )
        self.webhook_circuits = Gauge(
            "chipledger_webhook_circuits", "Enabled webhook endpoints by circuit state",
            ["state"], registry=self.registry,
        )
        self.webhook_circuit_openings = Gauge(
            "chipledger_webhook_circuit_openings",
            "Times each webhook endpoint's circuit opened", ["endpoint_id"],
            registry=self.registry,
        )
        self.webhook_consecutive_failures = Gauge(
            "chipledger_webhook_consecutive_failures",
            "Each webhook endpoint's current run of failed attempts", ["endpoint_id"],
            registry=self.registry,
        )
        self.oldest_pending = Gauge(
            "chipledger_webhook_oldest_pending_seconds",
            "Age of the oldest delivery not yet through (pending or failed)",
            registry=self.registry,
        )

        self.alarms = Gauge(
            "chipledger_alarms", "Active alarms (failed subjects, integrity), by component",
            ["component"], registry=self.registry,
        )

        self.replica_lag = Gauge(
            "chipledger_replica_lag_events",
            "Events of the primary's log a read replica has yet to replay", ["replica"],
            registry=self.registry)
        self.replica_projection_lag = Gauge(
            "chipledger_replica_projection_lag_events",
            "Positions a read replica's replayed read models are behind the primary's",
            ["replica"], registry=self.registry)
        self.replica_lag_seconds = Gauge(
            "chipledger_replica_lag_seconds",
            "Age of the last commit a read replica replayed, 0 when it has replayed all it "
            "received", ["replica"], registry=self.registry)
        self.replica_up = Gauge(
            "chipledger_replica_up", "1 when a read replica answers", ["replica"],
            registry=self.registry)
        self.reads_served = Gauge(
            "chipledger_posture_reads_served", "Reads of the read models, by where they ran "
            "(primary or a replica), since the process started", ["source"],
            registry=self.registry)

    def show_replicas(self, lags: list[dict[str, Any]], served: Mapping[str, int]) -> None:
        for lag in lags:
            name, up = lag["name"], lag["status"] != "unavailable"
            self.replica_up.labels(name).set(int(up))
            if up:
                self.replica_lag.labels(name).set(lag["lag_events"])
                self.replica_projection_lag.labels(name).set(lag["projection_lag_events"])
                self.replica_lag_seconds.labels(name).set(lag["lag_seconds"])
        for source, count in served.items():
            self.reads_served.labels(source).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
