"""An RFC 6962 / RFC 9162 Merkle tree over the log, and the C2SP formats that publish it.

Pure: hashlib and `cryptography`, no database. docs/merkle.md describes the tree, the proofs
and the note formats for an outside verifier.

- hashing: leaf and node hashes, the empty root
- compact: the compact range an integrator grows leaf by leaf, and restores after a crash
- store: the (level, index) -> hash store of perfect subtrees, and one in memory
- proofs: inclusion and consistency proofs, and earlier roots, from a store
- verify: checking both proofs, for anyone
- tree: a compact range and a store together
- note, checkpoint, cosignature: C2SP signed notes, tlog-checkpoint, tlog-cosignature
"""
