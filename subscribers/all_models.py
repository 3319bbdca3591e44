"""Importing this module registers every subscribers table with SQLModel's metadata (for Alembic)."""

from subscribers.geo_models import Vessel, VesselChange, VesselPosition, VesselZoneVisit, ZonePolygon
from subscribers.models import Subscriber, Subscription, SubscriptionChange

__all__ = [
    "Subscriber", "Subscription", "SubscriptionChange", "Vessel", "VesselPosition", "VesselZoneVisit", "ZonePolygon",
    "VesselChange",
]
