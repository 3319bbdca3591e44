from __future__ import annotations

import pytest

from subscribers import zones


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("S1251000", ["S1251100", "S1251200", "S1251300", "S1251400"]),  # 서해중부앞바다 group
        ("S1250000", ["S1251100", "S1251200", "S1251300", "S1251400", "S1252010", "S1252020"]),
        ("서해중부먼바다", ["S1252010", "S1252020"]),  # broad bulletin name -> 안쪽 + 바깥
        ("제주도남쪽먼바다", ["S1324020", "S1324110", "S1324210"]),  # -> its three children
        ("동해남부남쪽먼바다", ["S1132110", "S1132120"]),
        ("S1251100", ["S1251100"]),  # a leaf returns itself
        ("s1251100", ["S1251100"]),
        ("인천·경기북부앞바다", ["S1251100"]),
        ("인천경기북부앞바다", ["S1251100"]),  # separators are ignored in names
        ("파주시", ["L1013710", "L1013720", "L1013730"]),
        ("L1022200", ["L1022210", "L1022220"]),  # inferred 강원 고성군 group
        ("S1330000", ["S1323100", "S1323200", "S1323300", "S1323400", "S1324020", "S1324110", "S1324210"]),
    ],
)
def test_expand(query: str, expected: list[str]) -> None:
    assert zones.expand(query) == expected


def test_whole_sea_groups_cover_every_s1_leaf() -> None:
    s1_leaves = sorted(z.code for z in zones.list_zones(marine=True) if z.code.startswith("S1")
                       and zones.is_leaf(z.code))
    assert zones.expand("S1000000") == s1_leaves
    west = zones.expand("S1200000")
    assert set(zones.expand("S1250000")) < set(west)
    assert set(zones.expand("S1230000")) < set(west)
    assert set(west).isdisjoint(zones.expand("S1100000"))


def test_ambiguous_land_name_asks_for_the_code() -> None:
    with pytest.raises(zones.ZoneError) as info:
        zones.expand("고성군")
    message = str(info.value)
    assert "고성군" in message and "L1082300" in message and "L1022200" in message


@pytest.mark.parametrize("bad", ["S9999999", "L1999900", "없는바다", ""])
def test_unknown_zone_names_the_input(bad: str) -> None:
    with pytest.raises(zones.ZoneError) as info:
        zones.expand(bad)
    assert (bad in str(info.value)) if bad else "empty" in str(info.value)


def test_ancestors_and_names() -> None:
    assert zones.ancestors("S1251100") == ["S1251000", "S1250000", "S1200000", "S1000000"]
    assert zones.ancestors("S1324020") == ["S1330000", "S1300000", "S1000000"]
    assert zones.ancestors("L1013710") == ["L1013700", "L1010000", "L1000000"]
    assert zones.ancestors("S1000000") == []
    assert zones.name("S1252020") == "서해중부바깥먼바다"
    assert zones.is_known("S1252020") and not zones.is_known("S1252030")


def test_every_leaf_is_reached_by_each_of_its_ancestors() -> None:
    """The matching rule: an alert for any ancestor group reaches the leaf's subscribers."""
    for zone in zones.list_zones():
        if not zones.is_leaf(zone.code):
            continue
        for ancestor in zones.ancestors(zone.code):
            assert zone.code in zones.expand(ancestor)


def test_catalogue_counts_and_kinds() -> None:
    marine = zones.list_zones(marine=True)
    land = zones.list_zones(marine=False)
    assert len(marine) == 113  # the shipped CSV
    assert len(land) == 294 + 1  # plus the inferred 강원 고성군 group
    assert all(z.code.startswith("S") for z in marine) and all(z.code.startswith("L") for z in land)
    s2 = zones.get("S2110100")
    assert s2.parent == "S2000000" and s2.within == "S1131200"
