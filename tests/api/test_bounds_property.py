"""Whatever the boundary accepts, the engine holds (issue 11): bodies at every bound the
validation allows are appended on both backends, and each is projected (the runner catches up
raising no alarm), replayed (consistent with the projections) and exported (every line strict
JSON, the export verified offline as `chipledger verify --file` verifies it).

Each example is a small world of every kind and every later append, its values drawn from the
edges: the first and last days, the longest ids, names and texts (any character a name or a
free text may hold), the smallest and largest numbers, the longest lists, every enum value.
"""

import itertools
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from api import strict_json
from api.app import create_app
from api.cli import cli as chipledger
from domain.countries import ISO_ALPHA2
from domain.types import (
    FIRST_DAY,
    LAST_DAY,
    MAX_COUNT,
    MAX_COUNTRIES,
    MAX_MEASURE,
    MAX_MODELS,
    MAX_NAME_LENGTH,
    MAX_TEXT_LENGTH,
    Purpose,
    TransferMechanism,
)
from infra.bootstrap import Container, bootstrap
from infra.keys import KeyRing, Role
from infra.runner import ProjectionRunner
from infra.settings import Settings
from tests.support.databases import BACKENDS, database_for

Json = dict[str, Any]
ONE_DAY = timedelta(days=1)
DAYS = [FIRST_DAY, FIRST_DAY + ONE_DAY, LAST_DAY - ONE_DAY, LAST_DAY]
COUNTRIES = sorted(ISO_ALPHA2)

# Any character a name may hold (no control characters, line or paragraph separators, lone
# surrogates); free text keeps tab, line feed and carriage return too.
NAME_CHARACTERS = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"))
TEXT_CHARACTERS = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"),
                                include_characters="\t\n\r")

days = st.sampled_from(DAYS)
measures = st.sampled_from([5e-324, 1e-300, 0.5, MAX_MEASURE])
counts = st.sampled_from([1, MAX_COUNT])
# A name is stripped of surrounding whitespace: one letter each end keeps its length whole.
names = st.just("N") | st.text(NAME_CHARACTERS, min_size=MAX_NAME_LENGTH - 2,
                                max_size=MAX_NAME_LENGTH - 2).map(lambda s: f"N{s}n")
texts = st.just("") | st.text(TEXT_CHARACTERS, min_size=MAX_TEXT_LENGTH,
                               max_size=MAX_TEXT_LENGTH)
countries = st.sampled_from(COUNTRIES)
# the longest list: every code, and the first again
country_lists = st.just(COUNTRIES + COUNTRIES[:MAX_COUNTRIES - len(COUNTRIES)]) | \
    st.lists(countries, min_size=1, max_size=3)
purpose_lists = st.permutations(list(Purpose)).map(lambda ps: [p.value for p in ps])
authorities = st.sampled_from(["US-BIS", "MY-MITI-STRATEGIC-TRADE-PERMIT-", "CN-CAC"])


def spans() -> st.SearchStrategy[tuple[date, date]]:
    return st.tuples(days, days).map(sorted).map(tuple)  # type: ignore[arg-type]


def iso(day: date) -> str:
    return day.isoformat()


_serial = itertools.count()


def longest_id(tag: str) -> str:
    """A record id of the longest length ids may have (64), unique in the run."""
    return f"{tag}{next(_serial)}-".ljust(64, "x")[:58] + "0.a_b-"


