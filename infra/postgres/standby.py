"""What a PostgreSQL hot standby says of its own replay: whether it is one, whether replay is
paused, and how many seconds of the primary's commits it has yet to replay."""

from dataclasses import dataclass

from infra.dialect import Dialect

# Seconds behind: 0 when everything received is replayed (an idle primary is no lag), else
# the age of the last commit replayed. pg_is_wal_replay_paused() is asked of a standby only.
_REPLAY = (
    "SELECT pg_is_in_recovery() AS standby, "
    "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS paused, "
    "CASE WHEN NOT pg_is_in_recovery() "
    "  OR pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
    "  ELSE EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END "
    "AS seconds")


@dataclass(frozen=True)
class Replay:
    standby: bool
    paused: bool
    seconds: float


def replay_of(dialect: Dialect) -> Replay:
    with dialect.transaction(commit=False) as cursor:
        cursor.execute(_REPLAY)
        row = cursor.fetchone()
    return Replay(bool(row["standby"]), bool(row["paused"]), float(row["seconds"] or 0))
