"""The append bodies of api.md, one pydantic model each: the shape of every event's data.

Validation here is about shape (types, patterns, countries, positive counts) and the bounds of
`types.py` (dates, measures, counts, characters). Rules that need
the record's history or other records (dates in order over time, references) live in
`records.py` and the Ledger.
"""

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from domain.rules import Rule
from domain.types import (
    MAX_COUNTRIES,
    MAX_MODELS,
    Authority,
    Count,
    Country,
    Day,
    Measure,
    Name,
    Purpose,
    RecordId,
    Text,
    TransferMechanism,
    Url,
)


class Body(BaseModel):
    # Strict: a number in a string, or a string where a number belongs, is a client error.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def data(self) -> dict[str, Any]:
        """The event data this body records (JSON-native values)."""
        return self.model_dump(mode="json", exclude={"id"})


class Patch(Body):
    """A body that names only some fields: a change, an amendment or a correction."""

    CREATE: ClassVar[type[Body]]
    CONTROL_FIELDS: ClassVar[frozenset[str]] = frozenset({"reason", "effective_from"})

    @model_validator(mode="after")
    def _names_fields(self) -> "Patch":
        named = self.model_fields_set - self.CONTROL_FIELDS
        if not named:
            raise ValueError("name at least one field to change")
        required = {n for n, f in self.CREATE.model_fields.items() if f.is_required()}
        nulled = sorted(n for n in named & required if getattr(self, n) is None)
        if nulled:
            raise ValueError(f"required fields cannot be null: {', '.join(nulled)}")
        return self

    def data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=self.model_fields_set)


class Correction(Patch):
    reason: Text | None = None


class Change(Patch):
    effective_from: Day


class Ending(Body):
    """A termination, rescission, revocation or end: the thing no longer holds from the date."""

    effective_from: Day
    reason: Text | None = None


# chip models ---------------------------------------------------------------------------------


class ChipModelRegistration(Body):
    id: RecordId
    vendor: Name
    origin_country: Country
    tpp: Measure
    performance_density: Measure
    memory_bandwidth_gbps: Measure | None = None


class ChipModelCorrection(Correction):
    CREATE = ChipModelRegistration
    vendor: Name | None = None
    origin_country: Country | None = None
    tpp: Measure | None = None
    performance_density: Measure | None = None
    memory_bandwidth_gbps: Measure | None = None


# firms -----------------------------------------------------------------------------------------


class FirmRegistration(Body):
    id: RecordId
    name: Name
    hq_country: Country
    parent_firm_id: RecordId | None = None


class FirmChange(Change):
    CREATE = FirmRegistration
    name: Name | None = None
    hq_country: Country | None = None
    parent_firm_id: RecordId | None = None


class FirmCorrection(Correction):
    CREATE = FirmRegistration
    name: Name | None = None
    hq_country: Country | None = None
    parent_firm_id: RecordId | None = None


# data centres ----------------------------------------------------------------------------------


class DataCentreRegistration(Body):
    id: RecordId
    name: Name
    country: Country
    operator: Name
    operator_hq_country: Country


class DataCentreChange(Change):
    CREATE = DataCentreRegistration
    name: Name | None = None
    country: Country | None = None
    operator: Name | None = None
    operator_hq_country: Country | None = None


class DataCentreCorrection(Correction):
    CREATE = DataCentreRegistration
    name: Name | None = None
    country: Country | None = None
    operator: Name | None = None
    operator_hq_country: Country | None = None


# regulations -----------------------------------------------------------------------------------


class RegulationEnactment(Body):
    id: RecordId
    authority: Authority
    title: Name
    citation: Name
    effective_from: Day
    rule: Rule
    published_on: Day | None = None
    compliance_from: Day | None = None


class RegulationAmendment(Body):
    effective_from: Day
    rule: Rule


class RegulationRescission(Ending):
    announced_on: Day | None = None


# licences --------------------------------------------------------------------------------------


class LicenceGrant(Body):
    id: RecordId
    authority: Authority
    holder_firm_id: RecordId
    chip_models: list[RecordId] = Field(min_length=1, max_length=MAX_MODELS)
    destination_countries: list[Country] = Field(min_length=1, max_length=MAX_COUNTRIES)
    valid_from: Day
    valid_to: Day | None = None
    quantity: Count | None = None


class LicenceRevocation(Ending):
    pass


# leases ----------------------------------------------------------------------------------------


class LeaseSigning(Body):
    id: RecordId
    firm_id: RecordId
    data_centre_id: RecordId
    chip_model: RecordId
    chip_count: Count
    starts_on: Day
    purposes: list[Purpose] = Field(min_length=1, max_length=4)
    ends_on: Day | None = None


