"""CAP XML signatures (XML-DSig, enveloped in ``<alert>``), checked against certificates the operator trusts.

A warning feed reached over plain HTTP, a mirror or a partner relay can be altered on the way; one forged
"태풍경보" reaches a whole coast. CAP lets the sender sign each alert. Per feed, an operator chooses:

- ``ignore`` (the default): signatures are allowed where CAP puts them and not checked (KMA does not sign);
- ``verify``: a signed alert must verify against one of ``trusted_certs`` or it is refused; unsigned pass.
  This only catches a damaged or forged signature: whoever can alter an alert on the way can also strip
  its signature. It is for a feed that is moving to signing;
- ``require``: every alert must be signed and verify. The setting for any feed that signs.

Trust is pinned: ``trusted_certs`` are the sender's signing certificates (PEM files), not a CA bundle, because
warning senders sign with long-lived organisational certificates and a public CA says nothing about who may
issue a tsunami warning. signxml does the cryptography; following its "see what is signed" rule, the alert
read afterwards is the copy signxml returns as signed, and the signature must sit directly in ``<alert>`` and
cover it whole (one reference, the enveloped-signature form CAP 1.2 describes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature

from feeds.base import ParseError

MODES = ("ignore", "verify", "require")
XMLDSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
_SIGNATURE_TAG = f"{{{XMLDSIG_NAMESPACE}}}Signature"
_IN_ALERT = SignatureConfiguration(location="./", expect_references=1)


class SignatureOptionError(ValueError):
    """A feed's signature options are unusable; ``option`` names which one."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    mode: str = "ignore"
    #: PEM text of each trusted signing certificate.
    certificates: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SignaturePolicy:
        """Read ``signature`` and ``trusted_certs`` (PEM file paths) from a feed's options."""
        mode = options.get("signature", "ignore")
        if mode not in MODES:
            raise SignatureOptionError("signature", f"must be one of {', '.join(MODES)}, not {mode!r}")
        paths = options.get("trusted_certs", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise SignatureOptionError("trusted_certs", "must be a list of PEM file paths")
        if mode != "ignore" and not paths:
            raise SignatureOptionError("trusted_certs", f"signature = {mode!r} needs at least one certificate")
        pems: list[str] = []
        for path in paths:
            try:
                pem = Path(path).read_text(encoding="ascii")
                x509.load_pem_x509_certificate(pem.encode("ascii"))
            except OSError as exc:
                raise SignatureOptionError("trusted_certs", f"{path}: cannot read: {exc.strerror or exc}") from None
            except ValueError:
                raise SignatureOptionError("trusted_certs", f"{path}: not a PEM X.509 certificate") from None
            pems.append(pem)
        return cls(mode, tuple(pems))

    def alert_to_read(self, alert: etree._Element, origin: str) -> etree._Element:
        """The ``<alert>`` element to read: as given (ignore, or unsigned under verify), or the verified copy.

        Raises :class:`ParseError` naming ``origin`` for an unsigned alert under ``require`` and for any
        signature that does not verify against a trusted certificate.
        """
        if self.mode == "ignore":
            return alert
        if alert.find(_SIGNATURE_TAG) is None:
            if self.mode == "require":
                raise ParseError(_where(origin, "unsigned alert refused (the feed requires XML signatures)"))
            return alert
        reasons: list[str] = []
        for pem in self.certificates:
            try:
                result = XMLVerifier().verify(alert, x509_cert=pem, expect_config=_IN_ALERT)
            except (InvalidSignature, InvalidDigest, InvalidCertificate, InvalidInput) as exc:
                reasons.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                continue
            signed = result.signed_xml  # type: ignore[union-attr]
            if signed is None or signed.tag != alert.tag:
                raise ParseError(_where(origin, "the XML signature does not cover the whole <alert>"))
            return signed
        why = reasons[-1] if reasons else "no trusted certificate"
        raise ParseError(_where(origin, f"XML signature does not verify against any trusted certificate ({why})"))


def _where(origin: str, message: str) -> str:
    return f"{origin}: {message}" if origin else message
