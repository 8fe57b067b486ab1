"""The services an app serves with, built in the lifespan and passed to routes explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from iotas.services.auth import Authenticator, TokenAdmin
from iotas.services.claims import ClaimService
from iotas.services.credentials import CredentialService
from iotas.services.directory import Directory
from iotas.services.graph import Graph
from iotas.services.journal import JournalService
from iotas.services.quarantine import QuarantineService
from iotas.services.registry import Registry
from iotas.services.snapshots import SnapshotService
from iotas.services.stats import IngestStats
from iotas.services.stream import JournalSignal
from iotas.services.telemetry import TelemetryService
from iotas.settings import Settings
from iotas.store.store import Store


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    store: Store
    registry: Registry
    journal: JournalService
    auth: Authenticator
    signal: JournalSignal
    credentials: CredentialService
    telemetry: TelemetryService
    stats: IngestStats
    directory: Directory
    graph: Graph
    tokens: TokenAdmin
    snapshots: SnapshotService
    quarantine: QuarantineService
    claims: ClaimService
