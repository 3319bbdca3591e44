"""Alerts: the life of an alert from ingest to a costed delivery (imports ``feeds`` and ``subscribers``)."""
