"""How the read side's answers are written as JSON (api.md's field names), shared by the
routes that show them."""

from typing import Any

from domain.evaluator import Finding, Posture, Processing
from domain.times import format_time
from projections.records import RecordView
from projections.views import Reading


def finding_json(f: Finding) -> dict[str, Any]:
    return {
        "subject_type": f.subject_type,
        "subject_id": f.subject_id,
        "regulation_id": f.regulation_id,
        "citation": f.citation,
        "status": f.status.value,
        "valid_from": f.valid_from.isoformat(),
        "valid_to": f.valid_to.isoformat() if f.valid_to else None,
        "explanation": f.explanation,
        "evidence": list(f.evidence),
    }


def reading_json(r: Reading) -> dict[str, Any]:
    return {"as_of": r.as_of.isoformat(), "known_at": format_time(r.known_at),
            "position": r.position}


def posture_json(p: Posture, r: Reading) -> dict[str, Any]:
    return {"firm_id": p.firm_id, **reading_json(r), "status": p.status.value,
            "findings": [finding_json(f) for f in p.findings]}


def processing_json(p: Processing) -> dict[str, Any]:
    return {"data_subject_country": p.data_subject_country, "processed_in": p.processed_in,
            "activity_id": p.activity_id, "status": p.status.value}


def record_json(view: RecordView) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": view.kind,
        "id": view.record_id,
        "as_of": view.as_of.isoformat(),
        "known_at": format_time(view.known_at),
        "position": view.position,
        "version": view.version,
        "lifecycle": view.lifecycle,
        "data": view.facts,
        "ended_from": view.ended_from.isoformat() if view.ended_from else None,
        "recorded_at": format_time(view.last_recorded_at),
    }
    if view.kind == "lease":
        ddf = view.due_diligence_from
        body["due_diligence_from"] = ddf.isoformat() if ddf else None
    return body
