"""Signed notes, checkpoints and witness cosignatures in the C2SP formats, checked against the
vectors the specs (github.com/C2SP/C2SP) and the Go reference (golang.org/x/mod/sumdb/note,
transparency-dev/formats) publish, and against tampering."""

import base64
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.merkle.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from infra.merkle.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    cosign,
    cosignature_time,
    cosigned_message,
    witnessed,
)
from infra.merkle.hashing import EMPTY_ROOT
from infra.merkle.note import (
    Ed25519Signer,
    Ed25519Verifier,
    InvalidSignatureError,
    MalformedNoteError,
    NoteError,
    UnverifiedNoteError,
    VerifierKey,
    format_note,
    open_note,
    parse_note,
    sign,
    sign_note,
)

# golang.org/x/mod/sumdb/note, note_test.go (BSD-3-Clause): keys, text and signatures
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = ("If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n")
PETER_SIG = ("— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqd"
             "ngotpRZb6KE6RyyBwJnAM=\n")
ENOCH_SIG = ("— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGw"
             "nWLox33WWd1RvMc+QQ=\n")
# c2sp.org/signed-note, "Example"
FOO_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
FOO_NOTE = ("This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXp"
            "pzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")
# c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature: the example checkpoint, cosigned
SOFA = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SOFA_NOTE = (SOFA + "\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOo"
             "RDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n— witness.example.com/w1 jWbPPwAAA"
             "ABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIU"
             "BkBIfZ+qnA==\n")
# transparency-dev/formats, note/note_cosigv1_test.go (BSD-3-Clause): a witness's vkey
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"

LOG_NAME = "ledger.example.com/chipledger"


def key(n: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32)


def clock_at(seconds: float) -> Callable[[], float]:
    return lambda: seconds


def fixed(seconds: int) -> CosignatureSigner:
    """A witness whose clock stands at `seconds`: one of seven, by the time it states."""
    return CosignatureSigner(f"witness.example/w{seconds % 7}", key(seconds % 7 + 10),
                             clock=clock_at(seconds))


