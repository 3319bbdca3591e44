"""The loopback NHN provider (alerts/testing/nhn_server.py) in a process of its own, for the rate benchmarks.

Why: in the sender's process, the loopback server's own work (parsing each request's JSON, checking and storing
every recipient, encoding the answer) takes the sender's GIL, and its stored requests grow the sender's heap
until Python's full garbage collections pause every thread for 100-200 ms (measured): both lengthen the time a
request holds its place in the send window, and so lower the rate the rule allows. A real provider runs on
other machines. The benchmarks print the figure with the server in the same process as well, as a floor.

The child runs without Python's full garbage collections (``gc.set_threshold`` with an unreachable third
threshold; young collections still run). Why: the server keeps every message it accepted, none of which is ever
garbage, and a full collection walks them all. Measured at 2,000/s (a 60 s fan-out): a full collection every 8-10 s,
pausing the server 12, 26, 51, 58, 86 and then 115 ms, the pause growing with the store, so a 300 s fan-out would
meet pauses of half a second. Each pause held the answer the dispatcher was waiting for, and the places in the send
window stayed empty meanwhile: a stall no provider on other machines puts into our process, and one the bare loop
and the dispatcher would both pay.

Only what the benchmarks read is forwarded (by name, over the child's stdin and stdout): the account's
arrivals and refusals.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _serve(kwargs: dict[str, Any]) -> None:
    """The child: one JSON line of keys out, then one JSON answer per attribute name read from stdin."""
    sys.path.insert(0, str(ROOT))
    from alerts.testing.nhn_server import NhnTestServer

    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 1 << 30)  # no full collection (see the module's docstring)

    with NhnTestServer(**kwargs) as srv:
        print(json.dumps({"base_url": srv.base_url, "app_key": srv.app_key, "secret_key": srv.secret_key,
                          "sender_key": srv.sender_key}), flush=True)
        for line in sys.stdin:
            value = getattr(srv, line.strip())
            print(json.dumps(value() if callable(value) else value), flush=True)


class ProviderProcess:
    """``NhnTestServer(**kwargs)`` served by a child process; reads the same attributes the benchmarks use.
    ``kwargs`` must be JSON (templates, account_limit_per_second, ...)."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._process: subprocess.Popen[str] | None = None
        self._info: dict[str, str] = {}

    def __enter__(self) -> ProviderProcess:
        self._process = subprocess.Popen([sys.executable, __file__, json.dumps(self._kwargs)], text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self._process.stdout.readline() if self._process.stdout else ""
        if not line:
            raise RuntimeError("the loopback provider's process did not start")
        self._info = json.loads(line)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is None:
            return
        if self._process.stdin:
            self._process.stdin.close()  # the child's loop ends, and with it the server
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout:
            self._process.stdout.close()

    def _ask(self, name: str) -> Any:
        assert self._process is not None and self._process.stdin and self._process.stdout
        self._process.stdin.write(name + "\n")
        self._process.stdin.flush()
        return json.loads(self._process.stdout.readline())
    @property
    def base_url(self) -> str:
        return self._info["base_url"]

    @property
    def app_key(self) -> str:
        return self._info["app_key"]

    @property
    def secret_key(self) -> str:
        return self._info["secret_key"]

    @property
    def sender_key(self) -> str:
        return self._info["sender_key"]

    @property
    def rate_refusals(self) -> int:
        return int(self._ask("rate_refusals"))

    def arrivals(self) -> list[tuple[float, int]]:
        return list(self._ask("arrivals"))

    def max_recipients_per_second(self) -> int:
        return int(self._ask("max_recipients_per_second"))


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
