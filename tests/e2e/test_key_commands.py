"""`chipledger keys list` and `chipledger keys revoke`, on SQLite and on PostgreSQL: what an
operator sees of the keys (never a key or its hash), and a revocation every server honours
once its key cache lets go, within 5 seconds."""

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import infra.keys
from api.app import create_app
from api.cli import cli as chipledger
from infra.keys import KEY_CACHE_SECONDS, KeyRing, Role, digest
from infra.seal import format_time


class Clock:
    """The key cache's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keys_command(database_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(chipledger, ["keys", *args], env={
        "CHIPLEDGER_DATABASE_URL": database_url, "CHIPLEDGER_LOG_LEVEL": "warning"})
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"crashed: {result.exception!r}\n{result.output}"
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(infra.keys, "_clock", moved)
    return moved


class TestKeysList:
    def test_lists_every_key_with_its_role_and_times_never_the_key_or_its_hash(
            self, container, database_url, restore_logging):
        ring = KeyRing(container.store)
        made = {role: ring.create(role, f"{role.value} of the audit team") for role in Role}
        revoked_id = made[Role.WRITER][0]
        ring.revoke(revoked_id)
        code, out, _ = keys_command(database_url, "list")
        assert code == 0
        header, *lines = out.splitlines()
        assert header.split() == ["KEY", "ID", "ROLE", "CREATED", "REVOKED", "NAME"]
        assert len(lines) == len(Role)
        rows = {line.split()[0]: line.split(maxsplit=4) for line in lines}
        for role, (key_id, key) in made.items():
            _, shown_role, created, revoked, name = rows[key_id]
            assert (shown_role, name) == (role.value, f"{role.value} of the audit team")
            assert created.endswith("Z")
            assert (revoked != "-") == (key_id == revoked_id)
            assert key not in out
            assert key.split("_", 2)[2] not in out
            assert digest(key) not in out

    def test_an_empty_ring_lists_only_the_header(self, container, database_url,
                                                 restore_logging):
        code, out, _ = keys_command(database_url, "list")
        assert (code, len(out.splitlines())) == (0, 1)


class TestKeysRevoke:
    def test_a_revoked_key_is_refused_once_the_servers_cache_lets_go(
            self, container, database_url, clock, restore_logging):
        ring = KeyRing(container.store)
        key_id, key = ring.create(Role.READER, "contractor")
        kept_id, kept = ring.create(Role.READER, "staff")
        with TestClient(create_app(container=container)) as client:
            # Step 1: the key works, and the server now trusts it for 5 seconds.
            headers = {"Authorization": f"Bearer {key}"}
            assert client.get("/v1/integrity", headers=headers).status_code == 200
            # Step 2: an operator revokes it.
            code, out, _ = keys_command(database_url, "revoke", key_id)
            assert code == 0
            assert out.startswith(f"revoked reader key {key_id} (contractor) at ")
            assert "within 5 s" in out
            # Step 3: within the cache's 5 seconds the server may still admit it ...
            clock.now += KEY_CACHE_SECONDS - 0.5
            assert client.get("/v1/integrity", headers=headers).status_code == 200
            # Step 4: ... and once they have passed it refuses it, as an unknown key.
            clock.now += 1.0
            refused = client.get("/v1/integrity", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["detail"] == "unknown or revoked API key"
            # Step 5: other keys are untouched; the list shows the revocation.
            assert client.get("/v1/integrity",
                              headers={"Authorization": f"Bearer {kept}"}).status_code == 200
        listed = {row.key_id: row for row in ring.all_keys()}
        assert listed[key_id].revoked_at is not None
        assert listed[kept_id].revoked_at is None

    def test_revoking_again_keeps_the_first_revocation(self, container, database_url,
                                                       restore_logging):
        ring = KeyRing(container.store)
        key_id, _ = ring.create(Role.WRITER)
        first = ring.revoke(key_id)
        code, out, _ = keys_command(database_url, "revoke", key_id)
        assert code == 0
        assert first is not None
        assert first.revoked_at is not None
        assert ring.all_keys()[0].revoked_at == first.revoked_at
        assert f"at {format_time(first.revoked_at)};" in out

    def test_an_unknown_id_is_a_clear_message_and_exit_1(self, container, database_url,
                                                          restore_logging):
        ring = KeyRing(container.store)
        ring.create(Role.ADMIN, "root")
        code, out, err = keys_command(database_url, "revoke", "deadbeef")
        assert code == 1
        assert out == ""
        assert err.strip() == "no API key has the id 'deadbeef'; `chipledger keys list` " \
            "shows them"
        assert [row.revoked_at for row in ring.all_keys()] == [None]
