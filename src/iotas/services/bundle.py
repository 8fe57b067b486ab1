"""Every service of a node, built once over one store: what adapters and the API are given.

`open_services(settings)` opens the database (migrating it) and builds them; it starts
nothing (the runtime, `iotas.runtime`, starts adapters and controllers)."""

from __future__ import annotations

from dataclasses import dataclass

from iotas.services.auth import Authenticator, TokenAdmin
from iotas.services.ca import CertificateAuthority
from iotas.services.claims import ClaimService
from iotas.services.credentials import CredentialService
from iotas.services.directory import Directory
from iotas.services.graph import Graph
from iotas.services.invocations import Invocations
from iotas.services.journal import JournalService
from iotas.services.quarantine import QuarantineService
from iotas.services.registry import Registry
from iotas.services.rollout_action import ActionKind
from iotas.services.rollout_kinds import ChangeKinds
from iotas.services.rollouts import Rollouts
from iotas.services.snapshots import SnapshotService
from iotas.services.stats import IngestStats
from iotas.services.stream import JournalSignal
from iotas.services.telemetry import TelemetryService
from iotas.settings import Settings
from iotas.store.engine import database_url, open_store
from iotas.store.store import Store


@dataclass(frozen=True, slots=True)
class Services:
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
    invocations: Invocations
    rollouts: Rollouts


async def open_services(settings: Settings) -> Services:
    signal = JournalSignal()
    url = database_url(settings.database_url, settings.data_dir)
    store = await open_store(url, on_commit=signal.committed, durability=settings.durability)
    registry = Registry(store)
    auth = Authenticator(
        store,
        cache_seconds=settings.token_cache_seconds,
        failure_burst=settings.auth_failure_burst,
        failure_refill=settings.auth_failure_rate,
    )
    credential_service = CredentialService(
        store,
        ca=CertificateAuthority.open(
            settings.data_dir,
            cert_file=settings.ca_cert_file,
            key_file=settings.ca_key_file,
        ),
        certificate_days=settings.certificate_days,
        grace_seconds=settings.certificate_grace_seconds,
    )
    stats = IngestStats()
    invocations = Invocations(store, signal, stats)
    return Services(
        settings=settings,
        store=store,
        registry=registry,
        journal=JournalService(store),
        auth=auth,
        signal=signal,
        credentials=credential_service,
        telemetry=TelemetryService(store),
        stats=stats,
        directory=Directory(registry, store),
        graph=Graph(store),
        tokens=TokenAdmin(store, auth),
        snapshots=SnapshotService(store),
        quarantine=QuarantineService(store, credential_service),
        claims=ClaimService(store, auth, credential_service, settings),
        invocations=invocations,
        rollouts=Rollouts(store, ChangeKinds([ActionKind(invocations)])),
    )
