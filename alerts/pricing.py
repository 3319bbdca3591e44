"""Prices over time and the old route's baseline: ``[[prices]]``, ``[baseline]``, exact money.

Contracts change (a reseller's promotion ends, a government rate is renegotiated), so a message is priced
at the entry in force when it went out, never at today's price. Money is :class:`~decimal.Decimal` in
Python and an integer count of 1/10,000 KRW in the database (:data:`MONEY_SCALE`): government rates have
three decimals (8.063 KRW) and a VAT-included price divided by 1.1 needs a fourth; integers sum exactly
on SQLite and PostgreSQL alike, where a float column drifts over millions of rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from alerts.render import KST

#: Ledger amounts are integers in units of 1/10,000 KRW.
MONEY_SCALE = 10_000
CHANNELS = ("alimtalk", "sms", "lms", "mms")
BASELINE_MODES = ("auto", "sms", "lms")
VAT_RATE = Decimal("0.1")
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


class PricingError(ValueError):
    """A bad ``[[prices]]`` / ``[baseline]`` entry; ``key`` is the dotted TOML key shown to the operator."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def to_units(amount: Decimal) -> int:
    """KRW -> integer 1/10,000 KRW (half up: the one rounding step, made once per price, never per sum)."""
    return int((amount * MONEY_SCALE).to_integral_value(rounding=ROUND_HALF_UP))


def from_units(units: int | None) -> Decimal:
    """Integer 1/10,000 KRW -> KRW, exact."""
    return Decimal(int(units or 0)) / MONEY_SCALE


def money(value: Decimal) -> int | float:
    """A KRW amount for JSON: an int when whole, else the float whose shortest form is the exact decimal
    (four decimals at most, so the printed number is the decimal itself)."""
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """One contract's prices from ``effective`` on, KRW per message, VAT excluded (converted when the
    entry was written VAT included)."""

    effective: date
    alimtalk: Decimal
    sms: Decimal
    lms: Decimal
    mms: Decimal
    #: None: any provider (the single ``[prices]`` table).
    provider: str | None = None
    #: Whether the operator wrote the prices with VAT (kept to say so in reports).
    vat_included: bool = False

    def of(self, channel: str) -> Decimal:
        return getattr(self, channel)


@dataclass(frozen=True, slots=True)
class InvoiceMonth:
    """A month before adoption, from the old SMS/LMS route's invoice: what it really cost."""

    month: str
    messages: int
    cost: Decimal
    provider: str | None = None
    note: str = ""


@dataclass(slots=True)
class PriceBook:
    """Every price entry, the baseline mode, and the old invoices."""

    entries: list[PriceEntry]
    baseline_mode: str = "auto"
    invoices: list[InvoiceMonth] = field(default_factory=list)

    def entry_at(self, provider: str | None, when: datetime | date) -> PriceEntry:
        """The entry in force for ``provider`` at ``when`` (KST date). Entries naming the provider win over
        entries for any provider; a provider with none of either (the dry run) uses them all. Before the
        first effective date the earliest entry applies (the ledger must price every message)."""
        day = when.astimezone(KST).date() if isinstance(when, datetime) else when
        own = [e for e in self.entries if e.provider is not None and e.provider == provider]
        candidates = own or [e for e in self.entries if e.provider is None] or self.entries
        in_force = [e for e in candidates if e.effective <= day]
        if not in_force:
            return min(candidates, key=lambda e: e.effective)
        return max(in_force, key=lambda e: e.effective)

    def price(self, provider: str | None, when: datetime | date, channel: str) -> Decimal:
        return self.entry_at(provider, when).of(channel)

    def vat_included_anywhere(self) -> bool:
        return any(e.vat_included for e in self.entries)

    def invoice(self, month: str) -> InvoiceMonth | None:
        found = [i for i in self.invoices if i.month == month]
        if not found:
            return None
        return InvoiceMonth(month=month, messages=sum(i.messages for i in found), cost=sum(
            (i.cost for i in found), Decimal(0)), note="; ".join(i.note for i in found if i.note))


def single_entry(alimtalk: float, sms: float, lms: float, mms: float | None = None) -> PriceEntry:
    """The legacy ``[prices]`` table: one entry, any provider, effective forever."""
    return PriceEntry(effective=date.min, alimtalk=_dec(alimtalk), sms=_dec(sms), lms=_dec(lms),
                      mms=_dec(mms if mms is not None else lms))


