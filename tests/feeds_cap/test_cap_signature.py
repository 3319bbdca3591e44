"""CAP XML signatures: verified against pinned certificates per feed, refused when forged or tampered with.

Keys and certificates are made here (cryptography), alerts signed with signxml as a sender would, then
read through the real parsers: CAP documents, EDXL-DE envelopes and fat Atom feeds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alimcast_testkit import cap_xml, config_text
from cap_signing import SENT, Signer

from alerts.config import ConfigError, load_config
from feeds.atom import AtomParser
from feeds.base import ParseError
from feeds.cap import CapParser


@pytest.fixture
def kma(tmp_path: Path) -> Signer:
    return Signer(tmp_path, "kma-signer")


@pytest.fixture
def forger(tmp_path: Path) -> Signer:
    return Signer(tmp_path, "forger")


def alert(identifier: str = "W-SIG", severity: str = "Moderate") -> bytes:
    return cap_xml(identifier, sent=SENT, zones=["S1251100"], severity=severity)


def parser(mode: str, *certs: Signer) -> CapParser:
    return CapParser({"signature": mode, "trusted_certs": [str(c.path) for c in certs]})


def test_signed_alert_verifies_and_is_read(kma: Signer) -> None:
    (read,) = parser("require", kma).parse(kma.sign(alert()), origin="kma.xml").alerts
    assert (read.identifier, read.infos[0].severity) == ("W-SIG", "Moderate")


@pytest.mark.parametrize("mode", ["verify", "require"])
def test_tampered_alert_is_refused(kma: Signer, mode: str) -> None:
    forged = kma.sign(alert()).replace(b"<severity>Moderate</severity>", b"<severity>Extreme</severity>")
    with pytest.raises(ParseError, match=r"^kma.xml: alert W-SIG: XML signature does not verify .*Digest mismatch"):
        parser(mode, kma).parse(forged, origin="kma.xml")


def test_signed_by_an_untrusted_key_is_refused(kma: Signer, forger: Signer) -> None:
    with pytest.raises(ParseError, match="does not verify against any trusted certificate"):
        parser("verify", kma).parse(forger.sign(alert()), origin="kma.xml")
    # trusting both: the forger's key is then, by the operator's choice, a sender's key
    assert parser("verify", kma, forger).parse(forger.sign(alert())).alerts


def test_unsigned_alerts_under_each_mode(kma: Signer) -> None:
    assert parser("verify", kma).parse(alert()).alerts
    with pytest.raises(ParseError, match="unsigned alert refused"):
        parser("require", kma).parse(alert(), origin="kma.xml")


def test_ignore_reads_what_it_is_given(kma: Signer) -> None:
    forged = kma.sign(alert()).replace(b"Moderate", b"Extreme")
    (read,) = CapParser().parse(forged).alerts  # the default: signatures are not checked
    assert read.infos[0].severity == "Extreme"


def test_content_outside_the_signature_is_not_read(kma: Signer) -> None:
    """See what is signed: the reader gets the signed copy, so an element slipped in after signing fails the
    digest, and the signature must sit in <alert> itself."""
    signed = kma.sign(alert())
    wrapped = signed.replace(b"</alert>", b"<note>call 010-0000-0000 now</note></alert>")
    with pytest.raises(ParseError, match="does not verify"):
        parser("require", kma).parse(wrapped)


def test_fat_atom_feed_keeps_good_entries_and_names_the_forged_one(kma: Signer, forger: Signer) -> None:
    def entry(n: int, body: bytes) -> str:
        inner = body.split(b"?>", 1)[1].decode()
        return f"<entry><id>urn:e{n}</id><title>t</title><updated>2026-11-27T09:00:00Z</updated>" \
               f"<content type='text/xml'>{inner}</content></entry>"

    feed = ("<?xml version='1.0' encoding='UTF-8'?><feed xmlns='http://www.w3.org/2005/Atom'><id>urn:f</id>"
            "<title>f</title><updated>2026-11-27T09:00:00Z</updated>"
            + entry(1, kma.sign(alert("W-1"))) + entry(2, forger.sign(alert("W-2")))
            + entry(3, kma.sign(alert("W-3"))) + "</feed>").encode()
    result = AtomParser({"signature": "require", "trusted_certs": [str(kma.path)]}).parse(feed, origin="feed")
    assert [a.identifier for a in result.alerts] == ["W-1", "W-3"]
    assert len(result.errors) == 1
    assert result.errors[0].startswith("feed entry urn:e2: alert W-2: XML signature does not verify")


@pytest.mark.parametrize(("options", "key", "reason"), [
    ('{ signature = "maybe" }', "options.signature", "must be one of ignore, verify, require"),
    ('{ signature = "require" }', "options.trusted_certs", "needs at least one certificate"),
    ('{ signature = "verify", trusted_certs = ["missing.pem"] }', "options.trusted_certs", "missing.pem: cannot read"),
    ('{ signature = "verify", trusted_certs = ["config.toml"] }', "options.trusted_certs", "not a PEM X.509"),
])
def test_bad_signature_options_name_the_feed_and_option(tmp_path: Path, options: str, key: str, reason: str) -> None:
    text = config_text("sqlite:///x.db", [("kma", "cap", "bundled:kma_pungrang_sample.cap.xml")])
    text = text.replace("interval_seconds = 60\n", f"interval_seconds = 60\noptions = {options}\n", 1)
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "config.toml")
    assert err.value.key == f"[[feeds]] kma {key}" and reason in str(err.value)


def test_certificate_paths_are_relative_to_the_config_file(tmp_path: Path, kma: Signer) -> None:
    text = config_text("sqlite:///x.db", [("kma", "cap", "bundled:kma_pungrang_sample.cap.xml")])
    options = f'{{ signature = "require", trusted_certs = ["{kma.path.name}"] }}'
    text = text.replace("interval_seconds = 60\n", f"interval_seconds = 60\noptions = {options}\n", 1)
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    cfg = load_config(tmp_path / "config.toml")
    assert cfg.feeds[0].options["trusted_certs"] == [str(kma.path)]