@st.composite
def rules(draw: st.DrawFn, chip: str) -> list[Json]:
    """One rule of each kind, every selector and list at its longest."""
    chips = {"models": [chip] * MAX_MODELS,
             "any_of": [{"min_tpp": draw(measures)},
                        {"min_performance_density": draw(measures), "min_tpp": draw(measures)}],
             "origin_countries": draw(country_lists)}
    return [
        {"kind": "export_licence", "chips": chips, "to_countries": draw(country_lists),
         "consignee_hq_countries": draw(country_lists), "from_countries": draw(country_lists),
         "licence_authority": draw(authorities)},
        {"kind": "remote_compute_access", "lessee_hq_countries": draw(country_lists),
         "exempt_dc_countries": draw(country_lists), "dc_countries": draw(country_lists),
         "chips": chips, "min_chips": draw(counts), "purposes": draw(purpose_lists),
         "severity": draw(st.sampled_from(["violation", "attention"])),
         "licence_authority": draw(authorities)},
        {"kind": "data_localisation", "data_subject_countries": draw(country_lists),
         "sensitive_only": draw(st.booleans()), "min_subjects": draw(counts),
         "accepted_mechanisms": [m.value for m in TransferMechanism]},
    ]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Json], list[tuple[str, Json]]]:
    """Creates (as batch lines) of every kind, then a later append of every kind (as routes
    and bodies), each naming only records before it."""
    chip, parent, firm, dc, licence, lease, shipment, activity = (
        longest_id(tag) for tag in "cpfdlesa")
    valid_from, valid_to = draw(spans())
    lease_from, lease_to = draw(spans())
    activity_from, activity_to = draw(spans())
    creates: list[Json] = [
        {"type": "chip-models", "body": {
            "id": chip, "vendor": draw(names), "origin_country": draw(countries),
            "tpp": draw(measures), "performance_density": draw(measures),
            "memory_bandwidth_gbps": draw(measures)}},
        {"type": "firms", "body": {"id": parent, "name": draw(names),
                                   "hq_country": draw(countries)}},
        {"type": "firms", "body": {"id": firm, "name": draw(names),
                                   "hq_country": draw(countries), "parent_firm_id": parent}},
        {"type": "data-centres", "body": {
            "id": dc, "name": draw(names), "country": draw(countries),
            "operator": draw(names), "operator_hq_country": draw(countries)}},
        *({"type": "regulations", "body": {
            "id": longest_id("r"), "authority": draw(authorities), "title": draw(names),
            "citation": draw(names), "effective_from": iso(draw(days)), "rule": rule,
            "published_on": iso(draw(days)), "compliance_from": iso(draw(days))}}
          for rule in draw(rules(chip))),
        {"type": "licences", "body": {
            "id": licence, "authority": draw(authorities), "holder_firm_id": firm,
            "chip_models": [chip] * MAX_MODELS, "destination_countries": draw(country_lists),
            "valid_from": iso(valid_from), "valid_to": iso(valid_to),
            "quantity": draw(counts)}},
        {"type": "leases", "body": {
            "id": lease, "firm_id": firm, "data_centre_id": dc, "chip_model": chip,
            "chip_count": draw(counts), "starts_on": iso(lease_from),
            "purposes": draw(purpose_lists), "ends_on": iso(lease_to)}},
        {"type": "shipments", "body": {
            "id": shipment, "chip_model": chip, "quantity": draw(counts),
            "from_country": draw(countries), "to_country": draw(countries),
            "consignee_firm_id": firm, "shipped_on": iso(draw(days)),
            "exporter": draw(names), "licence_id": licence}},
        {"type": "processing-activities", "body": {
            "id": activity, "firm_id": firm, "purpose": draw(st.sampled_from(list(Purpose))),
            "data_subject_countries": draw(country_lists), "sensitive": draw(st.booleans()),
            "starts_on": iso(activity_from), "ends_on": iso(activity_to),
            "subject_count": draw(counts),
            "transfer_mechanism": draw(st.sampled_from([None, *TransferMechanism])),
            **draw(st.sampled_from([{"data_centre_id": dc},
                                    {"location_country": COUNTRIES[-1]}]))}},
    ]
    regulation = creates[4]["body"]
    later: list[tuple[str, Json]] = [
        (f"chip-models/{chip}/corrections", {"tpp": draw(measures), "reason": draw(texts)}),
        (f"firms/{firm}/changes", {"effective_from": iso(draw(days)), "name": draw(names)}),
        (f"firms/{parent}/corrections", {"hq_country": draw(countries),
                                         "reason": draw(texts)}),
        (f"data-centres/{dc}/changes", {"effective_from": iso(draw(days)),
                                        "operator": draw(names)}),
        (f"regulations/{regulation['id']}/amendments", {
            "effective_from": regulation["effective_from"], "rule": regulation["rule"]}),
        (f"regulations/{regulation['id']}/rescission", {
            "effective_from": iso(LAST_DAY), "announced_on": iso(draw(days)),
            "reason": draw(texts)}),
        (f"licences/{licence}/revocation", {"effective_from": iso(valid_to),
                                            "reason": draw(texts)}),
        (f"leases/{lease}/due-diligence", {"completed_on": iso(draw(days)),
                                           "reference": draw(names)}),
        (f"leases/{lease}/amendments", {"effective_from": iso(lease_from),
                                        "chip_count": draw(counts)}),
        (f"leases/{lease}/corrections", {"purposes": draw(purpose_lists),
                                         "reason": draw(texts)}),
        (f"leases/{lease}/termination", {"effective_from": iso(lease_to),
                                         "reason": draw(texts)}),
        (f"shipments/{shipment}/corrections", {"shipped_on": iso(draw(days)),
                                               "exporter": draw(names)}),
        (f"processing-activities/{activity}/changes", {
            "effective_from": iso(activity_from), "subject_count": draw(counts),
            "transfer_mechanism": draw(st.sampled_from([None, *TransferMechanism]))}),
        (f"processing-activities/{activity}/corrections", {"sensitive": draw(st.booleans()),
                                                           "reason": draw(texts)}),
        (f"processing-activities/{activity}/end", {"effective_from": iso(activity_to)}),
    ]
    return creates, later


