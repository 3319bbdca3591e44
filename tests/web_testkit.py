"""Helpers for web tests (imported by tests/web/conftest.py and by any test that serves the app):
a live uvicorn server on a free port, logging in through the real form, reading a page's CSRF token."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "web" / "artifacts"
PASSWORD = "correct horse battery"
STARTUP_TIMEOUT = 30.0


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=STARTUP_TIMEOUT)


def start_server(app: FastAPI) -> LiveServer:
    """Serve ``app`` on 127.0.0.1 on a port the kernel picks, until ``stop``; returns once it accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn-test")
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test web server did not start")
        time.sleep(0.01)
    return LiveServer(url=f"http://127.0.0.1:{port}", server=server, thread=thread)


def login(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    """Log in through the real form (fetching it first for its CSRF token), as a browser would."""
    form = client.get("/login")
    token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token, "next": "/"})


def page_csrf(html: str) -> str:
    return html.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]
