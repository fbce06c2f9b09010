"""A firm's owners as an append body names them: shares in (0, 1] summing to at most 1, each
owner once (domain.md, "Ownership"); that they exist and own no loop is checked on append."""

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.types import MAX_MODELS, RecordId


class Owner(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    firm_id: RecordId
    share: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


def _check_owners(owners: list[Owner] | None) -> None:
    """Shares in (0, 1] summing to at most 1, each owner once (domain.md, "Ownership")."""
    if not owners:
        return
    ids = [o.firm_id for o in owners]
    if len(set(ids)) < len(ids):
        raise ValueError("an owner appears at most once in owners")
    if sum(Decimal(repr(o.share)) for o in owners) > 1:
        raise ValueError("owners' shares sum to more than 1")


Owners = Annotated[list[Owner], Field(max_length=MAX_MODELS)]


class OwnedFirm(BaseModel):
    owners: Owners | None = None

    @field_validator("owners")
    @classmethod
    def _owners_add_up(cls, owners: list[Owner] | None) -> list[Owner] | None:
        _check_owners(owners)
        return owners
