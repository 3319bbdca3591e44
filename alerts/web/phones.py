"""Phone numbers on pages: masked for everyone but admins (010-****-5678)."""

from __future__ import annotations

from subscribers.phone import mask as _mask


def mask_phone(phone: str | None) -> str:
    return _mask(phone) if phone else ""


def shown_phone(phone: str | None, *, admin: bool) -> str:
    """The number as this viewer may see it."""
    if not phone:
        return ""
    return phone if admin else mask_phone(phone)
