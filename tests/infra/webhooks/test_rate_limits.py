"""Rate limits per endpoint (issue 18, item 3): `max_per_second` at creation, changed later
through POST /v1/webhooks/endpoints/{id}/changes, which the log records. The attempts start
at least 1/max_per_second apart, as their history records them (start = answered at minus
latency, one clock): a lower bound, which a loaded machine only widens. On SQLite and
PostgreSQL."""

from collections.abc import Callable
from datetime import timedelta

from tests.support.webhooks import Api, Pump, Receiver, firm, parse

APPENDED = "ledger.appended"


def assert_at_most(api: Api, endpoint_id: str, per_second: int, skip: int = 0) -> None:
    """No second holds more than `per_second` starts (give or take the few milliseconds
    between the pacer letting a send through and its start being taken)."""
    starts = sorted(parse(h["at"]) - timedelta(milliseconds=h["latency_ms"] + 1)
                    for d in api.deliveries(endpoint_id) for h in d["history"])[skip:]
    for i in range(len(starts) - per_second):
        assert starts[i + per_second] - starts[i] >= timedelta(seconds=0.95), (i, starts)


def test_deliveries_keep_to_the_endpoints_rate_and_a_change_is_recorded(
    api: Api, pump: Pump, receivers: Callable[[], Receiver]
) -> None:
    receiver = receivers()
    answer = api.client.post("/v1/webhooks/endpoints", headers=api.admin, json={
        "url": receiver.url, "event_types": [APPENDED], "max_per_second": 4})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["max_per_second"] == 4
    receiver.secrets = [created["secret"]]

    # Step 1: twelve appends: twelve messages, four a second at most.
    for n in range(1, 13):
        api.record("firms", firm(n))
    pump.until(lambda: len(receiver.arrivals) == 12)
    assert_at_most(api, created["id"], 4)

    # Step 2: the limit changes to two a second: recorded in the log, read back, kept to.
    changed = api.client.post(f"/v1/webhooks/endpoints/{created['id']}/changes",
                              headers=api.admin, json={"max_per_second": 2})
    assert changed.status_code == 200, changed.text
    assert changed.json()["max_per_second"] == 2
    [event] = [e for e in api.events() if e["type"] == "WebhookEndpointChanged"]
    assert event["record_id"] == created["id"]
    assert event["data"]["max_per_second"] == 2
    for n in range(13, 19):
        api.record("firms", firm(n))
    pump.until(lambda: len(receiver.arrivals) == 6 + 12 + 1)  # and the change's own message
    assert_at_most(api, created["id"], 2, skip=12)

    # Step 3: no limit at all (null) is a change too.
    cleared = api.client.post(f"/v1/webhooks/endpoints/{created['id']}/changes",
                              headers=api.admin, json={"max_per_second": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["max_per_second"] is None


def test_a_bad_rate_names_the_field_and_writes_nothing(api: Api,
                                                       receivers: Callable[[], Receiver]
                                                       ) -> None:
    receiver = receivers()
    for bad in (0, -1, 1.5, "3", 100_001):
        answer = api.client.post("/v1/webhooks/endpoints", headers=api.admin, json={
            "url": receiver.url, "event_types": [APPENDED], "max_per_second": bad})
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["errors"][0]["field"] == "body.max_per_second"
    assert api.endpoints() == []
    created = api.endpoint(receiver.url, (APPENDED,))
    answer = api.client.post(f"/v1/webhooks/endpoints/{created['id']}/changes",
                             headers=api.admin, json={"max_per_second": 0})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "body.max_per_second"
    missing = api.client.post("/v1/webhooks/endpoints/wh-nothere/changes", headers=api.admin,
                              json={"max_per_second": 3})
    assert missing.status_code == 404
    assert [e["type"] for e in api.events()] == ["WebhookEndpointCreated"]
