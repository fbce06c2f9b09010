"""A synthetic ledger of realistic shape, as batch lines, deterministic for a seed.

Thousands of firms (a tenth with parents), data centres in a dozen countries, a dozen chip
models, a few dozen regulations of the three kinds with amendments and rescissions, licences
with revocations, and then leases, shipments and processing activities with their later
events: amendments, terminations, due diligence, corrections recorded late.
"""

import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

Line = dict[str, Any]
COUNTRIES = ["CN", "SG", "MY", "US", "JP", "DE", "AE", "IN", "HK", "KR", "ID", "TH"]
PURPOSES = ["training", "fine_tuning", "inference", "serving"]
START = date(2022, 1, 1)


def _day(rng: random.Random, span: int = 1400) -> str:
    return (START + timedelta(days=rng.randrange(span))).isoformat()


def _after(day: str, rng: random.Random, most: int = 400) -> str:
    return (date.fromisoformat(day) + timedelta(days=rng.randrange(1, most))).isoformat()


def ledger(events: int, seed: int = 7) -> Iterator[Line]:
    """About `events` lines, each naming only records created on earlier lines."""
    rng = random.Random(seed)
    firms = max(20, events // 60)
    dcs = max(10, events // 800)
    yield from _chips()
    for n in range(firms):
        body: Line = {"id": f"firm-{n}", "name": f"Firm {n}", "hq_country": rng.choice(COUNTRIES)}
        if n >= 10 and rng.random() < 0.1:
            body["parent_firm_id"] = f"firm-{rng.randrange(n)}"
        yield {"type": "firms", "body": body}
    for n in range(dcs):
        country = rng.choice(COUNTRIES)
        yield {"type": "data-centres", "body": {
            "id": f"dc-{n}", "name": f"DC {n}", "country": country,
            "operator": f"Operator {n % 40}", "operator_hq_country": rng.choice(COUNTRIES)}}
    yield from _regulations(rng)
    licences = firms // 5
    for n in range(licences):
        valid_from = _day(rng)
        yield {"type": "licences", "body": {
            "id": f"lic-{n}", "authority": "US-BIS",
            "holder_firm_id": f"firm-{rng.randrange(firms)}",
            "chip_models": rng.sample(CHIP_IDS, 2),
            "destination_countries": rng.sample(COUNTRIES, 3),
            "valid_from": valid_from, "valid_to": _after(valid_from, rng, 900)}}
    made = 12 + firms + dcs + len(REGULATIONS) + licences
    subjects: list[tuple[str, str, str]] = []
    while made < events:
        made += 1
        roll = rng.random()
        if subjects and roll < 0.3:
            line = _later(rng, rng.choice(subjects))
            if line is not None:
                yield line
                continue
        kind = rng.choices(["leases", "shipments", "processing-activities"], [4, 4, 2])[0]
        rid = f"{kind[:2]}-{len(subjects)}"
        starts = _day(rng)
        subjects.append((kind, rid, starts))
        yield _subject(rng, kind, rid, starts, firms, dcs)


CHIP_IDS = [f"chip-{n}" for n in range(12)]


def _chips() -> Iterator[Line]:
    for n, chip_id in enumerate(CHIP_IDS):
        yield {"type": "chip-models", "body": {
            "id": chip_id, "vendor": "NVIDIA" if n < 8 else "Huawei",
            "origin_country": "US" if n < 8 else "CN", "tpp": 1500 + 1800 * n,
            "performance_density": 1.5 + 2.1 * n}}


_SELECTOR = {"any_of": [{"min_tpp": 4800}, {"min_tpp": 1600, "min_performance_density": 5.92}],
             "origin_countries": ["US"]}
REGULATIONS: list[Line] = []
for _n in range(12):
    REGULATIONS.append({"kind": "export_licence", "chips": _SELECTOR,
                        "to_countries": COUNTRIES[_n % 4: _n % 4 + 3],
                        "licence_authority": "US-BIS"})
    REGULATIONS.append({"kind": "remote_compute_access", "lessee_hq_countries": ["CN", "HK"],
                        "exempt_dc_countries": ["US", "JP"], "chips": _SELECTOR,
                        "severity": "attention" if _n % 2 else "violation",
                        "licence_authority": "US-BIS"})
for _n in range(6):
    REGULATIONS.append({"kind": "data_localisation", "data_subject_countries": [COUNTRIES[_n]],
                        "sensitive_only": _n % 2 == 0,
                        "accepted_mechanisms": ["security_assessment"]})


def _regulations(rng: random.Random) -> Iterator[Line]:
    for n, rule in enumerate(REGULATIONS):
        effective = _day(rng, 900)
        yield {"type": "regulations", "body": {
            "id": f"reg-{n}", "authority": "US-BIS" if rule["kind"] != "data_localisation"
            else "CN-CAC", "title": f"Regulation {n}", "citation": f"{n} FR {1000 + n}",
            "effective_from": effective, "rule": rule}}
        if n % 3 == 0:
            amended = dict(rule)
            if rule["kind"] == "export_licence":
                amended["to_countries"] = COUNTRIES[:2]
            yield {"type": "regulations/amendments", "id": f"reg-{n}", "body": {
                "effective_from": _after(effective, rng), "rule": amended}}
        if n % 7 == 6:
            yield {"type": "regulations/rescission", "id": f"reg-{n}", "body": {
                "effective_from": _after(effective, rng, 600)}}


def _subject(rng: random.Random, kind: str, rid: str, starts: str, firms: int, dcs: int) -> Line:
    firm = f"firm-{rng.randrange(firms)}"
    if kind == "leases":
        return {"type": kind, "body": {
            "id": rid, "firm_id": firm, "data_centre_id": f"dc-{rng.randrange(dcs)}",
            "chip_model": rng.choice(CHIP_IDS), "chip_count": rng.randrange(8, 4096),
            "starts_on": starts, "ends_on": _after(starts, rng, 700),
            "purposes": rng.sample(PURPOSES, rng.randrange(1, 3))}}
    if kind == "shipments":
        return {"type": kind, "body": {
            "id": rid, "chip_model": rng.choice(CHIP_IDS), "quantity": rng.randrange(1, 5000),
            "from_country": "US", "to_country": rng.choice(COUNTRIES),
            "consignee_firm_id": firm, "shipped_on": starts}}
    return {"type": kind, "body": {
        "id": rid, "firm_id": firm, "purpose": rng.choice(PURPOSES),
        "data_subject_countries": rng.sample(COUNTRIES[:6], 2), "sensitive": rng.random() < 0.4,
        "starts_on": starts, "data_centre_id": f"dc-{rng.randrange(dcs)}",
        "subject_count": rng.randrange(100, 2_000_000)}}


def _later(rng: random.Random, subject: tuple[str, str, str]) -> Line | None:
    kind, rid, starts = subject
    if kind == "leases":
        action = rng.choice(["amendments", "due-diligence", "corrections"])
        if action == "amendments":
            return {"type": "leases/amendments", "id": rid, "body": {
                "effective_from": _after(starts, rng, 300), "chip_count": rng.randrange(8, 4096)}}
        if action == "due-diligence":
            return {"type": "leases/due-diligence", "id": rid, "body": {
                "completed_on": _after(starts, rng, 200), "reference": f"DD-{rid}"}}
        return {"type": "leases/corrections", "id": rid, "body": {
            "chip_count": rng.randrange(8, 4096), "reason": "late invoice"}}
    if kind == "shipments":
        return {"type": "shipments/corrections", "id": rid, "body": {
            "quantity": rng.randrange(1, 5000), "reason": "customs record"}}
    return {"type": "processing-activities/changes", "id": rid, "body": {
        "effective_from": _after(starts, rng, 300),
        "transfer_mechanism": "security_assessment"}}
