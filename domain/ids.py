"""Client-chosen record ids and the aggregate UUIDs derived from them."""

import re
from functools import lru_cache
from uuid import UUID, uuid5

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)

# Fixed forever: changing it would orphan every stored aggregate.
LEDGER_NAMESPACE = UUID("6f1c6c2e-2f59-5b8e-9a39-2a4c0c1d7e55")


def is_record_id(value: str) -> bool:
    # fullmatch: with match, the pattern's `$` would let a trailing newline through
    return bool(_ID_RE.fullmatch(value))


# uuid5 costs a SHA-1 and a UUID construction; a batch names the same records many times
# (targets, references, existence checks), so recent ids are remembered.
@lru_cache(maxsize=65_536)
def record_uuid(kind: str, record_id: str) -> UUID:
    """The aggregate id of a record: uuid5 of `kind:id`, so creates are naturally idempotent."""
    return uuid5(LEDGER_NAMESPACE, f"{kind}:{record_id}")
