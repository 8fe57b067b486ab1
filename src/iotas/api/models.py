"""Request bodies, each declared once: the pydantic model is both the check a body passes
before its route runs (`bodies.body`) and its schema in the OpenAPI document.

A model checks the shape (members, JSON types); what a value means (a Thing id's pattern,
an expiry in the future, a TD) stays with the service or domain rule that every caller
meets, MQTT and CLI included. The route hands the service the JSON exactly as sent, never a
model dump: a member absent stays absent (a merge patch's null still removes, an absent
member is still left alone) and no default appears that the client did not send.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

DATE_TIME = {"format": "date-time"}
JSON_TYPE = "application/json"
MERGE_PATCH_TYPE = "application/merge-patch+json"
TD_TYPE = "application/td+json"


class Shape(BaseModel):
    """A JSON object with exactly these members."""

    model_config = ConfigDict(extra="forbid", strict=True)
    # How a problem names this body ("unknown member(s) x in a token"), and what it must be.
    noun: ClassVar[str] = "the body"
    shape: ClassVar[str] = "a JSON object"


# -- Things and twins --------------------------------------------------------------------


class Link(Shape):
    noun = "a link"

    rel: str
    target: str


class ThingBody(Shape):
    noun = "a Thing"

    id: Annotated[str, Field(examples=["acme:pump-17"])]
    kind: Annotated[str, Field(examples=["pump"])]
    attributes: dict[str, Any] | None = None
    labels: dict[str, str] | None = None
    links: list[Link] | None = None
    description: Annotated[dict[str, Any] | None, Field(description="A Thing Description")] = None


class MergePatch(RootModel[dict[str, Any]]):
    """An RFC 7396 JSON merge patch: null removes a member, an absent member is left as is."""

    noun: ClassVar[str] = "a merge patch"
    shape: ClassVar[str] = "a JSON object (RFC 7396 merge patch)"


class JsonValue(RootModel[Any]):
    """Any JSON value."""

    noun: ClassVar[str] = "the value"


class ThingDescription(RootModel[dict[str, Any]]):
    """A W3C WoT Thing Description (validated as a TD by the directory)."""

    noun: ClassVar[str] = "a Thing Description"
    shape: ClassVar[str] = "a JSON object"


class Samples(RootModel[Any]):
    """One telemetry sample (an object of values) or several (an array of them, each with an
    optional `ts`)."""

    # Its shape is checked by `domain.telemetry.parse_document` alone, which every ingest
    # path shares and whose refusals carry a `reason` member that this check would not.

    root: Annotated[
        Any,
        Field(
            json_schema_extra={
                "oneOf": [
                    {"type": "object", "example": {"temp": 21.5, "hum": 40}},
                    {
                        "type": "array",
                        "items": {"type": "object"},
                        "example": [{"ts": "2026-11-22T08:00:00Z", "temp": 21.5}],
                    },
                ]
            }
        ),
    ]
    noun: ClassVar[str] = "telemetry"


# -- operators and provisioning ----------------------------------------------------------


class TokenBody(Shape):
    noun = "a token"

    subject: Annotated[str, Field(examples=["ci-bot"])]
    role: Literal["viewer", "operator", "admin"]
    namespaces: Annotated[
        list[str] | None, Field(description="Limit the token to these namespaces")
    ] = None
    expires: Annotated[str | None, Field(json_schema_extra=DATE_TIME)] = None


class ClaimTemplate(Shape):
    noun = "a claim template"

    namespace: Annotated[str, Field(examples=["acme"])]
    kind: Annotated[str, Field(examples=["meter"])]
    labels: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None
    desired: dict[str, Any] | None = None
    name_pattern: Annotated[str | None, Field(examples=["meter-{serial}"])] = None


class ClaimBody(Shape):
    noun = "a claim"

    template: ClaimTemplate
    max_uses: Annotated[int | None, Field(description="null: no limit; 1 when absent")] = None
    expires: Annotated[str | None, Field(json_schema_extra=DATE_TIME)] = None


class ProvisionBody(Shape):
    noun = "a provisioning request"

    serial: Annotated[str, Field(examples=["SN-000123"])]
    csr: Annotated[str | None, Field(description="PEM CSR; without one a key is made")] = None


# -- credentials and quarantine ----------------------------------------------------------


class CredentialBody(Shape):
    noun = "a credential"

    type: Literal["password", "x509"]
    csr: Annotated[str | None, Field(description="PEM CSR (x509 only)")] = None


class RenewBody(Shape):
    noun = "a renewal"

    serial: Annotated[str, Field(description="The serial of the certificate it replaces")]
    csr: Annotated[str | None, Field(description="PEM CSR")] = None


class ServerCertificateBody(Shape):
    noun = "a server certificate request"

    hosts: Annotated[
        list[str], Field(description="DNS names and IP addresses the server is reached at")
    ]


class QuarantineBody(Shape):
    noun = "a quarantine"

    reason: Annotated[str, Field(examples=["beaconing to an unknown host"])]


class ReleaseBody(Shape):
    noun = "a release"

    credential: CredentialBody


class SnapshotBody(Shape):
    noun = "a snapshot"

    reason: str | None = None


# -- the Web of Things ---------------------------------------------------------------------


class WotSecrets(Shape):
    noun = "credentials"

    username: str | None = None
    password: str | None = None
    token: str | None = None


class AdoptionBody(Shape):
    noun = "an adoption"

    td_url: Annotated[str | None, Field(examples=["http://127.0.0.1:8081/lamp"])] = None
    td: dict[str, Any] | None = None
    id: Annotated[str | None, Field(examples=["acme:lamp-1"])] = None
    poll_interval: Annotated[float | None, Field(examples=[30])] = None
    credentials: WotSecrets | None = None


class ActionBody(Shape):
    noun = "an action invocation"

    input: Annotated[
        Any, Field(description="The action's input, as its TD or Thing Model describes it")
    ] = None
    ttl: Annotated[
        float | None,
        Field(description="Seconds it may wait to be delivered (1 to 2592000; 3600 if absent)"),
    ] = None
    idempotency_key: Annotated[
        str | None,
        Field(description="The same key on the same Thing within 24 h returns the same invocation"),
    ] = None


class CancelBody(Shape):
    noun = "a cancellation"

    reason: Annotated[str | None, Field(description="Why (the journal's cause)")] = None


class ResultBody(Shape):
    noun = "an invocation result"

    status: Literal["running", "succeeded", "failed"]
    progress: Annotated[float | None, Field(description="0 to 100")] = None
    output: Annotated[Any, Field(description="The action's output")] = None
    error: Annotated[
        dict[str, Any] | str | None, Field(description='{"code", "message"}, or a message')
    ] = None


# -- rollouts ------------------------------------------------------------------------------


class RolloutWave(Shape):
    noun = "a wave"

    count: Annotated[int | None, Field(description="Things in this wave")] = None
    percent: Annotated[float | None, Field(description="Percent of the target, rounded up")] = None
    wait: Annotated[float | None, Field(description="Seconds before the next wave")] = None


class SuccessThreshold(Shape):
    noun = "a success threshold"

    percent: Annotated[float, Field(description="Of a wave's Things, before the next starts")]


class FailureThreshold(Shape):
    noun = "a failure threshold"

    percent: Annotated[float | None, Field(description="Of the finished Things")] = None
    count: Annotated[int | None, Field(description="Failed Things")] = None
    min_executed: Annotated[int | None, Field(description="Finished before percent counts")] = None


class MaintenanceWindow(Shape):
    noun = "a maintenance window"

    start: Annotated[str, Field(examples=["22:00"], description="Daily, HH:MM")]
    end: Annotated[str, Field(examples=["04:00"], description="HH:MM; before start: next day")]
    tz: Annotated[str | None, Field(examples=["Europe/Paris"])] = None


class RolloutBody(Shape):
    noun = "a rollout"

    name: Annotated[str, Field(examples=["reboot the meters of plant 7"])]
    target: Annotated[str, Field(examples=['attributes.site == "plant-7"'])]
    change: Annotated[
        dict[str, Any],
        Field(
            description='What to do on each Thing; {"type": "action", "action", "input", '
            '"ttl"} (the change kinds: docs/commands.md)',
            examples=[{"type": "action", "action": "reboot", "input": None, "ttl": 600}],
        ),
    ]
    waves: list[RolloutWave] | None = None
    max_in_flight: int | None = None
    rate_per_minute: int | None = None
    success_threshold: SuccessThreshold | None = None
    failure_threshold: FailureThreshold | None = None
    timeout: Annotated[float | None, Field(description="Seconds per Thing (3600)")] = None
    start_at: Annotated[str | None, Field(json_schema_extra=DATE_TIME)] = None
    window: MaintenanceWindow | None = None
    continuous: Annotated[bool | None, Field(description="Things that match later join")] = None


class RolloutCommand(Shape):
    """No members (an empty object, or no body): the `X-Iotas-Cause` header says why."""

    noun = "a rollout command"
