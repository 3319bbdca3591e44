"""Subscribers: people, consent, zones, vessels, positions and the index that answers
"who is affected by this area". This package never imports ``alerts``."""
