"""What maritime users touch without an account: subscribing, personal links, acknowledgements, reminders.

``models`` holds the tables (links, acknowledgements, verification codes, throttle events), ``settings`` reads
``[subscribe]``/``[reminders]``, ``links`` makes and resolves the personal ``/a/`` and ``/u/`` links, ``acks``
records a 확인, ``ack_stats`` counts them, ``reminders`` reminds the unconfirmed, ``verification`` and
``self_service`` carry the subscription page, ``throttle`` limits guessing.
"""
