"""Signatures as real senders write them (issue: NAADS and Environment Canada).

Canada's aggregator signs every alert beside the originator's signature, with ``Id`` values that contain a
space (``"NAADS Signature"``, ``"Environment Canada"``) — invalid as ``xs:ID``, which made the schema check
refuse every such alert as "parser crashed". These documents are made the same way here: the originator
signs, the aggregator signs the signed alert, both ``Id`` values are written as NAADS writes them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from alimcast_testkit import cap_xml, config_text
from cap_signing import SENT, XMLDSIG, Signer
from lxml import etree

from alerts.config import ConfigError, load_config
from feeds.atom import AtomParser
from feeds.base import ParseError
from feeds.cap import CapParser


def alert(identifier: str = "EC-1") -> bytes:
    return cap_xml(identifier, sent=SENT, zones=["S1251100"], severity="Severe")


def naads_signed(originator: Signer, aggregator: Signer, identifier: str = "EC-1") -> bytes:
    """The originator signs; the aggregator signs the already signed alert (its digest covers the first)."""
    first = originator.sign(alert(identifier), signature_id="Environment Canada")
    return aggregator.sign(first, signature_id="NAADS Signature")


def cap(mode: str, *certs: Signer, validity: str | None = None) -> CapParser:
    options: dict[str, object] = {"signature": mode, "trusted_certs": [str(c.path) for c in certs]}
    if validity is not None:
        options["cert_validity"] = validity
    return CapParser(options)


@pytest.fixture
def eccc(tmp_path: Path) -> Signer:
    return Signer(tmp_path, "Environment Canada")


@pytest.fixture
def naads(tmp_path: Path) -> Signer:
    return Signer(tmp_path, "NAADS")


def test_an_id_with_a_space_verifies(eccc: Signer) -> None:
    signed = eccc.sign(alert(), signature_id="NAADS Signature")
    assert b'Id="NAADS Signature"' in signed
    (read,) = cap("require", eccc).parse(signed, origin="naads.xml").alerts
    assert read.identifier == "EC-1"


@pytest.mark.parametrize("trusted", ["originator", "aggregator", "both"])
def test_two_signatures_verify_when_one_trusted_certificate_verifies_its_own(
        eccc: Signer, naads: Signer, trusted: str) -> None:
    document = naads_signed(eccc, naads)
    assert len(etree.fromstring(document).findall(f"{{{XMLDSIG}}}Signature")) == 2
    certs = {"originator": [eccc], "aggregator": [naads], "both": [eccc, naads]}[trusted]
    (read,) = cap("require", *certs).parse(document, origin="naads.xml").alerts
    assert (read.identifier, read.infos[0].severity) == ("EC-1", "Severe")


def test_two_signatures_from_untrusted_senders_are_refused(tmp_path: Path, eccc: Signer, naads: Signer) -> None:
    stranger = Signer(tmp_path, "stranger")
    with pytest.raises(ParseError, match=r"^naads.xml: alert EC-1: XML signature does not verify against any "
                                         r"trusted certificate \(the signature was not made with"):
        cap("require", stranger).parse(naads_signed(eccc, naads), origin="naads.xml")


def test_a_tampered_body_fails_both_signatures(eccc: Signer, naads: Signer) -> None:
    tampered = naads_signed(eccc, naads).replace(b"<severity>Severe</severity>", b"<severity>Extreme</severity>")
    with pytest.raises(ParseError, match=r"^naads.xml: alert EC-1: .*Digest mismatch"):
        cap("require", eccc, naads).parse(tampered, origin="naads.xml")


def test_the_verified_copy_is_what_is_read_and_the_document_is_left_as_it_was(eccc: Signer, naads: Signer) -> None:
    """Trying a signature moves the others aside; the element handed in must come back unchanged."""
    document = naads_signed(eccc, naads)
    root = etree.fromstring(document)
    before = etree.tostring(root)
    policy = CapParser({"signature": "require", "trusted_certs": [str(eccc.path)]}).signatures
    policy.alert_to_read(root, "naads.xml")
    assert etree.tostring(root) == before


def test_an_expired_certificate_is_refused_now_and_accepted_at_the_sent_time(tmp_path: Path) -> None:
    """A live feed checks validity now; replaying an archive checks it when the alert was sent."""
    old = Signer(tmp_path, "archive", valid_from=SENT - dt.timedelta(days=400), valid_until=SENT + dt.timedelta(days=1))
    signed = old.sign(alert("OLD-1"))
    # the certificate ended a day after the alert was sent, long before today
    with pytest.raises(ParseError, match=r"^archive.xml: alert OLD-1: .*certificate has expired"):
        cap("require", old).parse(signed, origin="archive.xml")
    (read,) = cap("require", old, validity="sent").parse(signed, origin="archive.xml").alerts
    assert read.identifier == "OLD-1"


def test_a_certificate_not_yet_valid_when_sent_is_refused_under_sent(tmp_path: Path) -> None:
    later = Signer(tmp_path, "later", valid_from=SENT + dt.timedelta(days=1),
                   valid_until=SENT + dt.timedelta(days=3650))
    with pytest.raises(ParseError, match=r"alert W-LATE: .*not yet valid"):
        cap("require", later, validity="sent").parse(later.sign(alert("W-LATE")), origin="x.xml")


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda d: d.replace(b"ecdsa-sha256", b"ecdsa-sha999"), "SignatureMethod|sha999|not a valid"),
    (lambda d: d.replace(b"<ds:SignatureValue>", b"<ds:SignatureValue>!!not base64!!"), ""),
    (lambda d: d.replace(b"<ds:SignedInfo>", b"<ds:SignedInfo><ds:Unexpected/>"), "malformed signature"),
    (lambda d: d.replace(b"<ds:Reference URI=\"\">", b"<ds:Reference URI=\"#nowhere\">"), ""),
])
def test_no_library_exception_escapes(eccc: Signer, damage, reason: str) -> None:  # noqa: ANN001
    """Whatever is wrong inside the signature, the answer is one line naming the document and the alert."""
    damaged = damage(eccc.sign(alert("W-BAD")))
    with pytest.raises(ParseError) as err:
        cap("require", eccc).parse(damaged, origin="bad.xml")
    text = str(err.value)
    assert text.startswith("bad.xml: alert W-BAD: ") and "\n" not in text
    assert "crashed" not in text
    if reason:
        assert any(part in text for part in reason.split("|")), text


def test_a_fat_atom_feed_of_naads_alerts(eccc: Signer, naads: Signer) -> None:
    def entry(n: int, body: bytes) -> str:
        inner = body.split(b"?>", 1)[1].decode()
        return f"<entry><id>urn:e{n}</id><title>t</title><updated>2026-11-27T09:00:00Z</updated>" \
               f"<content type='text/xml'>{inner}</content></entry>"

    feed = ("<?xml version='1.0' encoding='UTF-8'?><feed xmlns='http://www.w3.org/2005/Atom'><id>urn:f</id>"
            "<title>f</title><updated>2026-11-27T09:00:00Z</updated>"
            + entry(1, naads_signed(eccc, naads, "EC-1")) + entry(2, naads_signed(eccc, naads, "EC-2"))
            + "</feed>").encode()
    result = AtomParser({"signature": "require", "trusted_certs": [str(naads.path)]}).parse(feed, origin="feed")
    assert [a.identifier for a in result.alerts] == ["EC-1", "EC-2"] and not result.errors


def test_cert_validity_option_is_checked_at_config_load(tmp_path: Path, eccc: Signer) -> None:
    text = config_text("sqlite:///x.db", [("kma", "cap", "bundled:kma_pungrang_sample.cap.xml")])
    options = f'{{ signature = "require", trusted_certs = ["{eccc.path.name}"], cert_validity = "then" }}'
    text = text.replace("interval_seconds = 60\n", f"interval_seconds = 60\noptions = {options}\n", 1)
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "config.toml")
    assert err.value.key == "[[feeds]] kma options.cert_validity" and "must be one of now, sent" in str(err.value)
