"""An RFC 6962 / RFC 9162 Merkle tree over the log, and the C2SP formats that publish it.

docs/merkle.md describes the tree, the proofs and the note formats for an outside verifier.
The core is pure (hashlib and `cryptography`, no database):

- hashing: leaf and node hashes, the empty root
- compact: the compact range an integrator grows leaf by leaf, and restores after a crash
- store: the (level, index) -> hash store of perfect subtrees, and one in memory
- proofs: inclusion and consistency proofs, and earlier roots, from a store
- verify: checking both proofs, for anyone
- tree: a compact range and a store together
- note, checkpoint, cosignature: C2SP signed notes, tlog-checkpoint, tlog-cosignature
- tiles: the tree as C2SP tiles and its edge, grown a batch at a time
- witness: what a witness checks before it cosigns, and keeps between runs
- certificate: proof-carrying posture answers, and their offline check

The ledger's side, on the database:

- tree_store: the tiles, the edge, signed notes and cosignatures in their tables
- integrator: keeps the tree of the sealed log (a background worker, one leader)
- leaves: an event's leaf bytes and leaf hash
- publish: signing checkpoints over extensions only, and keeping cosignatures
- proving, certify: proofs and certificates as the API answers them
"""
