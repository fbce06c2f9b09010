"""Group commit: concurrent appends share transactions, and each keeps its own answer."""

import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from api.appends import parse_batch_line
from domain.errors import InvalidRecordError, RecordConflictError
from infra.group_commit import GroupCommitter
from infra.service import AppendService
from tests.support.data import TEST_WRITER


def firm(n: int, country: str = "SG") -> list:
    line = {"type": "firms", "body": {"id": f"firm-{n}", "name": f"Firm {n}",
                                      "hq_country": country}}
    return [parse_batch_line(json.dumps(line), 1)]


@pytest.fixture
def committer(container):
    group = GroupCommitter(AppendService(container))
    group.start()
    yield group
    group.stop()


class TestGroupCommit:
    def test_concurrent_appends_share_commits_and_each_gets_its_own_answer(
        self, committer, container
    ):
        # Step 1: 64 clients append a firm each, at once.
        with ThreadPoolExecutor(max_workers=64) as pool:
            answers = list(pool.map(
                lambda n: committer.submit(firm(n), recorded_by=TEST_WRITER), range(64)))
        # Step 2: each answer names its own record, and positions are 1..64 without gaps.
        assert sorted(a.body["id"] for a in answers) == sorted(f"firm-{n}" for n in range(64))
        assert sorted(a.body["position"] for a in answers) == list(range(1, 65))
        assert all(a.status == 201 for a in answers)
        # Step 3: fewer transactions than requests were needed.
        assert committer.requests == 64
        assert committer.groups < 64
        assert container.store.head().position == 64

    def test_a_refused_request_fails_alone(self, committer, container):
        committer.submit(firm(0), recorded_by=TEST_WRITER)
        bad = [parse_batch_line(json.dumps({"type": "leases", "body": {
            "id": "l1", "firm_id": "nobody", "data_centre_id": "dc", "chip_model": "h100",
            "chip_count": 1, "starts_on": "2025-01-01", "purposes": ["training"]}}), 1)]
        requests = [firm(1), bad, firm(2), firm(0, "CN"), firm(3)]
        with ThreadPoolExecutor(max_workers=5) as pool:
            futures = [pool.submit(committer.submit, r, recorded_by=TEST_WRITER)
                       for r in requests]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result().status)
            except (InvalidRecordError, RecordConflictError) as error:
                outcomes.append(type(error).__name__)
        assert outcomes == [201, "InvalidRecordError", 201, "RecordConflictError", 201]
        assert container.store.head().position == 4

    def test_two_requests_on_one_record_in_one_group_apply_in_order(self, committer, container):
        committer.submit(firm(0), recorded_by=TEST_WRITER)
        changes = [
            [parse_batch_line(json.dumps({"type": "firms/changes", "id": "firm-0", "body": {
                "effective_from": f"2025-0{m}-01", "name": f"Name {m}"}}), 1)]
            for m in range(1, 8)
        ]
        with ThreadPoolExecutor(max_workers=7) as pool:
            answers = list(pool.map(partial(committer.submit, recorded_by=TEST_WRITER), changes))
        assert sorted(a.body["version"] for a in answers) == list(range(2, 9))
        versions = {a.body["version"]: a.body["position"] for a in answers}
        assert [versions[v] for v in sorted(versions)] == sorted(versions.values())
        record = container.ledger.get_record("firm", "firm-0")
        assert record.version == 8

    def test_an_idempotency_key_used_twice_in_one_group_appends_once(self, committer,
                                                                      container):
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(
                lambda _: committer.submit(firm(5), recorded_by=TEST_WRITER,
                                           idempotency_key="k-5", fingerprint="f"),
                range(8)))
        assert {a.body["position"] for a in answers} == {1}
        assert container.store.head().position == 1

    def test_a_create_repeated_within_one_group_is_answered_after_the_commit(self, container):
        # Two identical creates land in the same group: the second repeats the first's record,
        # which is only staged; it is answered with the first's position once committed.
        from infra.group_commit import _Request

        group = GroupCommitter(AppendService(container))
        first = _Request(firm(9), TEST_WRITER, None, "")
        second = _Request(firm(9), TEST_WRITER, None, "")
        group._commit([first, second])
        assert first.answer is not None
        assert second.answer is not None
        assert (first.answer.status, second.answer.status) == (201, 200)
        assert first.answer.body["position"] == second.answer.body["position"] == 1
        assert container.store.head().position == 1
