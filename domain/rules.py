"""Regulations as data: the three rule kinds and the chip selector, validated strictly."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.types import (
    MAX_COUNTRIES,
    MAX_MODELS,
    Authority,
    Count,
    Country,
    Measure,
    Purpose,
    RecordId,
)

Countries = Annotated[list[Country], Field(max_length=MAX_COUNTRIES)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ChipThreshold(_Strict):
    """One `any_of` clause: every bound it names must hold (`>=`)."""

    min_tpp: Measure | None = None
    min_performance_density: Measure | None = None

    @model_validator(mode="after")
    def _names_a_bound(self) -> "ChipThreshold":
        if self.min_tpp is None and self.min_performance_density is None:
            raise ValueError("a clause needs min_tpp or min_performance_density")
        return self


class ChipSelector(_Strict):
    models: Annotated[list[RecordId], Field(max_length=MAX_MODELS)] | None = None
    any_of: Annotated[list[ChipThreshold], Field(max_length=MAX_MODELS)] | None = None
    origin_countries: Countries | None = None


class ExportLicenceRule(_Strict):
    kind: Literal["export_licence"]
    chips: ChipSelector = Field(default_factory=ChipSelector)
    to_countries: Countries | None = None
    consignee_hq_countries: Countries | None = None
    from_countries: Countries | None = None
    licence_authority: Authority


class RemoteComputeAccessRule(_Strict):
    kind: Literal["remote_compute_access"]
    lessee_hq_countries: Countries = Field(min_length=1)
    exempt_dc_countries: Countries = Field(default_factory=list)
    dc_countries: Countries | None = None
    chips: ChipSelector = Field(default_factory=ChipSelector)
    min_chips: Count = 1
    purposes: Annotated[list[Purpose], Field(max_length=4)] | None = None
    severity: Literal["violation", "attention"] = "violation"
    licence_authority: Authority | None = None

    @model_validator(mode="after")
    def _violation_needs_authority(self) -> "RemoteComputeAccessRule":
        if self.severity == "violation" and self.licence_authority is None:
            raise ValueError("severity 'violation' needs a licence_authority")
        return self


class DataLocalisationRule(_Strict):
    kind: Literal["data_localisation"]
    data_subject_countries: Countries = Field(min_length=1)
    sensitive_only: bool = False
    min_subjects: Count | None = None
    accepted_mechanisms: list[
        Literal["security_assessment", "standard_contract", "certification"]
    ] = Field(default_factory=list, max_length=3)


MAX_PARTIES = 10_000  # the Entity List has a few thousand entries
AppliesTo = Literal["shipments", "leases"]
_EVERY_SUBJECT: tuple[AppliesTo, ...] = ("shipments", "leases")


class RestrictedPartyRule(_Strict):
    """An Entity List: listed firms (and, with affiliates_min_share, firms they own together
    at least that share of) need a licence for the chips selected."""

    kind: Literal["restricted_party"]
    parties: Annotated[list[RecordId], Field(max_length=MAX_PARTIES)]
    chips: ChipSelector = Field(default_factory=ChipSelector)
    licence_authority: Authority
    applies_to: Annotated[list[AppliesTo], Field(min_length=1, max_length=2)] = Field(
        default_factory=lambda: list(_EVERY_SUBJECT))
    affiliates_min_share: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None


Rule = Annotated[
    ExportLicenceRule | RemoteComputeAccessRule | DataLocalisationRule | RestrictedPartyRule,
    Field(discriminator="kind"),
]
RULE_KINDS = ("export_licence", "remote_compute_access", "data_localisation",
              "restricted_party")
