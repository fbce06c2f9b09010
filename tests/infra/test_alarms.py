"""Alarms raised by one component are seen by every process on the database."""

from fastapi.testclient import TestClient

from infra.bootstrap import Container


def test_an_alarm_makes_readiness_degraded_with_its_reason_and_position(
        container: Container, client: TestClient) -> None:
    container.alarms.raise_alarm("projection", "shipment/s-1", "OverflowError: date", 7)
    body = client.get("/readyz").json()
    assert body["status"] == "degraded"
    assert [(a["component"], a["key"], a["reason"], a["position"]) for a in body["alarms"]] == \
        [("projection", "shipment/s-1", "OverflowError: date", 7)]


def test_raising_an_alarm_again_updates_it_and_clearing_it_makes_the_service_ready(
        container: Container, client: TestClient) -> None:
    container.alarms.raise_alarm("integrity", "checkpoint", "head does not extend", 3)
    container.alarms.raise_alarm("integrity", "checkpoint", "still does not extend", 4)
    assert [(a.reason, a.position) for a in container.alarms.active()] == \
        [("still does not extend", 4)]
    container.alarms.clear("integrity")
    assert client.get("/readyz").json()["status"] == "ready"


def test_metrics_count_active_alarms_by_component(
        container: Container, client: TestClient, admin: dict[str, str]) -> None:
    container.alarms.raise_alarm("projection", "lease/l-1", "boom", 2)
    container.alarms.raise_alarm("projection", "lease/l-2", "boom", 3)
    text = client.get("/metrics", headers=admin).text
    assert 'chipledger_alarms{component="projection"} 2.0' in text
    assert 'chipledger_alarms{component="integrity"} 0.0' in text
