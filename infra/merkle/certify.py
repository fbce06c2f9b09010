"""Building proof-carrying answers (infra.merkle.certificate describes them): the signed
checkpoint covering every evidence position, integrating first when the tree lags the log."""

from typing import Any

from infra.bootstrap import Container
from infra.checkpoints import SigningKey
from infra.merkle.certificate import FORMAT, evidence_positions
from infra.merkle.integrator import Integrator
from infra.merkle.proving import Prover
from infra.merkle.publish import Published, TreePublisher
from infra.service import export_json


class Certifier:
    def __init__(self, container: Container, publisher: TreePublisher, prover: Prover) -> None:
        self.container, self.publisher, self.prover = container, publisher, prover

    def covering(self, position: int) -> Published:
        """The latest signed checkpoint, of a tree holding `position`. TreeRefusedError when
        the tree does not extend the last one signed."""
        published = self.publisher.latest()
        if published.signed.size < position:
            Integrator(self.container).catch_up()
            published = self.publisher.latest()
        return published

    def export_note(self, head_position: int) -> str | None:
        """The tree's checkpoint note (cosignatures included) for an export of the events up
        to `head_position`: the latest signed at that size or before it."""
        if head_position == 0:
            return None
        self.covering(head_position)
        signed = self.publisher.tree.signed_at_or_before(head_position)
        return self.publisher.published(signed).note if signed else None

    @classmethod
    def of(cls, container: Container, key: SigningKey) -> "Certifier":
        publisher = TreePublisher(container, key)
        return cls(container, publisher, Prover(publisher.tree))

    def proofs(self, posture: dict[str, Any]) -> dict[str, Any]:
        """What `?proofs=true` adds to an answer: its checkpoint and evidence proofs."""
        positions = evidence_positions(posture)
        published = self.covering(max(positions, default=0))
        size = published.signed.size
        return {"checkpoint": published.note, "tree_size": size,
                "inclusion": [self.prover.inclusion(p, size) for p in positions]}

    def certificate(self, posture: dict[str, Any]) -> dict[str, Any]:
        positions = evidence_positions(posture)
        published = self.covering(max(positions, default=0))
        size = published.signed.size
        evidence = []
        for position in positions:
            [entry] = self.container.store.entries(after=position - 1, limit=1)
            evidence.append({"event": export_json(entry),
                             "proof": self.prover.inclusion(position, size)})
        return {"format": FORMAT, "posture": posture, "checkpoint": published.note,
                "evidence": evidence}
