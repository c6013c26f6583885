"""Prometheus metrics of one service: request counts, latency, batch sizes, queue depth."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics:
    """The service's metrics in a registry of its own (two apps in one process do not clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "segmenter_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "segmenter_request_seconds",
            "Request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "segmenter_batch_customers",
            "Customers per model call",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "segmenter_model_call_seconds",
            "Seconds per model call",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue = Gauge(
            "segmenter_queue_customers", "Customers waiting for the model", registry=self.registry
        )
        self.reloads = Counter(
            "segmenter_model_reloads",
            "Model reloads by outcome",
            ["outcome"],
            registry=self.registry,
        )

    def observe_batch(self, customers: int, seconds: float) -> None:
        self.batch.observe(customers)
        self.model_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
