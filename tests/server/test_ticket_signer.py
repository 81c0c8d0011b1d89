"""TicketSigner's own token code against itsdangerous, which defines the format: the same
tokens, each side reading the other's, and every altered or foreign token refused."""

from __future__ import annotations

import hashlib

import pytest
from itsdangerous import URLSafeSerializer

from server.auth import TicketSigner

SECRET = "signer-test-secret-0123456789abcdef"
SALT = "vqueue.ticket.v1"
REFERENCE = URLSafeSerializer(SECRET, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})
SHA1 = URLSafeSerializer(SECRET, salt=SALT)

PLAIN = [
    ("demo.1", "AbCdEfGhIjKlMnOp"),
    ("front-desk.123456789", "x_-y"),
    ("q.0", ""),
    ("odd name [x]~!#.7", "n0nce"),
]
# Shapes the fast path leaves to itsdangerous: JSON escapes, non-ASCII.
ESCAPED = [("q.1", 'a"b'), ("q.2", "a\\b"), ("café.3", "n"), ("q.4", "del\x7f"), ("q.5", "\n")]


@pytest.mark.parametrize(("ticket_id", "nonce"), PLAIN + ESCAPED)
def test_tokens_are_the_ones_itsdangerous_makes(ticket_id: str, nonce: str) -> None:
    signer = TicketSigner(SECRET)
    token = signer.sign(ticket_id, nonce)
    assert token == REFERENCE.dumps([ticket_id, nonce])
    claim_payload = REFERENCE.loads(token)
    assert claim_payload == [ticket_id, nonce]


def test_a_compressible_payload_is_not_compressed_and_both_sides_read_both() -> None:
    signer = TicketSigner(SECRET)
    ticket_id, nonce = "a" * 60 + ".5", "b" * 16
    theirs = REFERENCE.dumps([ticket_id, nonce])
    assert theirs.startswith(".")  # itsdangerous compresses this one
    ours = signer.sign(ticket_id, nonce)
    assert not ours.startswith(".")
    assert REFERENCE.loads(ours) == [ticket_id, nonce]
    claim = signer.verify(theirs)  # a token an earlier version issued
    assert claim is not None and (claim.ticket_id, claim.nonce) == (ticket_id, nonce)


def test_a_token_is_read_back_as_its_claim() -> None:
    signer = TicketSigner(SECRET)
    for ticket_id, nonce in [("demo.1", "AbCd"), ("q.2", 'a"b')]:
        claim = signer.verify(signer.sign(ticket_id, nonce))
        assert claim is not None
        assert (claim.queue, claim.ticket_id, claim.nonce, claim.legacy) == (
            ticket_id.split(".")[0],
            ticket_id,
            nonce,
            False,
        )


def _altered(token: str) -> list[str]:
    payload, _, signature = token.rpartition(".")
    flipped = "A" if payload[3] != "A" else "B"
    return [
        payload[:3] + flipped + payload[4:] + "." + signature,  # payload changed
        payload + "." + signature[:-1] + ("A" if signature[-1] != "A" else "B"),  # signature
        payload + "." + signature[:-2],  # signature cut short
        payload,  # no signature at all
        "." + token,  # looks compressed
        token + ".",
        "\u00c4" + token[1:],  # non-ASCII
        TicketSigner("another-secret-0123456789abcdef").sign("demo.1", "nonce"),
        "",
        ".",
        "..",
        "not a token",
    ]


def test_altered_and_foreign_tokens_are_refused() -> None:
    signer = TicketSigner(SECRET)
    for bad in _altered(signer.sign("demo.1", "nonce")):
        assert signer.verify(bad) is None, bad


def test_a_sha1_token_is_a_legacy_claim() -> None:
    claim = TicketSigner(SECRET).verify(SHA1.dumps(["demo.9", "old"]))
    assert claim is not None and claim.legacy and claim.number == 9
