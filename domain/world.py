"""The records as known at some position, folded, with the indexes the evaluator needs.

Projections keep one World up to date as they follow the log; replays build one from the raw
log; tests build one by hand. What an event touches (architecture.md's table) is read here.
"""

import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from domain.kinds import KINDS
from domain.records import LoggedEvent, RecordState

SUBJECT_KINDS = ("lease", "shipment", "processing_activity")
SUBJECT_KIND_OF_RULE = {
    "export_licence": "shipment",
    "remote_compute_access": "lease",
    "data_localisation": "processing_activity",
}
# Every kind of subject a rule kind can judge; restricted_party's `applies_to` picks among them.
SUBJECT_KINDS_OF_RULE: dict[str, tuple[str, ...]] = {
    **{kind: (subject,) for kind, subject in SUBJECT_KIND_OF_RULE.items()},
    "restricted_party": ("shipment", "lease"),
}
_APPLIES_TO = {"shipments": "shipment", "leases": "lease"}


def judged_kinds(rule_kind: str, applies_to: Iterable[str] | None = None) -> set[str]:
    """The kinds of subject a rule judges (a restricted_party rule: those of `applies_to`)."""
    if rule_kind == "restricted_party" and applies_to is not None:
        return {_APPLIES_TO[a] for a in applies_to}
    return set(SUBJECT_KINDS_OF_RULE.get(rule_kind, ()))
FIRM_FIELD = {"lease": "firm_id", "shipment": "consignee_firm_id",
              "processing_activity": "firm_id"}
# The one field of each kind the world keeps an index of (subjects by firm, licences by holder,
# firms by parent), so an event costs one lookup to find what it names.
_INDEXED_FIELD = {**FIRM_FIELD, "licence": "holder_firm_id", "firm": "parent_firm_id"}


@dataclass(frozen=True, order=True, slots=True)
class SubjectRef:
    kind: str
    record_id: str


