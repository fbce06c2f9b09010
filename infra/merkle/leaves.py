"""An event's leaf: the bytes the chain hashes for it (infra.seal.canonical_bytes), whose
RFC 6962 leaf hash is its `leaf_hash` in every answer and export."""

from infra.merkle.hashing import leaf_hash
from infra.seal import canonical_bytes
from infra.verify import Sealed


def leaf_bytes(entry: Sealed) -> bytes:
    return canonical_bytes(position=entry.position, recorded_at=entry.recorded_at,
                           recorded_by=entry.recorded_by, originator_id=entry.originator_id,
                           originator_version=entry.originator_version, topic=entry.topic,
                           state=entry.state)


def entry_leaf_hash(entry: Sealed) -> bytes:
    return leaf_hash(leaf_bytes(entry))
