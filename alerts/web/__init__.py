"""The web application behind ``alimcast serve``: the operator console and the public pages.

Layout: ``app.py`` builds the FastAPI app; ``routes/`` holds one router per area (discovered, see
``routes/__init__.py``); ``auth.py``/``csrf.py`` hold the safety rules every page shares; ``templates/`` and
``static/`` are served by alimcast itself (no CDN, nothing fetched at run time).
"""