class TestSignedNotes:
    def test_a_note_signed_with_the_go_reference_key_is_its_published_note(self) -> None:
        signer = Ed25519Signer.from_skey(PETER_SKEY)
        assert signer.vkey() == PETER_VKEY
        assert signer.skey() == PETER_SKEY
        assert sign_note(TEXT, signer) == TEXT + "\n" + PETER_SIG

    def test_a_verifier_key_is_read_and_written_back_unchanged(self) -> None:
        verifier = Ed25519Verifier.from_vkey(PETER_VKEY)
        assert (verifier.name, verifier.key_id.hex()) == ("PeterNeumann", "c74f20a3")
        assert verifier.vkey() == PETER_VKEY
        assert str(VerifierKey.parse(PETER_VKEY)) == PETER_VKEY

    def test_any_part_cut_from_a_verifier_key_or_any_byte_changed_is_refused(self) -> None:
        # the manglings of the Go reference's TestNewVerifier
        for start in range(len(PETER_VKEY)):
            for end in range(start + 1, len(PETER_VKEY) + 1):
                if (start, end) != (0, len(PETER_VKEY)):
                    with pytest.raises(NoteError):
                        Ed25519Verifier.from_vkey(PETER_VKEY[start:end])
        for at in range(len(PETER_VKEY)):
            changed = PETER_VKEY[:at] + chr(ord(PETER_VKEY[at]) + 1) + PETER_VKEY[at + 1:]
            with pytest.raises(NoteError):
                Ed25519Verifier.from_vkey(changed)

    def test_a_signer_key_whose_key_id_is_not_its_own_is_refused(self) -> None:
        with pytest.raises(NoteError, match="key ID"):
            Ed25519Signer.from_skey(PETER_SKEY.replace("c74f20a3", "c74f20a4"))
        with pytest.raises(NoteError, match="not a signer key"):
            Ed25519Signer.from_skey(PETER_SKEY.replace("PRIVATE+", "PUBLIC+"))

    def test_the_c2sp_example_note_verifies_with_its_verifier_key(self) -> None:
        note = open_note(FOO_NOTE, [Ed25519Verifier.from_vkey(FOO_VKEY)])
        assert note.text == "This is an example message.\n"
        assert [s.name for s in note.verified] == ["example.com/foo"]

    def test_signatures_of_known_keys_are_verified_and_the_others_set_aside(self) -> None:
        peter, enoch = (Ed25519Verifier.from_vkey(k) for k in (PETER_VKEY, ENOCH_VKEY))
        signed_twice = TEXT + "\n" + PETER_SIG + ENOCH_SIG
        one = open_note(signed_twice, [peter])
        assert one.text == TEXT
        assert [s.name for s in one.verified] == ["PeterNeumann"]
        assert [s.name for s in one.unverified] == ["EnochRoot"]
        both = open_note(signed_twice.encode(), [peter, enoch])
        assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"]
        assert both.unverified == ()

    def test_a_note_no_known_key_signed_is_refused(self) -> None:
        with pytest.raises(UnverifiedNoteError):
            open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
        with pytest.raises(UnverifiedNoteError):
            open_note(FOO_NOTE, [Ed25519Verifier.from_vkey(PETER_VKEY)])

    def test_a_signature_from_a_key_that_shares_only_its_name_or_its_id_is_ignored(
        self,
    ) -> None:
        peter = Ed25519Verifier.from_vkey(PETER_VKEY)
        renamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
        other_id = PETER_SIG.replace("x08g", "xxxx")
        for signature in (renamed, other_id):
            with pytest.raises(UnverifiedNoteError):
                open_note(TEXT + "\n" + signature, [peter])

    def test_a_known_key_whose_signature_fails_rejects_the_whole_note(self) -> None:
        peter = Ed25519Verifier.from_vkey(PETER_VKEY)
        forged = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
        with pytest.raises(InvalidSignatureError):
            open_note(TEXT + "\n" + forged + ENOCH_SIG, [peter])
        with pytest.raises(InvalidSignatureError):
            open_note(TEXT + "\n" + ENOCH_SIG + PETER_SIG + forged, [peter])

    def test_a_note_whose_text_was_changed_fails_its_signature(self) -> None:
        peter = Ed25519Verifier.from_vkey(PETER_VKEY)
        changed = TEXT.replace("answer", "Answer")
        with pytest.raises(InvalidSignatureError):
            open_note(changed + "\n" + PETER_SIG, [peter])

    @pytest.mark.parametrize("note", [
        TEXT, TEXT + "\n", TEXT + "\n" + PETER_SIG[:-1], "\x01" + TEXT + "\n" + PETER_SIG,
        (b"\xff" + (TEXT + "\n" + PETER_SIG).encode()),
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"),
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG * 101, TEXT + "\n— PeterNeumann \n",
        TEXT + "\n— PeterNeumann AAA=\n",
    ], ids=["text only", "no signature", "no final newline", "control character",
            "not UTF-8", "space in the name", "line after the signatures", "101 signatures",
            "no signature bytes", "fewer than five bytes"])
    def test_a_malformed_note_is_refused(self, note: str | bytes) -> None:
        with pytest.raises(MalformedNoteError):
            open_note(note, [Ed25519Verifier.from_vkey(PETER_VKEY)])

    def test_a_note_repeating_a_signature_verifies_it_once(self) -> None:
        note = open_note(TEXT + "\n" + PETER_SIG * 16, [Ed25519Verifier.from_vkey(PETER_VKEY)])
        assert len(note.verified) == 1

    def test_a_text_that_cannot_be_a_note_is_not_signed(self) -> None:
        signer = Ed25519Signer("log.example", key(1))
        for text in ("no final newline", "a tab\there\n"):
            with pytest.raises(MalformedNoteError):
                sign_note(text, signer)
        with pytest.raises(MalformedNoteError):
            format_note(TEXT, [])
        with pytest.raises(NoteError):
            Ed25519Signer("two words", key(1))

    def test_two_verifiers_for_one_name_and_key_id_are_refused(self) -> None:
        peter = Ed25519Verifier.from_vkey(PETER_VKEY)
        with pytest.raises(NoteError, match="share the name and key ID"):
            open_note(TEXT + "\n" + PETER_SIG, [peter, Ed25519Verifier.from_vkey(PETER_VKEY)])


