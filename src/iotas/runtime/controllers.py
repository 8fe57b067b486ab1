"""The node's own controllers (adapters start theirs): periodic work over the services."""

from __future__ import annotations

from iotas.controllers.supervisor import Controller
from iotas.services.bundle import Services
from iotas.services.rollout_engine import RolloutEngine
from iotas.services.telemetry import TelemetryRetention


def node_controllers(services: Services) -> list[Controller]:
    """Retention, the moves of staged samples, the directory's purge of expired
    registrations, the expiry of invocations and the rollouts' rounds: each once per
    cluster (they change shared rows; twice would only race)."""
    settings = services.settings
    retention = TelemetryRetention(services.store, retention_days=settings.telemetry_retention_days)
    return [
        retention.controller(settings.telemetry_retention_interval),
        services.telemetry.compaction(),
        services.directory.purge_controller(),
        services.invocations.expiry_controller(),
        RolloutEngine(services.rollouts, services.journal, services.signal).controller(),
    ]