class World:
    def __init__(self) -> None:
        self.position = 0
        self._by_kind: dict[str, dict[str, RecordState]] = defaultdict(dict)
        self._licences_by_holder: dict[str, set[str]] = defaultdict(set)
        self._subjects_by_firm: dict[str, set[SubjectRef]] = defaultdict(set)
        self._children: dict[str, set[str]] = defaultdict(set)
        self._naming_licence: dict[str, set[str]] = defaultdict(set)  # licence -> shipments
        self._owned: dict[str, set[str]] = defaultdict(set)  # owner -> firms it ever owned
        # A shipment's consignees before corrections named another (rare: kept only then).
        self._former_consignees: dict[str, set[str]] = defaultdict(set)
        self.regulation_stamp = 0  # moves on every regulation event: keys derived caches
        self.revision = 0  # moves on every event folded in: keys caches of the whole world
        self.memo: dict[Any, Any] = {}

    # building ---------------------------------------------------------------------------------

    def apply(self, kind: str, record_id: str, event: LoggedEvent) -> RecordState | None:
        """Fold an event in; events of records the evaluator never reads (webhook endpoints)
        only move the position."""
        return self._fold(kind, record_id, event.type, event.data, event.position, _compacted)

    def fold(self, kind: str, record_id: str, event_type: str, data: dict[str, Any],
             position: int | None) -> RecordState | None:
        """`apply` for an event given as parts, whose data is a dict just decoded: the world's
        to keep and change. A replay would build a LoggedEvent per event only for this to take
        it apart, and a compacted copy of each dict cost it a tenth of its time, so the values
        are shared in place and the keys kept as they come: the decoder must share them
        across events, as orjson does (json.loads shares keys only within one call)."""
        return self._fold(kind, record_id, event_type, data, position, _share_values)

    def _fold(self, kind: str, record_id: str, event_type: str, data: Any, position: int | None,
              share: Callable[[Any], dict[str, Any]]) -> RecordState | None:
        if position is not None and position > self.position:
            self.position = position
        self.revision += 1
        spec = KINDS.get(kind)
        if spec is None:
            return None
        records = self._by_kind[kind]
        state = records.get(record_id)
        if state is None:
            record_id = sys.intern(record_id)
            state = records[record_id] = RecordState(spec, record_id)
        if kind == "shipment" and state.original.get("consignee_firm_id") not in (
                None, data.get("consignee_firm_id", state.original.get("consignee_firm_id"))):
            self._former_consignees[record_id].add(state.original["consignee_firm_id"])
        owned = share(data)  # the record keeps it without another copy
        self._index(kind, state.record_id, owned)  # before take(), which may pop fields
        state.take(event_type, owned, position)
        if kind == "regulation":
            self.regulation_stamp += 1
        return state

    def _index(self, kind: str, record_id: str, data: Mapping[str, Any]) -> None:
        """Index every value a record has ever named: over-reaching only costs a recompute."""
        if kind == "shipment" and data.get("licence_id"):
            self._naming_licence[data["licence_id"]].add(record_id)
        if kind == "firm":
            for owner in data.get("owners") or ():
                self._owned[owner["firm_id"]].add(record_id)
        field = _INDEXED_FIELD.get(kind)
        value = data.get(field) if field is not None else None
        if not value:
            return
        if kind == "licence":
            self._licences_by_holder[value].add(record_id)
        elif kind == "firm":
            self._children[value].add(record_id)
        else:
            self._subjects_by_firm[value].add(SubjectRef(kind, record_id))

    def revision_memo(self, name: str) -> dict[Any, Any]:
        """A cache of answers about this state of the world (the draws, who is restricted):
        those of earlier states are dropped when the world moves on."""
        key = (name, self.revision)
        if key not in self.memo:
            for stale in [k for k in self.memo if k[0] == name]:
                del self.memo[stale]
            self.memo[key] = {}
        memo: dict[Any, Any] = self.memo[key]
        return memo

    # reading ----------------------------------------------------------------------------------

    def get(self, kind: str, record_id: str | None) -> RecordState | None:
        if record_id is None:
            return None
        return self._by_kind[kind].get(record_id) if kind in self._by_kind else None

    def of_kind(self, kind: str) -> Iterable[RecordState]:
        return self._by_kind[kind].values()

    def licences_held_by(self, firm_id: str) -> Iterator[RecordState]:
        for licence_id in sorted(self._licences_by_holder.get(firm_id, ())):
            yield self._by_kind["licence"][licence_id]

    def subjects(self) -> list[SubjectRef]:
        return sorted(SubjectRef(k, rid) for k in SUBJECT_KINDS for rid in self._by_kind[k])

    def subjects_of_firm(self, firm_id: str) -> set[SubjectRef]:
        return set(self._subjects_by_firm.get(firm_id, ()))

    def descendants(self, firm_id: str) -> set[str]:
        """Every firm whose parent chain includes this one, on some day."""
        return _below(self._children, firm_id)

    def owned_below(self, firm_id: str) -> set[str]:
        """Every firm this one owns a share of, directly or not, on some day."""
        return _below(self._owned, firm_id)

    def touched_by(self, kind: str, record_id: str) -> set[SubjectRef]:
        """The subjects whose findings an event on this record can change: those it names,
        and every shipment that could draw on the same licences as a shipment among them."""
        touched = self._touched(kind, record_id)
        if kind == "licence":
            touched |= {SubjectRef("shipment", s) for s in self._naming_licence.get(record_id, ())}
        return touched | self._co_drawers(touched)

    def _co_drawers(self, touched: set[SubjectRef]) -> set[SubjectRef]:
        """The consignees' other shipments, for each consignee that holds a licence with a
        quantity: what one draws changes what is left for the others (domain.md)."""
        consignees = set()
        for ref in touched:
            state = self.get("shipment", ref.record_id) if ref.kind == "shipment" else None
            if state is not None:
                consignees |= {state.original.get("consignee_firm_id"),
                               *self._former_consignees.get(ref.record_id, ())}
        return {s for firm in consignees if firm and self._holds_quantities(firm)
                for s in self._subjects_by_firm.get(firm, ()) if s.kind == "shipment"}

    def _holds_quantities(self, firm_id: str) -> bool:
        return any(lic.original.get("quantity") is not None
                   for lic in self.licences_held_by(firm_id))

    def _touched(self, kind: str, record_id: str) -> set[SubjectRef]:
        if kind not in KINDS:
            return set()
        if kind in SUBJECT_KINDS:
            return {SubjectRef(kind, record_id)}
        if kind == "regulation":
            return self._touched_by_regulation(record_id)
        if kind == "licence":
            state = self.get("licence", record_id)
            holder = state.original.get("holder_firm_id") if state else None
            subjects = self.subjects_of_firm(holder or "")
            return {s for s in subjects if s.kind != "processing_activity"}
        if kind == "firm":
            firms = {record_id, *self.descendants(record_id), *self.owned_below(record_id)}
            return {s for f in firms for s in self._subjects_by_firm.get(f, ())}
        field = "data_centre_id" if kind == "data_centre" else "chip_model"
        return self._naming(field, record_id)

    def _naming(self, field: str, value: str) -> set[SubjectRef]:
        """Subjects whose facts name `value` in `field`, originally or in any change.

        A scan, not an index: events on data centres and chip models are rare, and each one
        makes every subject found here be judged again, which costs far more than finding
        them; two indexes over every subject cost a million-event World about 70 MB."""
        found = set()
        for kind in SUBJECT_KINDS:
            for rid, state in self._by_kind[kind].items():
                if state.original.get(field) == value or any(
                        c.fields.get(field) == value for c in state.changes):
                    found.add(SubjectRef(kind, rid))
        return found

    def _touched_by_regulation(self, regulation_id: str) -> set[SubjectRef]:
        state = self.get("regulation", regulation_id)
        if state is None:
            return set()
        rules = [state.original.get("rule") or {}] + [c.fields.get("rule") or {}
                                                      for c in state.changes]
        kinds = {k for r in rules if r.get("kind")
                 for k in judged_kinds(r["kind"], r.get("applies_to"))}
        return {SubjectRef(k, rid) for k in kinds for rid in self._by_kind[k]}


