"""The eight record kinds: their events, bodies, references and lifespans, as one table."""

from dataclasses import dataclass, field
from enum import StrEnum

from domain import bodies as b


class Role(StrEnum):
    """What an event does to its record, whatever the kind."""

    CREATE = "create"
    CORRECT = "correct"  # replaces named fields for all valid time
    CHANGE = "change"  # changes named fields from `effective_from` on
    END = "end"  # the record no longer holds from `effective_from` on
    DILIGENCE = "diligence"  # a lease's due diligence, completed on a date


@dataclass(frozen=True)
class KindSpec:
    kind: str  # singular, used in `kind:id` and in the log's `kind` column
    collection: str  # URL segment: /v1/{collection}
    events: dict[Role, str]  # event type names, e.g. Role.CREATE -> "LeaseSigned"
    bodies: dict[Role, type[b.Body]]
    references: dict[str, str] = field(default_factory=dict)  # field -> referenced kind
    span: tuple[str, str | None] | None = None  # inclusive (start, end) date fields

    def role_of(self, event_type: str) -> Role:
        return _ROLE_BY_TYPE[event_type]


CHIP_MODEL = KindSpec(
    "chip_model",
    "chip-models",
    {Role.CREATE: "ChipModelRegistered", Role.CORRECT: "ChipModelCorrected"},
    {Role.CREATE: b.ChipModelRegistration, Role.CORRECT: b.ChipModelCorrection},
)
FIRM = KindSpec(
    "firm",
    "firms",
    {Role.CREATE: "FirmRegistered", Role.CHANGE: "FirmChanged", Role.CORRECT: "FirmCorrected"},
    {Role.CREATE: b.FirmRegistration, Role.CHANGE: b.FirmChange, Role.CORRECT: b.FirmCorrection},
    references={"parent_firm_id": "firm"},
)
DATA_CENTRE = KindSpec(
    "data_centre",
    "data-centres",
    {
        Role.CREATE: "DataCentreRegistered",
        Role.CHANGE: "DataCentreChanged",
        Role.CORRECT: "DataCentreCorrected",
    },
    {
        Role.CREATE: b.DataCentreRegistration,
        Role.CHANGE: b.DataCentreChange,
        Role.CORRECT: b.DataCentreCorrection,
    },
)
REGULATION = KindSpec(
    "regulation",
    "regulations",
    {
        Role.CREATE: "RegulationEnacted",
        Role.CHANGE: "RegulationAmended",
        Role.END: "RegulationRescinded",
    },
    {
        Role.CREATE: b.RegulationEnactment,
        Role.CHANGE: b.RegulationAmendment,
        Role.END: b.RegulationRescission,
    },
    span=("effective_from", None),
)
LICENCE = KindSpec(
    "licence",
    "licences",
    {Role.CREATE: "LicenceGranted", Role.END: "LicenceRevoked"},
    {Role.CREATE: b.LicenceGrant, Role.END: b.LicenceRevocation},
    references={"holder_firm_id": "firm", "chip_models": "chip_model"},
    span=("valid_from", "valid_to"),
)
LEASE = KindSpec(
    "lease",
    "leases",
    {
        Role.CREATE: "LeaseSigned",
        Role.CHANGE: "LeaseAmended",
        Role.END: "LeaseTerminated",
        Role.CORRECT: "LeaseCorrected",
        Role.DILIGENCE: "DueDiligenceRecorded",
    },
    {
        Role.CREATE: b.LeaseSigning,
        Role.CHANGE: b.LeaseAmendment,
        Role.END: b.LeaseTermination,
        Role.CORRECT: b.LeaseCorrection,
        Role.DILIGENCE: b.DueDiligence,
    },
    references={"firm_id": "firm", "data_centre_id": "data_centre", "chip_model": "chip_model"},
    span=("starts_on", "ends_on"),
)
SHIPMENT = KindSpec(
    "shipment",
    "shipments",
    {Role.CREATE: "ShipmentRecorded", Role.CORRECT: "ShipmentCorrected"},
    {Role.CREATE: b.ShipmentRecord, Role.CORRECT: b.ShipmentCorrection},
    references={"chip_model": "chip_model", "consignee_firm_id": "firm", "licence_id": "licence"},
)
PROCESSING_ACTIVITY = KindSpec(
    "processing_activity",
    "processing-activities",
    {
        Role.CREATE: "ProcessingStarted",
        Role.CHANGE: "ProcessingChanged",
        Role.END: "ProcessingEnded",
        Role.CORRECT: "ProcessingCorrected",
    },
    {
        Role.CREATE: b.ProcessingStart,
        Role.CHANGE: b.ProcessingChange,
        Role.END: b.ProcessingEnd,
        Role.CORRECT: b.ProcessingCorrection,
    },
    references={"firm_id": "firm", "data_centre_id": "data_centre"},
    span=("starts_on", "ends_on"),
)

# Not a compliance record: its history is in the log so that changes to where the ledger
# sends its announcements are auditable too. The secret itself never enters the log.
WEBHOOK_ENDPOINT = KindSpec(
    "webhook_endpoint",
    "webhooks/endpoints",
    {
        Role.CREATE: "WebhookEndpointCreated",
        Role.CHANGE: "WebhookEndpointChanged",
        Role.CORRECT: "WebhookSecretRotated",
        Role.END: "WebhookEndpointDisabled",
    },
    {
        Role.CREATE: b.WebhookEndpointRegistration,
        Role.CHANGE: b.WebhookEndpointChange,
        Role.CORRECT: b.WebhookSecretRotation,
        Role.END: b.WebhookEndpointDisabling,
    },
)

# Not a compliance record either: a reviewer's decision on a finding, sealed in the log with
# who recorded it. The evaluator never reads it, so a review never changes a verdict.
FINDING_REVIEW = KindSpec(
    "finding_review",
    "reviews",
    {Role.CREATE: "FindingReviewed"},
    {Role.CREATE: b.FindingReview},
    references={"firm_id": "firm", "regulation_id": "regulation"},
)

# The compliance records: appended and read through the generic routes, judged by the
# evaluator.
KINDS: dict[str, KindSpec] = {
    s.kind: s
    for s in (CHIP_MODEL, FIRM, DATA_CENTRE, REGULATION, LICENCE, LEASE, SHIPMENT,
              PROCESSING_ACTIVITY)
}
ALL_KINDS: dict[str, KindSpec] = {**KINDS, WEBHOOK_ENDPOINT.kind: WEBHOOK_ENDPOINT,
                                  FINDING_REVIEW.kind: FINDING_REVIEW}
BY_COLLECTION: dict[str, KindSpec] = {s.collection: s for s in KINDS.values()}
_ROLE_BY_TYPE: dict[str, Role] = {t: r for s in ALL_KINDS.values() for r, t in s.events.items()}
KIND_BY_EVENT_TYPE: dict[str, KindSpec] = {
    t: s for s in ALL_KINDS.values() for t in s.events.values()
}
