"""RFC 6962 / RFC 9162 hashing: the one place the tree's bytes are defined.

A leaf's hash is SHA-256(0x00 || leaf bytes), an interior node's SHA-256(0x01 || left || right);
the prefixes keep a leaf from ever passing for a node (second-preimage resistance). The root of
the empty tree is SHA-256 of no bytes.
"""

import hashlib

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(leaf: bytes) -> bytes:
    return _sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(NODE_PREFIX + left + right).digest()


def fold_right(hashes: list[bytes]) -> bytes:
    """The root of adjacent perfect subtrees, left to right, each smaller than the one before
    (a compact range): RFC 6962 hangs every smaller subtree under the larger one's right."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = _sha256(NODE_PREFIX + left + root).digest()
    return root
