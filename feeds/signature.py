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

What real senders write is verified, not what a schema validator would like them to write:

- Canada's aggregator (NAADS) and Environment Canada write ``Id="NAADS Signature"`` and
  ``Id="Environment Canada"``. A space makes those invalid as ``xs:ID``, so signxml's schema check refused
  every such alert before any cryptography ran. The structure is still checked against the XML-DSig
  schema, on a copy whose unusable ``Id`` values are replaced (an ``Id`` of the signature element is not
  part of what is signed: the enveloped-signature transform removes the whole element).
- An aggregator adds its own signature beside the originator's. The alert verifies when ONE trusted
  certificate verifies ONE of its signatures over the whole ``<alert>``: each signature is tried as the
  document stands (the later signer's digest covers the earlier signature) and with the other signatures
  set aside (the earlier signer never saw the later one). Either way what is read is the signed copy.
- Certificate validity is a policy (``cert_validity``): ``now`` (the default, for live feeds: a
  certificate that has expired or is not yet valid refuses the alert) or ``sent`` (the alert's own
  ``<sent>`` time, for replaying an archive of alerts signed years ago; never for a live feed, since an
  expired key may since have leaked and could sign back-dated alerts).
- Every failure is a one-line reason naming the document and the alert; no library exception escapes.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier

from feeds.base import ParseError

MODES = ("ignore", "verify", "require")
CERT_VALIDITY = ("now", "sent")
XMLDSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
_SIGNATURE_TAG = f"{{{XMLDSIG_NAMESPACE}}}Signature"
#: An ``xs:ID`` is an XML NCName: no spaces, no colon, not starting with a digit.
_NCNAME = re.compile(r"^[A-Za-z_][\w.\-]*$")


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
    #: When a certificate must be valid: ``now`` (live feeds) or at the alert's ``sent`` time (archives).
    cert_validity: str = "now"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SignaturePolicy:
        """Read ``signature``, ``trusted_certs`` (PEM file paths) and ``cert_validity`` from a feed's options."""
        mode = options.get("signature", "ignore")
        if mode not in MODES:
            raise SignatureOptionError("signature", f"must be one of {', '.join(MODES)}, not {mode!r}")
        validity = options.get("cert_validity", "now")
        if validity not in CERT_VALIDITY:
            raise SignatureOptionError("cert_validity",
                                       f"must be one of {', '.join(CERT_VALIDITY)}, not {validity!r}")
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
        return cls(mode, tuple(pems), validity)

    def alert_to_read(self, alert: etree._Element, origin: str) -> etree._Element:
        """The ``<alert>`` element to read: as given (ignore, or unsigned under verify), or the verified copy.

        Raises :class:`ParseError` naming ``origin`` and the alert for an unsigned alert under ``require`` and
        for an alert none of whose signatures verifies against a trusted certificate.
        """
        if self.mode == "ignore":
            return alert
        signatures = alert.findall(_SIGNATURE_TAG)
        where = _where(origin, f"alert {_child_text(alert, 'identifier') or '(no identifier)'}")
        if not signatures:
            if self.mode == "require":
                raise ParseError(f"{where}: unsigned alert refused (the feed requires XML signatures)")
            return alert
        try:
            config = self._expected(alert)
        except ValueError as exc:
            raise ParseError(f"{where}: {exc}") from None
        reasons: list[str] = []
        for signature in signatures:
            problem = _structure_problem(signature)
            if problem is not None:
                reasons.append(problem)
                continue
            for others_set_aside in (False, True):
                signed = self._verify_one(alert, signature, signatures, config, others_set_aside, reasons)
                if signed is not None:
                    if signed.tag != alert.tag:
                        raise ParseError(f"{where}: the XML signature does not cover the whole <alert>")
                    return signed
                if len(signatures) == 1:
                    break
        raise ParseError(f"{where}: XML signature does not verify against any trusted certificate "
                         f"({_best_reason(reasons)})")

    def _expected(self, alert: etree._Element) -> SignatureConfiguration:
        """One enveloped signature directly in ``<alert>`` with one reference, certificates checked at the
        policy's time."""
        when: datetime | None = None
        if self.cert_validity == "sent":
            sent = _child_text(alert, "sent")
            try:
                when = datetime.fromisoformat(sent or "")
            except ValueError:
                raise ValueError(f"cert_validity = 'sent' needs a readable <sent>, not {sent!r}") from None
            if when.tzinfo is None:
                raise ValueError(f"cert_validity = 'sent' needs a <sent> with a time zone, not {sent!r}")
        return SignatureConfiguration(location="./", expect_references=1, verification_time=when)

    def _verify_one(self, alert: etree._Element, signature: etree._Element, signatures: list[etree._Element],
                    config: SignatureConfiguration, others_set_aside: bool,
                    reasons: list[str]) -> etree._Element | None:
        """Verify ``signature`` with each trusted certificate; signxml checks the first ``<Signature>`` in
        ``<alert>``, so the one under test is moved first (or left alone) for the attempt and everything is
        put back as it was afterwards."""
        original = [(child, alert.index(child)) for child in signatures]
        for child in signatures:
            alert.remove(child)
        try:
            if others_set_aside:
                alert.insert(original[0][1], signature)
            else:
                for child, index in original:
                    alert.insert(index, child)
                if signatures[0] is not signature:
                    alert.remove(signature)
                    alert.insert(alert.index(signatures[0]), signature)
            for pem in self.certificates:
                try:
                    result = XMLVerifier().verify(alert, x509_cert=pem, expect_config=config, validate_schema=False)
                except Exception as exc:  # noqa: BLE001 - hostile input: every failure is a reason, never a crash
                    reasons.append(_reason(exc))
                    continue
                signed = result.signed_xml  # type: ignore[union-attr]
                return signed if signed is not None else alert.makeelement("unsigned")
            return None
        finally:
            for child in alert.findall(_SIGNATURE_TAG):
                alert.remove(child)
            for child, index in original:
                alert.insert(index, child)


def _structure_problem(signature: etree._Element) -> str | None:
    """The XML-DSig schema's verdict on a signature, with ``Id`` values that are not ``xs:ID`` tolerated."""
    checked = copy.deepcopy(signature)
    for number, element in enumerate(checked.iter()):
        value = element.get("Id")
        if value is not None and not _NCNAME.match(value):
            element.set("Id", f"id-{number}")
    try:
        XMLVerifier().validate_schema(checked)
    except Exception as exc:  # noqa: BLE001 - lxml's DocumentInvalid and anything else: a reason
        return f"malformed signature: {_reason(exc)}"
    return None


def _child_text(alert: etree._Element, name: str) -> str | None:
    for child in alert:
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return (child.text or "").strip() or None
    return None


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()).rstrip(":")
    if text == "Signature verification failed":
        return "the signature was not made with this certificate's key"
    return text[:300] if text else type(exc).__name__


def _best_reason(reasons: list[str]) -> str:
    """The most telling reason: an expired certificate or a digest mismatch says more than a key that did
    not match (which every other trusted certificate also reports)."""
    for marker in ("certificate has expired", "not yet valid", "Digest mismatch", "malformed signature"):
        for reason in reasons:
            if marker in reason:
                return reason
    return reasons[-1] if reasons else "no trusted certificate"


def _where(origin: str, message: str) -> str:
    return f"{origin}: {message}" if origin else message
