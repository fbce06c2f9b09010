"""The records as eventsourcing aggregates, with explicit and permanent topics.

Topics are stored with every event: they never change, whatever the classes are renamed to.
Each event carries the record's client id and its data as JSON-native values (dates as ISO
strings), so the log reads the same to any tool that opens it.
"""

from typing import TYPE_CHECKING, Any, ClassVar, Self

from eventsourcing.domain import Aggregate

from domain.ids import record_uuid
from domain.kinds import (
    CHIP_MODEL,
    DATA_CENTRE,
    FINDING_REVIEW,
    FIRM,
    LEASE,
    LICENCE,
    PROCESSING_ACTIVITY,
    REGULATION,
    SHIPMENT,
    WEBHOOK_ENDPOINT,
    KindSpec,
    Role,
)
from domain.records import LoggedEvent, RecordState, check_event, check_state


class Record(Aggregate):
    TOPIC = "chipledger.Record"
    SPEC: ClassVar[KindSpec]

    class Event(Aggregate.Event):
        TOPIC = "chipledger.Record.Event"
        record_id: str
        data: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.state.apply(LoggedEvent(type(self).__name__, self.data))

    class Created(Event, Aggregate.Created):
        TOPIC = "chipledger.Record.Created"

        def apply(self, aggregate: Any) -> None:
            # State is set here, not in __init__: the library generates the subclasses' __init__.
            aggregate.state = RecordState(aggregate.SPEC, self.record_id)
            super().apply(aggregate)

    if TYPE_CHECKING:  # a real annotation would make the library's generated __init__ want it
        state: RecordState

    @property
    def record_id(self) -> str:
        return self.state.record_id

    @classmethod
    def open(cls, record_id: str, data: dict[str, Any]) -> Self:
        """Create the record; its first event is the kind's CREATE event."""
        event_class = cls._event_class(Role.CREATE)
        record = cls._create(
            event_class, id=record_uuid(cls.SPEC.kind, record_id), record_id=record_id, data=data
        )
        check_state(record.state)
        return record

    def record(self, role: Role, data: dict[str, Any]) -> None:
        """Record a later event (correction, change, ending, due diligence) after checking it."""
        event_class = self._event_class(role)
        check_event(self.state, LoggedEvent(event_class.__name__, data))
        self.trigger_event(event_class, record_id=self.record_id, data=data)

    @classmethod
    def _event_class(cls, role: Role) -> type[Any]:
        event_class: type[Any] = getattr(cls, cls.SPEC.events[role])
        return event_class


class ChipModel(Record):
    TOPIC = "chipledger.ChipModel"
    SPEC = CHIP_MODEL

    class Event(Record.Event):
        TOPIC = "chipledger.ChipModel.Event"

    class Created(Record.Created):
        TOPIC = "chipledger.ChipModel.Created"

    class ChipModelRegistered(Record.Created):
        TOPIC = "chipledger.ChipModelRegistered"

    class ChipModelCorrected(Record.Event):
        TOPIC = "chipledger.ChipModelCorrected"


class Firm(Record):
    TOPIC = "chipledger.Firm"
    SPEC = FIRM

    class Event(Record.Event):
        TOPIC = "chipledger.Firm.Event"

    class Created(Record.Created):
        TOPIC = "chipledger.Firm.Created"

    class FirmRegistered(Record.Created):
        TOPIC = "chipledger.FirmRegistered"

    class FirmChanged(Record.Event):
        TOPIC = "chipledger.FirmChanged"

    class FirmCorrected(Record.Event):
        TOPIC = "chipledger.FirmCorrected"


class DataCentre(Record):
    TOPIC = "chipledger.DataCentre"
    SPEC = DATA_CENTRE

    class Event(Record.Event):
        TOPIC = "chipledger.DataCentre.Event"

    class Created(Record.Created):
        TOPIC = "chipledger.DataCentre.Created"

    class DataCentreRegistered(Record.Created):
        TOPIC = "chipledger.DataCentreRegistered"

    class DataCentreChanged(Record.Event):
        TOPIC = "chipledger.DataCentreChanged"

    class DataCentreCorrected(Record.Event):
        TOPIC = "chipledger.DataCentreCorrected"


