"""Fixtures of the public-side tests (helpers live in ``public_testkit``, a uniquely named module)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
