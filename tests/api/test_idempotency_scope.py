"""An Idempotency-Key belongs to the API key that sent it: the same Idempotency-Key from two
API keys is two independent requests, each retried into its own first answer."""

import json

from tests.support.data import ALIBABA, H100

NDJSON = {"Content-Type": "application/x-ndjson"}


def firm(firm_id: str) -> dict[str, str]:
    return {**ALIBABA, "id": firm_id, "name": f"Firm {firm_id}"}


class TestOneIdempotencyKeyFromTwoApiKeys:
    def test_is_two_requests_each_answered_again_with_its_own_answer(self, client, as_role):
        writer, admin = as_role("writer"), as_role("admin")
        key = {"Idempotency-Key": "2025-06-01-import-7"}
        # Step 1: a writer and then an admin send different records under the same key.
        by_writer = client.post("/v1/firms", json=firm("writer-firm"), headers={**writer, **key})
        by_admin = client.post("/v1/firms", json=firm("admin-firm"), headers={**admin, **key})
        # Step 2: both are appended: the admin's was never taken for a reuse of the writer's.
        assert (by_writer.status_code, by_admin.status_code) == (201, 201), by_admin.text
        assert "Idempotent-Replayed" not in by_admin.headers
        assert (by_writer.json()["position"], by_admin.json()["position"]) == (1, 2)
        # Step 3: each retry is answered with its own sender's first answer, appending nothing.
        again_admin = client.post("/v1/firms", json=firm("admin-firm"), headers={**admin, **key})
        again_writer = client.post("/v1/firms", json=firm("writer-firm"),
                                   headers={**writer, **key})
        assert again_admin.headers["Idempotent-Replayed"] == "true"
        assert again_admin.json() == by_admin.json()
        assert again_writer.headers["Idempotent-Replayed"] == "true"
        assert again_writer.json() == by_writer.json()
        assert client.get("/v1/integrity", headers=writer).json()["head_position"] == 2

    def test_with_the_same_body_the_second_key_is_not_given_the_first_keys_answer(
        self, client, as_role
    ):
        writer, admin = as_role("writer"), as_role("admin")
        key = {"Idempotency-Key": "create-h100"}
        first = client.post("/v1/chip-models", json=H100, headers={**writer, **key})
        assert first.status_code == 201
        # The admin's request is its own: it finds the record there, unchanged (200).
        second = client.post("/v1/chip-models", json=H100, headers={**admin, **key})
        assert second.status_code == 200, second.text
        assert "Idempotent-Replayed" not in second.headers
        assert second.json()["position"] == first.json()["position"]

    def test_a_reuse_with_another_body_is_refused_only_for_the_same_api_key(
        self, client, as_role
    ):
        writer, admin = as_role("writer"), as_role("admin")
        key = {"Idempotency-Key": "batch-1"}
        lines = "\n".join(json.dumps({"type": "firms", "body": firm(f"f-{n}")})
                          for n in range(3))
        assert client.post("/v1/events:batch", content=lines,
                           headers={**writer, **NDJSON, **key}).status_code == 201
        other = json.dumps({"type": "firms", "body": firm("f-other")})
        reused = client.post("/v1/events:batch", content=other,
                             headers={**writer, **NDJSON, **key})
        assert reused.status_code == 422
        assert reused.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
        by_admin = client.post("/v1/events:batch", content=other,
                               headers={**admin, **NDJSON, **key})
        assert by_admin.status_code == 201, by_admin.text
        assert by_admin.json()["positions"] == [4]
