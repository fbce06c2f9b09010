"""Backfill (issue 18, item 4): an endpoint created with `since_position`, or sent POST
/v1/webhooks/endpoints/{id}/backfill, receives exactly the messages recorded after that
position, in order per firm and the ledger's own in log order, while another endpoint's
live deliveries go on. On SQLite and PostgreSQL, with real receivers."""

from collections.abc import Callable
from typing import Any

from tests.support.webhooks import (
    POSTURE,
    Api,
    Arrival,
    Pump,
    Receiver,
    assert_fifo_per_firm,
    cure,
    firm,
    record_rule,
    seq,
    violate,
)

APPENDED = "ledger.appended"
TYPES = (POSTURE, APPENDED)


def position(message_id: str) -> int:
    return int(message_id.split("_")[1])


def assert_in_order(arrivals: list[Arrival], deliveries: list[dict[str, Any]]) -> None:
    """In order per firm among these arrivals, and the ledger's own in log order."""
    sent = {a.webhook_id for a in arrivals}
    assert_fifo_per_firm([a for a in arrivals if a.payload["type"] == POSTURE],
                         [d for d in deliveries
                          if d["ordering_key"] != "~ledger" and d["message_id"] in sent])
    ledger = [seq(a.webhook_id) for a in arrivals if a.payload["type"] == APPENDED]
    assert ledger == sorted(ledger)


def test_backfill_delivers_exactly_the_history_after_the_position(
    api: Api, pump: Pump, receivers: Callable[[], Receiver]
) -> None:
    live, late = receivers(), receivers()
    # Step 1: an endpoint from the start sees the whole history.
    created = api.endpoint(live.url, TYPES)
    live.secrets = [created["secret"]]
    record_rule(api)
    for n in (1, 2, 3):
        api.record("firms", firm(n))
    violate(api, 1)
    since = violate(api, 2)["position"]
    violate(api, 3)
    cure(api, 1)
    pump.until(lambda: len(api.deliveries(created["id"], "succeeded")) == 9 + 8)
    history = [a.webhook_id for a in live.arrivals]
    after = sorted((m for m in history if position(m) > since), key=seq)
    assert after
    assert len(after) < len(history)

    # Step 2: a second endpoint asks for the history after `since` at its creation.
    answer = api.client.post("/v1/webhooks/endpoints", headers=api.admin, json={
        "url": late.url, "event_types": list(TYPES), "since_position": since})
    assert answer.status_code == 201, answer.text
    backfilled = answer.json()
    late.secrets = [backfilled["secret"]]
    # Live traffic goes on meanwhile, to both.
    fresh = api.record("firms", firm(4))["position"]
    pump.until(lambda: len(late.arrivals) >= len(after) + 2)
    pump.for_a_while(0.2)
    got = [a.webhook_id for a in late.arrivals]
    # Exactly the history after `since`, its own creation and the live append after it.
    creation = next(e["position"] for e in api.events() if e["record_id"] == backfilled["id"])
    assert sorted(got, key=seq) == [*after, f"msg_{creation}_1", f"msg_{fresh}_1"]
    assert all(a.verified_by for a in late.arrivals)
    assert_in_order(late.arrivals, api.deliveries(backfilled["id"]))
    assert f"msg_{fresh}_1" in {a.webhook_id for a in live.arrivals}

    # Step 3: a backfill of the first endpoint sends it that history again, in order.
    seen = len(live.arrivals)
    again = api.client.post(f"/v1/webhooks/endpoints/{created['id']}/backfill",
                            headers=api.admin, json={"since_position": since})
    assert again.status_code == 200, again.text
    expected = sorted((m for m in {a.webhook_id for a in live.arrivals} if position(m) > since),
                      key=seq)
    assert again.json() == {"endpoint_id": created["id"], "since_position": since,
                            "queued": len(expected)}
    pump.until(lambda: len(live.arrivals) == seen + len(expected))
    replayed = live.arrivals[seen:]
    assert sorted((a.webhook_id for a in replayed), key=seq) == expected
    assert_in_order(replayed, api.deliveries(created["id"]))
    assert {d["status"] for d in api.deliveries(created["id"])} == {"succeeded"}


def test_a_bad_backfill_is_refused(api: Api, receivers: Callable[[], Receiver]) -> None:
    created = api.endpoint(receivers().url, TYPES)
    for bad in (-1, "3", 1.5, None, 2**62, 10**12):
        answer = api.client.post(f"/v1/webhooks/endpoints/{created['id']}/backfill",
                                 headers=api.admin, json={"since_position": bad})
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["errors"][0]["field"] == "body.since_position"
    missing = api.client.post("/v1/webhooks/endpoints/wh-nothere/backfill", headers=api.admin,
                              json={"since_position": 0})
    assert missing.status_code == 404
    refused = api.client.post("/v1/webhooks/endpoints", headers=api.admin, json={
        "url": "http://127.0.0.1:9/x", "event_types": [APPENDED], "since_position": -5})
    assert refused.status_code == 422
    assert len(api.endpoints()) == 1
