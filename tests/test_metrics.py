"""The serving-latency histogram, filled per batch with numpy, as Prometheus reads it."""

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from monitor.metrics import LatencyHistograms


def test_latency_histogram_buckets_and_versions() -> None:
    hist = LatencyHistograms()
    registry = CollectorRegistry()
    registry.register(hist)
    versions = np.array(["v1", "v1", "v1", "v2", "v1"], dtype=object)
    hist.observe_many("eta", versions, np.array([5.0, 20.0, np.nan, 300.0, 20_000.0]))
    hist.observe_many("eta", versions[:1], np.array([5.0]))

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"model": "eta", **labels})

    assert sample("driftwatch_serving_latency_seconds_bucket", model_version="v1", le="0.005") == 2
    assert sample("driftwatch_serving_latency_seconds_bucket", model_version="v1", le="0.025") == 3
    assert sample("driftwatch_serving_latency_seconds_bucket", model_version="v1", le="10.0") == 3
    assert sample("driftwatch_serving_latency_seconds_bucket", model_version="v1", le="+Inf") == 4
    assert sample("driftwatch_serving_latency_seconds_count", model_version="v1") == 4
    assert sample("driftwatch_serving_latency_seconds_sum",
                  model_version="v1") == np.float64(0.005 + 0.02 + 20.0 + 0.005)
    assert sample("driftwatch_serving_latency_seconds_count", model_version="v2") == 1
    assert b'le="0.005"' in generate_latest(registry)
