"""Running the app under uvicorn: in-process for one worker, by import string for several."""

from __future__ import annotations

import os

from fastapi import FastAPI

from alerts.config import CONFIG_ENV, load_config
from alerts.db import make_engine, upgrade
from alerts.web.app import create_app


def app_factory() -> FastAPI:
    """uvicorn's ``--factory`` entry for worker processes: the config path comes from $ALIMCAST_CONFIG."""
    config = load_config(os.environ.get(CONFIG_ENV) or None)
    engine = make_engine(config.database_url)
    upgrade(engine)
    return create_app(config, engine=engine)
