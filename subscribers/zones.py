"""The KMA 특보구역 (warning zone) catalogue: codes, names, the group tree, and broad bulletin names.

Everything is keyed by code because names collide (고성군 is a zone in 강원 and in 경남). The tree is
built from the shipped CSVs (``subscribers/data``, read through importlib.resources so an installed
package finds them):

- marine ``S1…``: the CSV's inferred parent for leaf zones; groups by code (``S1XY1000`` 앞바다 group ->
  ``S1XY0000`` regional 전해상 -> ``S1X00000`` sea -> ``S1000000``). KMA numbers the Jeju zones inside
  남해서부 (``S1323…``, ``S1324…``) but groups them as 제주도전해상 ``S1330000``; that is encoded here.
- marine ``S2…`` (연안바다/평수구역): children of ``S2000000`` only. They are separate warning zones that
  a 풍랑 warning for the surrounding 앞바다 does not automatically cover, so they are *not* placed under
  the S1 zone; the S1 zone their name says they lie in is kept as ``Zone.within`` for display.
- land ``L1PPCCS0``: sub-zone -> 시군 (``L1PPCC00``) -> 시도 (``L1PP0000``) -> 전국 ``L1000000``, skipping
  levels the table does not have (인천광역시 ``L1110100`` sits directly under 전국). 강원 고성군 exists
  only as 고성군평지/고성군산지; the group ``L1022200`` 고성군 is inferred (``Zone.inferred``) so that the
  name 고성군 is, correctly, ambiguous.

Matching semantics (used by ``subscribers.store`` and ``subscribers.matching``): a subscription stores
the *leaf* codes of what the person asked for; an alert's codes are expanded to leaves the same way; a
person is matched when the two sets meet. So an alert for a group (``S1251000``) reaches the subscribers
of every leaf under it, an alert for a leaf reaches that leaf's subscribers (and people who subscribed to
any group containing it, since their subscription was stored as its leaves), and never its siblings.

Bulletins still use the pre-2021 broad 먼바다 names (서해중부먼바다 = 안쪽 + 바깥; 제주도남쪽먼바다 = its
three children). The broad-name map is derived from the data: drop 안쪽/바깥 from a 먼바다 name, and also
reduce a compound direction (남동쪽/남서쪽 -> 남쪽). A 전해상 group also answers to its short name
("서해" = 서해전해상) unless that name is a zone of its own (제주도 is the land zone).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

MARINE_FILE = "kma_marine_warning_zones.csv"
LAND_FILE = "kma_land_warning_zones.csv"

_CODE = re.compile(r"[LS]\d{7}")
_JEJU_GROUP = "S1330000"
_JEJU_PREFIXES = ("S1323", "S1324")
_S2_GROUP = "S2000000"
_NAME_NOISE = re.compile(r"[\s·.,]+")
_COMPOUND_DIRECTION = re.compile(r"([남북])[동서]쪽")


class ZoneError(ValueError):
    """An unknown or ambiguous zone; the message names the input."""


@dataclass(frozen=True, slots=True)
class Zone:
    code: str
    name: str
    kind: str  # "marine" or "land"
    parent: str | None
    #: True when the code is not in KMA's table but implied by its children (강원 고성군).
    inferred: bool = False
    #: For S2 연안바다/평수구역: the S1 zone named in it ("경북남부앞바다중 평수구역" -> S1131200).
    within: str | None = None


@dataclass
class ZoneCatalogue:
    zones: dict[str, Zone]
    children: dict[str, list[str]] = field(default_factory=dict)
    by_name: dict[str, list[str]] = field(default_factory=dict)
    broad_names: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for zone in self.zones.values():
            if zone.parent:
                self.children.setdefault(zone.parent, []).append(zone.code)
            self.by_name.setdefault(_name_key(zone.name), []).append(zone.code)
        for kids in self.children.values():
            kids.sort()
        for zone in self.zones.values():
            # "서해" for 서해전해상, "동해중부" for 동해중부전해상 (unless the short name is a zone itself,
            # as 제주도 is on land).
            short = zone.name.removesuffix("전해상")
            if zone.kind == "marine" and short and short != zone.name and _name_key(short) not in self.by_name:
                self.broad_names.setdefault(_name_key(short), []).append(zone.code)
            if zone.kind != "marine" or not zone.name.endswith("먼바다"):
                continue
            if "안쪽" not in zone.name and "바깥" not in zone.name:
                continue
            broad = zone.name.replace("안쪽", "").replace("바깥", "")
            for alias in {broad, _COMPOUND_DIRECTION.sub(r"\1쪽", broad)}:
                key = _name_key(alias)
                if key not in self.by_name:
                    self.broad_names.setdefault(key, []).append(zone.code)
        for codes in self.broad_names.values():
            codes.sort()

    # -- lookups -----------------------------------------------------------------------------------

    def get(self, code: str) -> Zone:
        try:
            return self.zones[code]
        except KeyError:
            raise ZoneError(f"zone {code!r}: unknown KMA zone code") from None

    def leaves(self, code: str) -> list[str]:
        """Leaf codes under ``code`` (itself when it is a leaf)."""
        self.get(code)
        out: list[str] = []
        stack = [code]
        while stack:
            current = stack.pop()
            kids = self.children.get(current)
            if kids:
                stack.extend(kids)
            else:
                out.append(current)
        return sorted(out)

    def resolve(self, code_or_name: str) -> list[str]:
        """The zone codes a code or name denotes (not expanded): one code, or a broad name's zones."""
        text = (code_or_name or "").strip()
        if not text:
            raise ZoneError("zone: empty")
        if _CODE.fullmatch(text.upper()):
            return [self.get(text.upper()).code]
        key = _name_key(text)
        codes = self.by_name.get(key)
        if codes is None:
            codes = self.broad_names.get(key)
            if codes is None:
                raise ZoneError(f"zone {text!r}: unknown zone name or code")
            return list(codes)
        if len(codes) > 1:
            options = ", ".join(f"{c} ({self._label(c)})" for c in codes)
            raise ZoneError(f"zone {text!r}: ambiguous name, give the code: {options}")
        return list(codes)

    def expand(self, code_or_name: str) -> list[str]:
        seen: set[str] = set()
        for code in self.resolve(code_or_name):
            seen.update(self.leaves(code))
        return sorted(seen)

    def ancestors(self, code: str) -> list[str]:
        """Parents from the nearest up to the top group."""
        out: list[str] = []
        parent = self.get(code).parent
        while parent is not None:
            out.append(parent)
            parent = self.zones[parent].parent
        return out

    def _label(self, code: str) -> str:
        zone = self.zones[code]
        parent = self.zones[zone.parent].name if zone.parent else ""
        return f"{zone.name} in {parent}" if parent else zone.name