class TestCheckpoints:
    def test_the_c2sp_example_checkpoint_is_read_and_written_back(self) -> None:
        checkpoint = parse_checkpoint(SOFA)
        assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
        assert checkpoint.body() == SOFA
        text, _ = parse_note(SOFA_NOTE)
        assert text == SOFA

    def test_extension_lines_follow_the_root_and_are_kept(self) -> None:
        checkpoint = Checkpoint(LOG_NAME, 0, EMPTY_ROOT, ("chain 1f00", "more"))
        assert checkpoint.body() == (f"{LOG_NAME}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
                                     "\nchain 1f00\nmore\n")
        assert parse_checkpoint(checkpoint.body()) == checkpoint

    @pytest.mark.parametrize("size", ["012", "+12", " 12", "1_000", "١٢", "", "-1", "1e3",
                                      str(2**63)])
    def test_a_size_that_is_not_plain_decimal_is_refused(self, size: str) -> None:
        with pytest.raises(CheckpointError):
            parse_checkpoint(SOFA.replace("20852163", size))

    @pytest.mark.parametrize("body", [
        SOFA[:-1], "example.com/log\n3\n", SOFA + "\n",
        SOFA.replace("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", "CsUYapGGPo4dkMgI"),
        SOFA.replace("q2I=", "q2J="), SOFA.replace("q2I=", "q2I"),
        "\n" + SOFA.split("\n", 1)[1],
    ], ids=["no final newline", "no root", "empty extension line", "short root",
            "not canonical base64", "unpadded base64", "no origin"])
    def test_a_malformed_checkpoint_is_refused(self, body: str) -> None:
        with pytest.raises(CheckpointError):
            parse_checkpoint(body)

    def test_a_signed_checkpoint_opens_only_for_its_origin_and_its_key(self) -> None:
        log = Ed25519Signer(LOG_NAME, key(1))
        checkpoint = Checkpoint(LOG_NAME, 12, bytes(range(32)))
        note = sign_checkpoint(checkpoint, log)
        assert open_checkpoint(note, LOG_NAME, [log.verifier])[0] == checkpoint
        with pytest.raises(CheckpointError, match=r"is of '.*', not 'other"):
            open_checkpoint(note, "other.example/log", [log.verifier])
        impostor = Ed25519Signer(LOG_NAME, key(2))
        with pytest.raises(UnverifiedNoteError):
            open_checkpoint(note, LOG_NAME, [impostor.verifier])
        with pytest.raises(InvalidSignatureError):
            open_checkpoint(note.replace("\n12\n", "\n13\n"), LOG_NAME, [log.verifier])

    def test_a_signed_note_that_is_not_a_checkpoint_is_refused_as_malformed(self) -> None:
        log = Ed25519Signer(LOG_NAME, key(1))
        with pytest.raises(MalformedNoteError, match="not a checkpoint"):
            open_checkpoint(sign_note("hello\n", log), LOG_NAME, [log.verifier])