def parse_price_entries(raw: list[Any]) -> list[PriceEntry]:
    """``[[prices]]`` -> entries; a clear error naming the entry and key."""
    entries: list[PriceEntry] = []
    for index, item in enumerate(raw):
        where = f"[[prices]] #{index + 1}"
        if not isinstance(item, dict):
            raise PricingError(where, "must be a table")
        effective = item.get("effective")
        if isinstance(effective, datetime):
            effective = effective.date()
        elif isinstance(effective, str):
            try:
                effective = date.fromisoformat(effective)
            except ValueError:
                raise PricingError(f"{where} effective", f"{effective!r} is not a date (YYYY-MM-DD)") from None
        if not isinstance(effective, date):
            raise PricingError(f"{where} effective", "required, a date (effective = 2026-01-01)")
        provider = item.get("provider")
        if provider is not None and (not isinstance(provider, str) or not provider.strip()):
            raise PricingError(f"{where} provider", "must be a provider name such as \"nhn\"")
        vat = item.get("vat", "excluded")
        if vat not in ("excluded", "included"):
            raise PricingError(f"{where} vat", f"must be \"excluded\" or \"included\", not {vat!r}")
        values: dict[str, Decimal] = {}
        for channel in CHANNELS:
            if channel not in item:
                if channel == "mms":
                    continue
                raise PricingError(f"{where} {channel}", "required, KRW per message")
            values[channel] = _amount(item[channel], f"{where} {channel}")
        values.setdefault("mms", values["lms"])
        if vat == "included":
            values = {k: v / (1 + VAT_RATE) for k, v in values.items()}
        values = {k: from_units(to_units(v)) for k, v in values.items()}
        entries.append(PriceEntry(effective=effective, provider=provider, vat_included=vat == "included",
                                  **values))
    seen: set[tuple[str | None, date]] = set()
    for e in entries:
        if (e.provider, e.effective) in seen:
            raise PricingError("[[prices]] effective",
                               f"two entries for provider {e.provider or 'any'} from {e.effective}")
        seen.add((e.provider, e.effective))
    if not entries:
        raise PricingError("[[prices]]", "at least one entry")
    return entries


def parse_baseline(raw: dict[str, Any]) -> tuple[str, list[InvoiceMonth]]:
    """``[baseline] mode`` and ``[[baseline.invoices]]`` (months before adoption, from old invoices)."""
    mode = raw.get("mode", "auto")
    if mode not in BASELINE_MODES:
        raise PricingError("[baseline] mode", f"must be one of {', '.join(BASELINE_MODES)}, not {mode!r}")
    invoices_raw = raw.get("invoices", [])
    if not isinstance(invoices_raw, list):
        raise PricingError("[[baseline.invoices]]", "must be an array of tables")
    invoices: list[InvoiceMonth] = []
    for index, item in enumerate(invoices_raw):
        where = f"[[baseline.invoices]] #{index + 1}"
        if not isinstance(item, dict):
            raise PricingError(where, "must be a table")
        month = item.get("month")
        if not isinstance(month, str) or not _MONTH.fullmatch(month):
            raise PricingError(f"{where} month", "required, \"YYYY-MM\"")
        messages = item.get("messages")
        if isinstance(messages, bool) or not isinstance(messages, int) or messages < 0:
            raise PricingError(f"{where} messages", "required, a whole number of messages")
        cost = _amount(item.get("cost_krw"), f"{where} cost_krw")
        vat = item.get("vat", "excluded")
        if vat not in ("excluded", "included"):
            raise PricingError(f"{where} vat", f"must be \"excluded\" or \"included\", not {vat!r}")
        if vat == "included":
            cost = from_units(to_units(cost / (1 + VAT_RATE)))
        provider = item.get("provider")
        note = item.get("note", "")
        if not isinstance(note, str):
            raise PricingError(f"{where} note", "must be a string")
        invoices.append(InvoiceMonth(month=month, messages=messages, cost=cost,
                                     provider=provider if isinstance(provider, str) else None, note=note))
    return mode, invoices


def _amount(value: Any, key: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PricingError(key, f"must be a number of KRW, not {value!r}")
    amount = _dec(value)
    if not amount.is_finite() or amount < 0:
        raise PricingError(key, f"must be a number of KRW at least 0, not {value!r}")
    return amount


def _dec(value: int | float | str) -> Decimal:
    """TOML floats through their shortest text (8.063 stays 8.063, not 8.0629999...)."""
    try:
        return Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        return Decimal("NaN")
