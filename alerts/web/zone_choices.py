"""The zones a person can pick on the subscription page, in the words they use.

Sea zones are grouped by sea (동해, 서해, 남해 with 제주도) and region (서해중부, …). Coastal 앞바다 zones are
listed one by one; the offshore 먼바다 pairs (안쪽 + 바깥) are offered under the broad name bulletins and
people still use (서해중부먼바다), which ``subscribers.zones`` expands to both. Land regions are the 시도
and their 시군, as a list of (code, name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from subscribers import zones

SEA_ROOT = "S1000000"
LAND_ROOT = "L1000000"


@dataclass(frozen=True, slots=True)
class Choice:
    #: What the form submits: a leaf code or a broad name (both accepted by ``zones.expand``).
    value: str
    label: str


@dataclass(slots=True)
class Region:
    name: str
    choices: list[Choice] = field(default_factory=list)


@dataclass(slots=True)
class Sea:
    name: str
    regions: list[Region] = field(default_factory=list)


def _broad(name: str) -> str | None:
    catalogue = zones.catalogue()
    broad = name.replace("안쪽", "").replace("바깥", "")
    if broad != name and broad in catalogue.broad_names:
        return broad
    return None


@lru_cache(maxsize=1)
def sea_choices() -> tuple[Sea, ...]:
    catalogue = zones.catalogue()
    seas: list[Sea] = []
    for sea_code in catalogue.children.get(SEA_ROOT, []):
        sea = Sea(catalogue.zones[sea_code].name.removesuffix("전해상"))
        for region_code in catalogue.children.get(sea_code, []):
            region = Region(catalogue.zones[region_code].name.removesuffix("전해상"))
            seen: set[str] = set()
            for child in catalogue.children.get(region_code, []):
                zone = catalogue.zones[child]
                if catalogue.children.get(child):  # the 앞바다 group: each coastal zone
                    for leaf in catalogue.leaves(child):
                        region.choices.append(Choice(leaf, catalogue.zones[leaf].name))
                    continue
                broad = _broad(zone.name)
                value = broad or child
                if value not in seen:
                    seen.add(value)
                    region.choices.append(Choice(value, broad or zone.name))
            sea.regions.append(region)
        seas.append(sea)
    return tuple(seas)


@lru_cache(maxsize=1)
def land_choices() -> tuple[tuple[str, tuple[Choice, ...]], ...]:
    """(시도 name, its choices: the whole 시도 first, then its 시군) for a grouped select."""
    catalogue = zones.catalogue()
    out: list[tuple[str, tuple[Choice, ...]]] = []
    for sido in catalogue.children.get(LAND_ROOT, []):
        zone = catalogue.zones[sido]
        items = [Choice(sido, f"{zone.name} 전체")]
        for child in catalogue.children.get(sido, []):
            items.append(Choice(child, catalogue.zones[child].name))
        out.append((zone.name, tuple(items)))
    return tuple(out)


def chosen_values(leaf_codes: list[str]) -> set[str]:
    """The page's choices a person with these leaf zones has ticked (a broad name when all its zones are)."""
    have = set(leaf_codes)
    ticked: set[str] = set()
    for sea in sea_choices():
        for region in sea.regions:
            for choice in region.choices:
                leaves = set(zones.expand(choice.value))
                if leaves and leaves <= have:
                    ticked.add(choice.value)
    return ticked


def land_value(leaf_codes: list[str]) -> str:
    """The land choice matching a person's land zones (the first whose leaves they all have)."""
    land = {c for c in leaf_codes if c.startswith("L")}
    if not land:
        return ""
    for _, items in land_choices():
        for choice in items[1:] + items[:1]:
            if set(zones.expand(choice.value)) == land:
                return choice.value
    return ""
