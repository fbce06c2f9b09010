"""Regulations as data: the three rule kinds and the chip selector, validated strictly."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from domain.types import Authority, Country, Purpose, RecordId


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ChipThreshold(_Strict):
    """One `any_of` clause: every bound it names must hold (`>=`)."""

    min_tpp: PositiveFloat | None = None
    min_performance_density: PositiveFloat | None = None

    @model_validator(mode="after")
    def _names_a_bound(self) -> "ChipThreshold":
        if self.min_tpp is None and self.min_performance_density is None:
            raise ValueError("a clause needs min_tpp or min_performance_density")
        return self


class ChipSelector(_Strict):
    models: list[RecordId] | None = None
    any_of: list[ChipThreshold] | None = None
    origin_countries: list[Country] | None = None


class ExportLicenceRule(_Strict):
    kind: Literal["export_licence"]
    chips: ChipSelector = Field(default_factory=ChipSelector)
    to_countries: list[Country] | None = None
    consignee_hq_countries: list[Country] | None = None
    from_countries: list[Country] | None = None
    licence_authority: Authority


class RemoteComputeAccessRule(_Strict):
    kind: Literal["remote_compute_access"]
    lessee_hq_countries: list[Country] = Field(min_length=1)
    exempt_dc_countries: list[Country] = Field(default_factory=list)
    dc_countries: list[Country] | None = None
    chips: ChipSelector = Field(default_factory=ChipSelector)
    min_chips: PositiveInt = 1
    purposes: list[Purpose] | None = None
    severity: Literal["violation", "attention"] = "violation"
    licence_authority: Authority | None = None

    @model_validator(mode="after")
    def _violation_needs_authority(self) -> "RemoteComputeAccessRule":
        if self.severity == "violation" and self.licence_authority is None:
            raise ValueError("severity 'violation' needs a licence_authority")
        return self


class DataLocalisationRule(_Strict):
    kind: Literal["data_localisation"]
    data_subject_countries: list[Country] = Field(min_length=1)
    sensitive_only: bool = False
    min_subjects: PositiveInt | None = None
    accepted_mechanisms: list[
        Literal["security_assessment", "standard_contract", "certification"]
    ] = Field(default_factory=list)


Rule = Annotated[
    ExportLicenceRule | RemoteComputeAccessRule | DataLocalisationRule,
    Field(discriminator="kind"),
]
RULE_KINDS = ("export_licence", "remote_compute_access", "data_localisation")
