"""Signing CAP alerts as real senders do, with keys and certificates made in the test."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import SignatureMethod, XMLSigner, methods

SENT = dt.datetime(2026, 11, 27, 9, tzinfo=dt.UTC)
XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"


class Signer:
    """A sender's EC key and self-signed certificate (valid from a day before ``SENT`` for a year, unless
    told otherwise), its PEM written beside the test's config."""

    def __init__(self, tmp_path: Path, name: str, *, valid_from: dt.datetime | None = None,
                 valid_until: dt.datetime | None = None) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(valid_from or SENT - dt.timedelta(days=1))
                     .not_valid_after(valid_until or SENT + dt.timedelta(days=365))
                     .sign(self.key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()
        self.path = tmp_path / f"{name.replace(' ', '-')}.pem"
        self.path.write_text(self.pem, encoding="ascii")

    def sign(self, document: bytes, *, signature_id: str | None = None) -> bytes:
        """An enveloped signature appended to ``<alert>``; ``signature_id`` is written on the ``<Signature>``
        afterwards, as NAADS does (``Id="NAADS Signature"``: not an ``xs:ID``, and not part of what is signed)."""
        key = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        signed = XMLSigner(method=methods.enveloped, signature_algorithm=SignatureMethod.ECDSA_SHA256).sign(
            etree.fromstring(document), key=key, cert=self.pem)
        if signature_id is not None:
            signed.findall(f"{{{XMLDSIG}}}Signature")[-1].set("Id", signature_id)
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