class Ledger:
    def __init__(self, client: TestClient, headers: dict[str, str], container: Container,
                 folder: Path) -> None:
        self.client, self.headers, self.container, self.folder = \
            client, headers, container, folder

    def append(self, creates: list[Json], later: list[tuple[str, Json]]) -> None:
        batch = "\n".join(json.dumps(line) for line in creates).encode()
        response = self.client.post("/v1/events:batch", content=batch, headers={
            **self.headers, "Content-Type": "application/x-ndjson"})
        assert response.status_code == 201, response.text
        for path, body in later:
            response = self.client.post(f"/v1/{path}", json=body, headers=self.headers)
            assert response.status_code in (200, 201), f"{path}: {response.text}"

    def projects(self) -> None:
        head = self.client.get("/v1/integrity", headers=self.headers).json()["head_position"]
        assert ProjectionRunner(self.container).catch_up() == head
        assert self.container.alarms.active() == []

    def replays(self, as_of: date) -> None:
        response = self.client.post("/v1/replays", json={"as_of": iso(as_of)},
                                    headers=self.headers)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["consistent_with_projections"] is True, answer["differences"]

    def exports(self) -> None:
        response = self.client.get("/v1/exports", headers=self.headers)
        assert response.status_code == 200, response.text
        lines = response.text.splitlines()
        for line in lines:
            strict_json.loads_carefully(line)  # no Infinity, no NaN, no duplicate key
        bundle = self.folder / "export.ndjson"
        bundle.write_text(response.text)
        key = self.folder / "public-key.pem"
        key.write_text(self.client.get("/v1/integrity/public-key",
                                       headers=self.headers).json()["public_key_pem"])
        result = CliRunner().invoke(chipledger, ["verify", "--file", str(bundle),
                                                 "--public-key", str(key)])
        assert result.exit_code == 0, f"{result.output}{result.exception!r}"


@pytest.fixture(scope="module", params=BACKENDS)
def ledger(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Ledger]:
    folder = tmp_path_factory.mktemp("bounds")
    with database_for(request.param, folder) as url:
        container = bootstrap(Settings(database_url=url, auth="enabled", log_format="console",
                                       signing_key_file=str(folder / "key.pem")))
        try:
            admin = {"Authorization": "Bearer " + KeyRing(container.store).create(Role.ADMIN)[1]}
            with TestClient(create_app(container=container, workers=False)) as client:
                yield Ledger(client, admin, container, folder)
        finally:
            container.close()


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=worlds(), as_of=days)
def test_every_body_at_the_bounds_is_projected_replayed_and_exported(ledger, world, as_of):
    creates, later = world
    # Step 1: the world is appended, creates as one batch and every later append on its route.
    ledger.append(creates, later)
    # Step 2: the runner projects it all, raising no alarm.
    ledger.projects()
    # Step 3: a replay from the raw log agrees with the projections on the edge days.
    for day in {FIRST_DAY, LAST_DAY, as_of}:
        ledger.replays(day)
    # Step 4: the export is strict JSON line by line and verifies offline.
    ledger.exports()