def _name_key(name: str) -> str:
    """Names compare without spaces and separators ("인천·경기북부앞바다" = "인천경기북부앞바다")."""
    return _NAME_NOISE.sub("", name)


def _read_csv(filename: str) -> list[dict[str, str]]:
    text = (resources.files("subscribers") / "data" / filename).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _land_parent(code: str, known: set[str]) -> str | None:
    if code == "L1000000":
        return None
    candidates = (code[:6] + "00", code[:4] + "0000", "L1000000")
    return next(c for c in candidates if c != code and c in known)


def _marine_parent(row: dict[str, str], known: set[str]) -> str | None:
    code = row["reg_id"]
    if code in ("S1000000", _S2_GROUP):
        return None
    if code.startswith("S2"):
        return _S2_GROUP
    inferred = (row.get("reg_up_inferred") or "").strip()
    if inferred:
        return inferred
    if code.startswith(_JEJU_PREFIXES):
        return _JEJU_GROUP
    if code == _JEJU_GROUP:
        return "S1300000"
    candidates = (code[:5] + "000", code[:4] + "0000", code[:3] + "00000", "S1000000")
    return next(c for c in candidates if c != code and c in known)


def _within(name: str, names: dict[str, str]) -> str | None:
    head = name.split("중 ", 1)[0] if "중 " in name else None
    return names.get(_name_key(head)) if head else None


def _build() -> ZoneCatalogue:
    marine_rows = _read_csv(MARINE_FILE)
    land_rows = _read_csv(LAND_FILE)
    zones: dict[str, Zone] = {}

    marine_codes = {r["reg_id"] for r in marine_rows}
    s1_names = {_name_key(r["reg_ko"]): r["reg_id"] for r in marine_rows if r["reg_id"].startswith("S1")}
    for row in marine_rows:
        code = row["reg_id"]
        within = _within(row["reg_ko"], s1_names) if code.startswith("S2") else None
        zones[code] = Zone(code, row["reg_ko"], "marine", _marine_parent(row, marine_codes), within=within)

    land = {r["reg_id"]: r["reg_ko"] for r in land_rows}
    # Groups implied by sub-zones whose 시군 row is missing (강원 고성군평지/산지 -> 고성군).
    inferred: dict[str, str] = {}
    for code, name in land.items():
        group = code[:6] + "00"
        if code[6] != "0" and group not in land:
            siblings = sorted(land[c] for c in land if c[:6] == code[:6] and c != group)
            inferred[group] = _common_prefix(siblings) or name
    known = set(land) | set(inferred)
    for code, name in [*land.items(), *inferred.items()]:
        zones[code] = Zone(code, name, "land", _land_parent(code, known), inferred=code in inferred)
    return ZoneCatalogue(zones)


def _common_prefix(names: list[str]) -> str:
    if not names:
        return ""
    first, last = min(names), max(names)
    i = 0
    while i < min(len(first), len(last)) and first[i] == last[i]:
        i += 1
    return first[:i]


@lru_cache(maxsize=1)
def catalogue() -> ZoneCatalogue:
    return _build()


# -- module-level API --------------------------------------------------------------------------------


def expand(code_or_name: str) -> list[str]:
    """Leaf codes for a code, a group code, a zone name or a broad 먼바다 name; ZoneError otherwise."""
    return catalogue().expand(code_or_name)


def expand_many(items: Iterable[str]) -> list[str]:
    """Union of ``expand`` over several inputs, sorted; the first bad input raises."""
    out: set[str] = set()
    for item in items:
        out.update(expand(item))
    return sorted(out)


def resolve(code_or_name: str) -> list[str]:
    return catalogue().resolve(code_or_name)


def name(code: str) -> str:
    return catalogue().get(code).name


def get(code: str) -> Zone:
    return catalogue().get(code)


def is_known(code: str) -> bool:
    return code in catalogue().zones


def is_leaf(code: str) -> bool:
    return code in catalogue().zones and code not in catalogue().children


def ancestors(code: str) -> list[str]:
    return catalogue().ancestors(code)


def list_zones(marine: bool | None = None) -> list[Zone]:
    """All zones sorted by code; ``marine=True`` sea zones only, ``False`` land only."""
    zones = catalogue().zones.values()
    if marine is not None:
        wanted = "marine" if marine else "land"
        zones = [z for z in zones if z.kind == wanted]
    return sorted(zones, key=lambda z: z.code)
