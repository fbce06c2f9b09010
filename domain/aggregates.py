"""The records as eventsourcing aggregates, with explicit and permanent topics.

Topics are stored with every event: they never change, whatever the classes are renamed to.
Each event carries the record's client id and its data as JSON-native values (dates as ISO
strings), so the log reads the same to any tool that opens it.
"""

from typing import TYPE_CHECKING, Any, ClassVar, Self

from eventsourcing.domain import Aggregate

from domain.ids import record_uuid
from domain.kinds import ALL_KINDS, FIRM, KindSpec, Role
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


def _aggregate(spec: KindSpec) -> type[Record]:
    """The aggregate of a kind, with one event class per event its KindSpec names, so each
    event name is written once (in domain/kinds.py). The topics follow one pattern:
    `chipledger.<Kind>` (and `.Event`, `.Created`) and `chipledger.<EventName>`; they are
    stored with every event and must never change."""
    name = "".join(part.title() for part in spec.kind.split("_"))  # chip_model -> ChipModel
    namespace: dict[str, Any] = {
        "TOPIC": f"chipledger.{name}", "SPEC": spec,
        "Event": _nested(name, "Event", Record.Event, f"chipledger.{name}.Event"),
        "Created": _nested(name, "Created", Record.Created, f"chipledger.{name}.Created"),
    }
    for role, event in spec.events.items():
        base = Record.Created if role is Role.CREATE else Record.Event
        namespace[event] = _nested(name, event, base, f"chipledger.{event}")
    return type(name, (Record,), {**namespace, "__module__": __name__, "__qualname__": name})


def _nested(owner: str, name: str, base: type[Any], topic: str) -> type[Any]:
    """An event class as a class body nested in the aggregate's would define it."""
    return type(name, (base,), {"TOPIC": topic, "__module__": __name__,
                                "__qualname__": f"{owner}.{name}"})


AGGREGATES: dict[str, type[Record]] = {kind: _aggregate(spec) for kind, spec in ALL_KINDS.items()}
Firm = AGGREGATES[FIRM.kind]
# The stored topic of every event, for reading the log without the classes.
TOPIC_TO_TYPE: dict[str, str] = {
    getattr(cls, name).TOPIC: name
    for cls in AGGREGATES.values()
    for name in cls.SPEC.events.values()
}
# And back: the topic an event type name is stored under.
TYPE_TO_TOPIC: dict[str, str] = {name: topic for topic, name in TOPIC_TO_TYPE.items()}
