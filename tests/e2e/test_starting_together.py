"""What processes starting together share: the schema's tables and the signing key."""

import stat
from concurrent.futures import ThreadPoolExecutor

from infra.bootstrap import bootstrap
from infra.checkpoints import SigningKey
from infra.settings import Settings


class TestStartingTogether:
    def test_processes_bootstrapping_one_database_at_once_all_start(self, database_url):
        # Step 1: the tables exist already, as when a replica joins a running service.
        bootstrap(Settings(database_url=database_url)).close()

        def start(_: int) -> None:
            bootstrap(Settings(database_url=database_url)).close()

        # Step 2: six start at once; none deadlocks on the schema's DDL.
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(start, range(6)))

    def test_processes_creating_the_signing_key_at_once_share_one(self, tmp_path):
        path = tmp_path / "keys" / "signing-key.pem"
        with ThreadPoolExecutor(8) as pool:
            keys = list(pool.map(lambda _: SigningKey.load_or_create(path), range(8)))
        assert len({key.key_id for key in keys}) == 1
        assert SigningKey.load_or_create(path).key_id == keys[0].key_id
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no drafts left