class Regulation(Record):
    TOPIC = "chipledger.Regulation"
    SPEC = REGULATION

    class Event(Record.Event):
        TOPIC = "chipledger.Regulation.Event"

    class Created(Record.Created):
        TOPIC = "chipledger.Regulation.Created"

    class RegulationEnacted(Record.Created):
        TOPIC = "chipledger.RegulationEnacted"

    class RegulationAmended(Record.Event):
        TOPIC = "chipledger.RegulationAmended"

    class RegulationRescinded(Record.Event):
        TOPIC = "chipledger.RegulationRescinded"

    class RegulationSuspended(Record.Event):
        TOPIC = "chipledger.RegulationSuspended"

    class RegulationReinstated(Record.Event):
        TOPIC = "chipledger.RegulationReinstated"


class Licence(Record):
    TOPIC = "chipledger.Licence"
    SPEC = LICENCE

    class Event(Record.Event):
        TOPIC = "chipledger.Licence.Event"

    class Created(Record.Created):
        TOPIC = "chipledger.Licence.Created"

    class LicenceGranted(Record.Created):
        TOPIC = "chipledger.LicenceGranted"

    class LicenceRevoked(Record.Event):
        TOPIC = "chipledger.LicenceRevoked"


class Lease(Record):
    TOPIC = "chipledger.Lease"
    SPEC = LEASE

    class Event(Record.Event):
        TOPIC = "chipledger.Lease.Event"

    class Created(Record.Created):
        TOPIC = "chipledger.Lease.Created"

    class LeaseSigned(Record.Created):
        TOPIC = "chipledger.LeaseSigned"

    class LeaseAmended(Record.Event):
        TOPIC = "chipledger.LeaseAmended"

    class LeaseTerminated(Record.Event):
        TOPIC = "chipledger.LeaseTerminated"

    class LeaseCorrected(Record.Event):
        TOPIC = "chipledger.LeaseCorrected"

    class DueDiligenceRecorded(Record.Event):
        TOPIC = "chipledger.DueDiligenceRecorded"


class Shipment(Record):
    TOPIC = "chipledger.Shipment"
    SPEC = SHIPMENT

    class Event(Record.Event):
        TOPIC = "chipledger.Shipment.Event"

    class Created(Record.Created):
        TOPIC = "chipledger.Shipment.Created"

    class ShipmentRecorded(Record.Created):
        TOPIC = "chipledger.ShipmentRecorded"

    class ShipmentCorrected(Record.Event):
        TOPIC = "chipledger.ShipmentCorrected"


class ProcessingActivity(Record):
    TOPIC = "chipledger.ProcessingActivity"
    SPEC = PROCESSING_ACTIVITY

    class Event(Record.Event):
        TOPIC = "chipledger.ProcessingActivity.Event"

    class Created(Record.Created):
        TOPIC = "chipledger.ProcessingActivity.Created"

    class ProcessingStarted(Record.Created):
        TOPIC = "chipledger.ProcessingStarted"

    class ProcessingChanged(Record.Event):
        TOPIC = "chipledger.ProcessingChanged"

    class ProcessingEnded(Record.Event):
        TOPIC = "chipledger.ProcessingEnded"

    class ProcessingCorrected(Record.Event):
        TOPIC = "chipledger.ProcessingCorrected"


class WebhookEndpoint(Record):
    TOPIC = "chipledger.WebhookEndpoint"
    SPEC = WEBHOOK_ENDPOINT

    class Event(Record.Event):
        TOPIC = "chipledger.WebhookEndpoint.Event"

    class Created(Record.Created):
        TOPIC = "chipledger.WebhookEndpoint.Created"

    class WebhookEndpointCreated(Record.Created):
        TOPIC = "chipledger.WebhookEndpointCreated"

    class WebhookSecretRotated(Record.Event):
        TOPIC = "chipledger.WebhookSecretRotated"

    class WebhookEndpointDisabled(Record.Event):
        TOPIC = "chipledger.WebhookEndpointDisabled"


class FindingReview(Record):
    TOPIC = "chipledger.FindingReview"
    SPEC = FINDING_REVIEW

    class Event(Record.Event):
        TOPIC = "chipledger.FindingReview.Event"

    class Created(Record.Created):
        TOPIC = "chipledger.FindingReview.Created"

    class FindingReviewed(Record.Created):
        TOPIC = "chipledger.FindingReviewed"


AGGREGATES: dict[str, type[Record]] = {
    cls.SPEC.kind: cls
    for cls in (ChipModel, Firm, DataCentre, Regulation, Licence, Lease, Shipment,
                ProcessingActivity, WebhookEndpoint, FindingReview)
}
# The stored topic of every event, for reading the log without the classes.
TOPIC_TO_TYPE: dict[str, str] = {
    getattr(cls, name).TOPIC: name
    for cls in AGGREGATES.values()
    for name in cls.SPEC.events.values()
}
