"""Check a chipledger log from outside, knowing only RFC 6962, C2SP signed notes and its key.

    python verify-it-yourself.py URL API_KEY VERIFIER_KEY POSITION [STATE_FILE]

Verifies the checkpoint's Ed25519 signature, that the event at POSITION (its leaf_hash in
GET /v1/events) is in the tree the checkpoint commits to and, with STATE_FILE, that the
checkpoint extends the one kept there (then keeps the new one). Standard library and
`cryptography` only; exit 1 on any failure.
"""

import base64
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

url, api_key, vkey, position = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
H = lambda *parts: hashlib.sha256(b"".join(parts)).digest()  # noqa: E731


def get(path):
    headers = {"Authorization": f"Bearer {api_key}"}
    request = urllib.request.Request(url + path, headers=headers)  # noqa: S310 - given
    with urllib.request.urlopen(request) as answer:  # noqa: S310 - the auditor's own URL
        return answer.read().decode()


def check(holds, why):
    if not holds:
        sys.exit(f"FAILED: {why}")


# 1. The checkpoint note: text, blank line, "— name base64(key ID || signature)" lines.
name, key_id, key = vkey.split("+", 2)  # the key's base64 may hold '+' itself
key_id = bytes.fromhex(key_id)
public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key)[1:])
note = get("/v1/integrity/checkpoint")
text, signatures = note.split("\n\n", 1)[0] + "\n", note.split("\n\n", 1)[1].splitlines()
mine = [base64.b64decode(s.split(" ")[2]) for s in signatures if s.split(" ")[1] == name]
check(any(s[:4] == key_id for s in mine), "no signature by the log's key")
public.verify(next(s for s in mine if s[:4] == key_id)[4:], text.encode())  # raises if forged
origin, size, root = text.splitlines()[0], int(text.splitlines()[1]), text.splitlines()[2]
root = base64.b64decode(root)
print(f"checkpoint of {origin}: {size} events, signature ok")

# 2. Inclusion (RFC 9162 2.1.3.2) of the event's leaf hash in that tree.
event = json.loads(get(f"/v1/events?after={position - 1}&limit=1"))["events"][0]
proof = json.loads(get(f"/v1/integrity/proofs/inclusion?position={position}&tree_size={size}"))
fn, sn, r = position - 1, size - 1, bytes.fromhex(event["leaf_hash"])
for p in map(bytes.fromhex, proof["hashes"]):
    check(sn > 0, "proof too long")
    if fn & 1 or fn == sn:
        r = H(b"\x01", p, r)
        while fn & 1 == 0 and fn:
            fn, sn = fn >> 1, sn >> 1
    else:
        r = H(b"\x01", r, p)
    fn, sn = fn >> 1, sn >> 1
check(sn == 0 and r == root, "the event is not in the tree the checkpoint commits to")
print(f"event {position} ({event['type']}) is in it")

# 3. Consistency (RFC 9162 2.1.4.2) with the checkpoint kept from last time.
state = Path(sys.argv[5]) if len(sys.argv) > 5 else None
if state and state.exists():
    old = json.loads(state.read_text())
    m, old_root = old["size"], base64.b64decode(old["root"])
    answer = json.loads(get(f"/v1/integrity/proofs/consistency?from_size={m}&to_size={size}"))
    path = [bytes.fromhex(h) for h in answer["hashes"]]
    check(m < size or (m == size and old_root == root), "the log shrank or forked")
    if m < size:
        path = [old_root, *path] if m & (m - 1) == 0 else path
        fn, sn = m - 1, size - 1
        while fn & 1:
            fn, sn = fn >> 1, sn >> 1
        fr = sr = path[0]
        for c in path[1:]:
            check(sn > 0, "proof too long")
            if fn & 1 or fn == sn:
                fr, sr = H(b"\x01", c, fr), H(b"\x01", c, sr)
                while fn & 1 == 0 and fn:
                    fn, sn = fn >> 1, sn >> 1
            else:
                sr = H(b"\x01", sr, c)
            fn, sn = fn >> 1, sn >> 1
        check(sn == 0 and fr == old_root and sr == root, "not consistent: rewritten or forked")
    print(f"consistent with the checkpoint of {m} events kept in {state}")
if state:
    state.write_text(json.dumps({"size": size, "root": base64.b64encode(root).decode()}))
