"""The request middleware: a request id on every answer, one log line and metrics a request,
and a problem answer (not a dropped connection) when a handler fails."""

import re

from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from api.app import create_app


def _metric(client: TestClient, headers: dict[str, str], name: str, **labels: str) -> float:
    text = client.get("/metrics", headers=headers).text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{wanted}}} in the metrics")


def test_every_answer_carries_a_request_id(client):
    given = client.get("/healthz", headers={"X-Request-ID": "abc.DEF-1_2"})
    assert given.headers["x-request-id"] == "abc.DEF-1_2"
    made = client.get("/healthz", headers={"X-Request-ID": "not allowed!"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    refused = client.post("/v1/firms", json={"id": "f", "name": "F", "hq_country": "SG"})
    assert refused.status_code == 401
    assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["x-request-id"])


def test_one_log_line_and_metrics_a_request(client, writer, admin):
    with capture_logs() as logs:
        response = client.post("/v1/firms", headers=writer,
                               json={"id": "observed", "name": "O", "hq_country": "SG"})
    assert response.status_code == 201
    lines = [e for e in logs if e["event"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "POST"
    assert line["path"] == "/v1/firms"
    assert line["route"] == "/v1/firms"
    assert line["status"] == 201
    assert line["role"] == "writer"
    assert line["key_id"] == writer["Authorization"].split("_")[1]
    assert _metric(client, admin, "chipledger_http_requests_total", method="POST",
                   route="/v1/firms", status="201") == 1


def test_a_failing_handler_is_answered_with_a_problem(container):
    app = create_app(container=container)

    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/boom", boom)
    with TestClient(app) as client, capture_logs() as logs:
        response = client.get("/boom", headers={"X-Request-ID": "failing-1"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["x-request-id"] == "failing-1"
    assert "failing-1" in response.json()["detail"]
    assert [e["status"] for e in logs if e["event"] == "request"] == [500]
    assert any(e["event"] == "request_failed" for e in logs)