class TestCosignatures:
    def test_the_c2sp_example_cosignature_carries_its_key_id_and_time(self) -> None:
        _, signatures = parse_note(SOFA_NOTE)
        witness = signatures[1]
        assert (witness.name, witness.key_id.hex()) == ("witness.example.com/w1", "8d66cf3f")
        assert cosignature_time(witness) == 1679315147  # "time 1679315147" in the spec

    def test_a_published_cosignature_time_is_read(self) -> None:
        raw = base64.b64decode("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt"
                               "97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==")
        _, signatures = parse_note(SOFA + "\n— w " + base64.b64encode(raw).decode() + "\n")
        assert cosignature_time(signatures[0]) == 1727964367

    def test_a_witness_key_is_read_only_as_a_cosignature_key(self) -> None:
        witness = CosignatureVerifier.from_vkey(REMORA_VKEY)
        assert (witness.name, witness.key_id.hex()) == ("remora.n621.de", "da77ade7")
        assert witness.vkey() == REMORA_VKEY
        with pytest.raises(NoteError, match="type 0x01"):
            Ed25519Verifier.from_vkey(REMORA_VKEY)
        with pytest.raises(NoteError, match="type 0x04"):
            CosignatureVerifier.from_vkey(PETER_VKEY)

    def test_a_cosignature_signs_the_timed_message_over_the_checkpoint(self) -> None:
        witness = fixed(1_700_000_000)
        line = cosign(SOFA, witness)
        assert line.key_id == witness.key_id != Ed25519Signer(witness.name, key(13)).key_id
        assert line.signature[:8] == (1_700_000_000).to_bytes(8, "big")
        message = b"cosignature/v1\ntime 1700000000\n" + SOFA.encode()
        assert cosigned_message(SOFA.encode(), 1_700_000_000) == message
        witness.private.public_key().verify(line.signature[8:], message)  # raises if not

    def test_a_checkpoint_cosigned_by_witnesses_says_who_and_when(self) -> None:
        log = Ed25519Signer(LOG_NAME, key(1))
        body = Checkpoint(LOG_NAME, 99, bytes(32)).body()
        w1, w2, stranger = fixed(1_700_000_001), fixed(1_700_000_002), fixed(1_700_000_003)
        note = format_note(body, [sign(body, log), cosign(body, w1), cosign(body, w2),
                                  cosign(body, stranger)])
        assert witnessed(note, [w1.verifier, w2.verifier]) == {
            w1.name: 1_700_000_001, w2.name: 1_700_000_002}
        opened = open_note(note, [log.verifier, w1.verifier])
        assert [s.name for s in opened.verified] == [LOG_NAME, w1.name]

    def test_a_cosignature_over_a_changed_checkpoint_or_time_fails(self) -> None:
        witness = fixed(1_700_000_004)
        line = cosign(SOFA, witness)
        changed = SOFA.replace("20852163", "20852164")
        with pytest.raises(InvalidSignatureError):
            witnessed(format_note(changed, [line]), [witness.verifier])
        retimed = (1_700_000_005).to_bytes(8, "big") + line.signature[8:]
        moved = format_note(SOFA, [type(line)(line.name, line.key_id, retimed)])
        with pytest.raises(InvalidSignatureError):
            witnessed(moved, [witness.verifier])

    def test_a_cosignature_covers_the_extension_lines(self) -> None:
        witness = fixed(1_700_000_006)
        body = SOFA + "Extendo\n"
        line = cosign(body, witness)
        with pytest.raises(InvalidSignatureError):
            witnessed(format_note(body.replace("Extendo", "Extend@"), [line]), [witness.verifier])

    def test_a_log_signature_never_passes_for_a_cosignature_of_the_same_key(self) -> None:
        private = key(5)
        log = Ed25519Signer("witness.example/same", private)
        witness = CosignatureSigner("witness.example/same", private, clock=clock_at(1))
        note = sign_note(SOFA, log)
        with pytest.raises(UnverifiedNoteError):  # the key IDs differ: 0x01 against 0x04
            witnessed(note, [witness.verifier])

    def test_a_cosigner_refuses_a_time_no_cosignature_can_state(self) -> None:
        for seconds in (0, -5, 2**63):
            witness = CosignatureSigner("witness.example/w", key(6), clock=clock_at(seconds))
            with pytest.raises(NoteError, match="time"):
                cosign(SOFA, witness)