class LeaseAmendment(Change):
    CREATE = LeaseSigning
    chip_count: Count | None = None
    ends_on: Day | None = None
    purposes: list[Purpose] | None = Field(default=None, min_length=1, max_length=4)
    chip_model: RecordId | None = None


class LeaseTermination(Ending):
    pass


class DueDiligence(Body):
    completed_on: Day
    reference: Name


class LeaseCorrection(Correction):
    CREATE = LeaseSigning
    firm_id: RecordId | None = None
    data_centre_id: RecordId | None = None
    chip_model: RecordId | None = None
    chip_count: Count | None = None
    starts_on: Day | None = None
    ends_on: Day | None = None
    purposes: list[Purpose] | None = Field(default=None, min_length=1, max_length=4)


# shipments -------------------------------------------------------------------------------------


class ShipmentRecord(Body):
    id: RecordId
    chip_model: RecordId
    quantity: Count
    from_country: Country
    to_country: Country
    consignee_firm_id: RecordId
    shipped_on: Day
    exporter: Name | None = None
    licence_id: RecordId | None = None


class ShipmentCorrection(Correction):
    CREATE = ShipmentRecord
    chip_model: RecordId | None = None
    quantity: Count | None = None
    from_country: Country | None = None
    to_country: Country | None = None
    consignee_firm_id: RecordId | None = None
    shipped_on: Day | None = None
    exporter: Name | None = None
    licence_id: RecordId | None = None


# processing activities -------------------------------------------------------------------------


def _one_location(fields: dict[str, Any]) -> None:
    if (fields.get("data_centre_id") is None) == (fields.get("location_country") is None):
        raise ValueError("give exactly one of data_centre_id and location_country")


class ProcessingStart(Body):
    id: RecordId
    firm_id: RecordId
    purpose: Purpose
    data_subject_countries: list[Country] = Field(min_length=1, max_length=MAX_COUNTRIES)
    sensitive: bool
    starts_on: Day
    data_centre_id: RecordId | None = None
    location_country: Country | None = None
    subject_count: Count | None = None
    transfer_mechanism: TransferMechanism | None = None
    ends_on: Day | None = None

    @model_validator(mode="after")
    def _located_once(self) -> "ProcessingStart":
        _one_location(self.model_dump())
        return self


class _ProcessingPatchFields(BaseModel):
    purpose: Purpose | None = None
    data_subject_countries: list[Country] | None = Field(
        default=None, min_length=1, max_length=MAX_COUNTRIES
    )
    sensitive: bool | None = None
    data_centre_id: RecordId | None = None
    location_country: Country | None = None
    subject_count: Count | None = None
    transfer_mechanism: TransferMechanism | None = None
    ends_on: Day | None = None


class ProcessingChange(Change, _ProcessingPatchFields):
    CREATE = ProcessingStart


class ProcessingEnd(Ending):
    pass


class ProcessingCorrection(Correction, _ProcessingPatchFields):
    CREATE = ProcessingStart
    firm_id: RecordId | None = None
    starts_on: Day | None = None


# webhook endpoints (not compliance records) ----------------------------------------------------


MaxPerSecond = Annotated[int, Field(ge=1, le=100_000)]


class WebhookEndpointRegistration(Body):
    id: RecordId
    url: Url
    event_types: list[Literal["posture.changed", "residency.changed", "ledger.appended",
                              "endpoint.disabled", "endpoint.circuit_opened"]] = \
        Field(min_length=1, max_length=5)
    description: Text | None = None
    secret_fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
    max_per_second: MaxPerSecond | None = None  # deliveries a second; unlimited when null


class WebhookEndpointChange(Change):
    CREATE = WebhookEndpointRegistration
    max_per_second: MaxPerSecond | None = None


class WebhookSecretRotation(Correction):
    CREATE = WebhookEndpointRegistration
    secret_fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")] | None = None


class WebhookEndpointDisabling(Ending):
    pass


# finding reviews (a reviewer's decision; never a verdict) -------------------------------------


class ReviewDecision(Body):
    """What a reviewer sends: the finding, the decision and the answer it was taken on."""

    firm_id: RecordId
    subject_type: Literal["lease", "shipment", "processing_activity"]
    subject_id: RecordId
    regulation_id: RecordId
    decision: Literal["acknowledged", "remediation_planned", "accepted_risk", "false_positive"]
    reason: Annotated[Text, StringConstraints(min_length=1)]
    reviewed_position: Annotated[int, Field(ge=1, le=2**63 - 1)]


class FindingReview(ReviewDecision):
    id: RecordId
