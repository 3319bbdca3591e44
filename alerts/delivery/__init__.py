"""Delivery: the outbox drained to a provider at its pace.

``dispatch`` claims outbox rows and records outcomes, ``rate`` keeps to the account's per-second limit,
``sms`` chooses and shapes the SMS/LMS fallback, ``providers`` holds one adapter per provider API behind
:class:`alerts.delivery.providers.base.Provider`.
"""
