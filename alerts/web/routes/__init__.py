"""One module per area of the web app; ``alerts.web.app.create_app`` includes every module's ``router``.

To add an area: create ``alerts/web/routes/<area>.py`` with ``router = APIRouter()`` and its handlers, and
templates in ``alerts/web/templates/`` (extend ``base.html`` for console pages). Nothing else to register.
- File name ``public_*.py``: reachable without login (health, login, CAP feed, the subscription pages).
- Any other name: every route needs a logged-in user; add ``Depends(require_role("operator"))`` for changes.
- Unsafe methods always pass the CSRF check: put ``<input type="hidden" name="csrf_token"
  value="{{ csrf_token }}">`` in forms (or send ``X-CSRF-Token``). A router authenticated otherwise (push
  ingest) names its paths in ``CSRF_EXEMPT_PREFIXES = ("/push/",)``.
- A console page appears in the navigation by ``NAV.add((order, path, label, role))``
  (``alerts.web.templating.NAV``) in its module.
"""
