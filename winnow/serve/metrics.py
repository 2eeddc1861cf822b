"""`ServeMetrics`: the Prometheus metrics of one app, in its own `CollectorRegistry` (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from winnow.serve.model import ServedModel

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """Requests by status, latency, batch sizes, queue depth, model version, swaps and resent tasks.

    Args:
        depth: Returns the jobs now waiting (read at each scrape).
    """

    def __init__(self, depth) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("winnow_requests", "Predict requests by HTTP status", ["status"],
                                registry=self.registry)
        self.latency = Histogram("winnow_request_latency_seconds", "Predict request latency",
                                 registry=self.registry)
        self.batch_size = Histogram("winnow_batch_size", "Images per device batch", buckets=BATCH_BUCKETS,
                                    registry=self.registry)
        self.queue_depth = Gauge("winnow_queue_depth", "Requests waiting for a batch", registry=self.registry)
        self.queue_depth.set_function(depth)
        self.model = Gauge("winnow_model_info", "The live model (1) by name and version", ["model", "version"],
                           registry=self.registry)
        self.swaps = Counter("winnow_model_swaps", "Model swaps since start", registry=self.registry)
        self.resends = Counter("winnow_resends", "Tasks the front sent again after no answer (--broker)",
                               registry=self.registry)
        self.tasks = Counter("winnow_tasks", "Celery tasks the front sent, each with the requests it gathered "
                             "(--broker)", registry=self.registry)

    def model_changed(self, model: ServedModel, *, swapped: bool) -> None:
        self.model.clear()
        self.model.labels(model.name, model.version).set(1)
        if swapped:
            self.swaps.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