def _below(edges: Mapping[str, set[str]], firm_id: str) -> set[str]:
    """Every firm reachable from `firm_id` along `edges` (parent -> children, owner -> owned)."""
    found: set[str] = set()
    frontier = [firm_id]
    while frontier:
        for child in edges.get(frontier.pop(), ()):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _compacted(data: Mapping[str, Any]) -> dict[str, Any]:
    """A compacted copy, whatever mapping came in."""
    copy: dict[str, Any] = _compact(data if type(data) is dict else dict(data))
    return copy


def _share_values(data: dict[str, Any]) -> dict[str, Any]:
    """_compact's sharing of strings, done in place on the values (keys untouched) and on
    the items of lists (a list built by a comprehension takes a third more room)."""
    for key, value in data.items():  # replacing values leaves the iteration valid
        kind = type(value)
        if kind is str:
            data[key] = sys.intern(value)
        elif kind is list:
            for n, item in enumerate(value):
                value[n] = sys.intern(item) if type(item) is str else _compact(item)
        elif kind is dict:
            data[key] = _compact(value)
    return data


def _compact(value: Any) -> Any:
    """The same strings (dates, countries, ids, field names) repeat across hundreds of
    thousands of records: share one copy of each, so a World of a million events fits in
    memory."""
    kind = type(value)
    if kind is str:
        return sys.intern(value)
    # Strings are interned inline, not by a call each: folding a large log spends its time here.
    if kind is dict:
        return {sys.intern(k): sys.intern(v) if type(v) is str else _compact(v)
                for k, v in value.items()}
    if kind is list:
        return [sys.intern(v) if type(v) is str else _compact(v) for v in value]
    return value
