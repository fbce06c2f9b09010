"""RFC 6962 section 2.1, written down as the RFC states it, to check the tree against.

D is a tuple of leaf byte strings and D[k:n] a slice; the RFC's "list : item" is
[*list, item]. Nothing here is shared with infra.merkle but SHA-256 itself. MTH is cached so
that the tests can ask for thousands of paths; the cache changes no result.
"""

import hashlib
from functools import cache

Leaves = tuple[bytes, ...]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def mth(d: Leaves) -> bytes:
    """2.1: the Merkle Tree Hash."""
    n = len(d)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + d[0])
    k = largest_power_of_two_below(n)
    return sha256(b"\x01" + mth(d[0:k]) + mth(d[k:n]))


def path(m: int, d: Leaves) -> list[bytes]:
    """2.1.1: the audit path of leaf m."""
    n = len(d)
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return [*path(m, d[0:k]), mth(d[k:n])]
    return [*path(m - k, d[k:n]), mth(d[0:k])]


def proof(m: int, d: Leaves) -> list[bytes]:
    """2.1.2: the consistency proof from the first m leaves to all of d."""
    return subproof(m, d, True)


def subproof(m: int, d: Leaves, b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return [*subproof(m, d[0:k], b), mth(d[k:n])]
    return [*subproof(m - k, d[k:n], False), mth(d[0:k])]
