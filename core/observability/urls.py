"""Probes and metrics, mounted at the root of every pool's URL map (each pool answers its own)."""

from django.urls import path

from core.observability import health, metrics


def probe_urlpatterns(pool: str) -> list:
    """/healthz, /readyz (their answers name `pool`) and /metrics of one worker pool."""
    return [
        path("healthz", health.healthz, {"pool": pool}, name="healthz"),
        path("readyz", health.readyz, {"pool": pool}, name="readyz"),
        path("metrics", metrics.metrics, name="metrics"),
    ]
