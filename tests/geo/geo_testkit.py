"""Helpers the geo tests share: people to link vessels to, GeoJSON files of zone boxes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session

from subscribers.models import Subscriber


def add_person(session: Session, phone: str, status: str = "active") -> int:
    person = Subscriber(phone=phone, consent_at=datetime(2026, 1, 1, tzinfo=UTC), status=status)
    session.add(person)
    session.flush()
    assert person.id is not None
    return person.id


def write_geojson(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def box_feature(code: str, lon0: float, lat0: float, lon1: float, lat1: float, **props: str) -> dict:
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    return {"type": "Feature", "properties": {"WarnCode": code, **props},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}
