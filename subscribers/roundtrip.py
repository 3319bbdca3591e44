"""``subscribers export`` then ``import`` keeps everything: zones, points, vessels, quiet hours, preferences,
paused status, and people who have only points or vessels.

Why a module of its own: the bulk CSV import (``subscribers.csv_import``) writes people and zones with
Core statements for a million rows a minute; points, vessels and a paused status are rare, so they are
applied afterwards, row by row, through the same store functions the CLI uses.

Columns added to the import header:

* ``points``: ``LAT,LON,RADIUS_KM`` places separated by ``;`` (``37.45,126.6,3;35.1,129.04,2``)
* ``vessels``: MMSIs separated by spaces (the vessel's name is kept in the vessel table, not per person)
* ``status``: ``active`` or ``paused`` (unsubscribed people are not exported)
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TextIO

from sqlmodel import Session, col, select

from subscribers import store
from subscribers.csv_import import _detect_encoding
from subscribers.models import Subscriber, Subscription
from subscribers.phone import PhoneError, mask
from subscribers.preferences import format_quiet_hours
from subscribers.vessels import VesselError, add_vessel

EXPORT_HEADER = store.CSV_HEADER + ("points", "vessels", "status")


def _fmt(value: float) -> str:
    return repr(float(value)).removesuffix(".0") if float(value).is_integer() else repr(float(value))


def export_all(session: Session, handle: TextIO) -> int:
    """Write active and paused people with everything they subscribed to; returns the number of rows."""
    zones = store.zones_by_subscriber(session)
    points: dict[int, list[str]] = {}
    vessels: dict[int, list[str]] = {}
    for sub in session.exec(select(Subscription).where(col(Subscription.kind).in_(("point", "vessel")))
                            .order_by(col(Subscription.id))):
        if sub.kind == "point":
            points.setdefault(sub.subscriber_id, []).append(
                f"{_fmt(sub.lat or 0)},{_fmt(sub.lon or 0)},{_fmt(sub.radius_km or 0)}")
        elif sub.mmsi is not None:
            vessels.setdefault(sub.subscriber_id, []).append(str(sub.mmsi))
    writer = csv.writer(handle)
    writer.writerow(EXPORT_HEADER)
    written = 0
    query = select(Subscriber).where(Subscriber.status != "unsubscribed").order_by(col(Subscriber.id))
    for p in session.exec(query):
        sid = p.id or 0
        writer.writerow((p.phone, p.name, " ".join(zones.get(sid, [])), p.min_severity, p.language,
                         " ".join(p.categories or []), format_quiet_hours(p.quiet_start_min, p.quiet_end_min),
                         " ".join(p.hazards or []), ";".join(points.get(sid, [])), " ".join(vessels.get(sid, [])),
                         p.status))
        written += 1
    return written


def apply_extras(session: Session, path: Path) -> list[str]:
    """After the bulk import of ``path``: add its points and vessels and set paused people paused.
    Lines the bulk import rejected (no such person now) are left alone; returns ``line N: why`` errors."""
    errors: list[str] = []
    with path.open("r", encoding=_detect_encoding(path), newline="") as handle:
        reader = csv.DictReader(handle)
        reader.fieldnames = [(f or "").strip().lower() for f in reader.fieldnames or []]
        if not {"points", "vessels", "status"} & set(reader.fieldnames):
            return errors
        for record in reader:
            line = reader.line_num
            points_text = (record.get("points") or "").strip()
            vessel_text = (record.get("vessels") or "").strip()
            status = (record.get("status") or "").strip().lower()
            if not (points_text or vessel_text or status == "paused"):
                continue
            try:
                person = store.get_by_phone(session, record.get("phone") or "")
            except PhoneError:
                continue  # already reported by the bulk import
            if person is None or person.id is None or person.status == "unsubscribed":
                continue
            try:
                places = [_point(text) for text in points_text.split(";") if text.strip()]
                if places:
                    store.add_subscriber(session, person.phone, [], points=places,
                                         consent_source=person.consent_source)
                for mmsi in vessel_text.replace(",", " ").split():
                    add_vessel(session, mmsi, subscribers=[person.id])
                if status == "paused" and person.status != "paused":
                    store.set_status(session, person.phone, "paused")
            except (ValueError, VesselError) as exc:
                errors.append(f"line {line}: {mask(person.phone)}: {exc}")
    return errors


def _point(text: str) -> tuple[float, float, float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise ValueError(f"point {text!r}: write LAT,LON,RADIUS_KM")
    lat, lon, radius = (float(p) for p in parts)
    return lat, lon, radius
