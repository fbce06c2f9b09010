"""Prometheus metrics, one registry per running app (tests build many apps in one process)."""

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
