"""Verifying proofs, as an outside verifier would: RFC 9162 sections 2.1.3.2 and 2.1.4.2.

These functions need nothing of the ledger: the hashing rules of infra.merkle.hashing, the
proof, and the roots a verifier trusts (from a signed checkpoint). Each step follows the RFC's
numbered text, so the code can be read against it; each raises ProofError, saying why.
"""

from collections.abc import Sequence

from infra.merkle.hashing import HASH_SIZE, node_hash


class ProofError(ValueError):
    """The proof does not prove what it was offered for."""


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """That the leaf with `leaf_hash` is at `index` in the tree of `size` with `root`."""
    if root_from_inclusion_proof(index, size, leaf_hash, proof) != root:
        raise ProofError("the proof leads to another root")


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2, steps 1-5 but the last
    comparison)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hashes([leaf_hash], "leaf hash")
    _check_hashes(proof, "proof hash")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("the proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof has fewer hashes than the tree has levels")
    return r


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """That the tree of size `first` with `first_root` is a prefix of the tree of size
    `second` with `second_root` (RFC 9162 2.1.4.2). The RFC defines the proof for
    0 < first < second; equal sizes need an empty proof and equal roots. From size 0 nothing
    is proved, and this refuses it, as transparency-dev/merkle does: a witness that has no
    checkpoint yet accepts its first one without a proof."""
    if first > second:
        raise ProofError(f"the first size {first} is larger than the second {second}")
    if first == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if first == second:
        _check_same_tree(proof, first_root, second_root)
        return
    if not proof:
        raise ProofError("the proof is empty")
    _check_hashes(proof, "proof hash")
    fr, sr, sn = _consistency_roots(first, second, proof, first_root)
    if sn != 0:
        raise ProofError("the proof has fewer hashes than the trees have levels")
    if fr != first_root:
        raise ProofError("the proof leads to another first root")
    if sr != second_root:
        raise ProofError("the proof leads to another second root")


def _consistency_roots(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes
) -> tuple[bytes, bytes, int]:
    """Steps 2-6 of RFC 9162 2.1.4.2: the two roots the proof leads to, and what is left of
    sn (0 when the proof had the right length)."""
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree is a node of the second
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof has more hashes than the trees have levels")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr, sr, sn


def _check_same_tree(proof: Sequence[bytes], first_root: bytes, second_root: bytes) -> None:
    if proof:
        raise ProofError("trees of one size need an empty proof")
    if first_root != second_root:
        raise ProofError("two trees of one size have different roots")


def _check_hashes(hashes: Sequence[bytes], what: str) -> None:
    for value in hashes:
        if len(value) != HASH_SIZE:
            raise ProofError(f"a {what} is {len(value)} bytes, not {HASH_SIZE}")
