"""Zone outline import (the 17 시도 of KOSTAT, and broken features) and the zones/vessels CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import shapely
import typer
from geo_testkit import add_person, box_feature, write_geojson
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from alerts.cli.vessels import app as vessels_app
from alerts.cli.zones import app as zones_app
from alerts.db import make_engine, upgrade
from subscribers.geoindex import GeoIndex
from subscribers.geometry import ZoneImportError, import_zone_geojson, load_zone_polygons

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def sido(shared_dir: Path) -> Path:
    path = shared_dir / "zones" / "kr_sido_2018_kostat_geo_simple.geojson"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.mark.parametrize(
    ("lat", "lon", "code"),
    [(37.5665, 126.9780, "11"),   # Seoul City Hall
     (35.1796, 129.0756, "21"),   # Busan City Hall
     (33.4996, 126.5312, "39"),   # Jeju City
     (37.8813, 127.7298, "32")],  # Chuncheon, 강원도
)
def test_sido_import_and_point_in_polygon(engine: Engine, sido: Path, lat: float, lon: float, code: str) -> None:
    with Session(engine) as session:
        report = import_zone_geojson(session, sido, "code", source="통계청 SGIS (KOGL Type 1)")
        session.commit()
        zones = load_zone_polygons(session)
        index = GeoIndex.from_session(session)
    assert len(report.imported) == 17 and not report.skipped
    assert len({z.code for z in zones}) == 17
    assert all(z.geometry.is_valid and z.geometry.geom_type in ("Polygon", "MultiPolygon") for z in zones)
    containing = {z.code for z in zones if z.geometry.contains(shapely.Point(lon, lat))}
    assert containing == {code}
    assert index.affected(circles=[(lat, lon, 0.5)], at=NOW).zone_codes == {code}
    assert {z.name for z in zones if z.code == "11"} == {"서울특별시"}


def test_broken_features_are_reported_and_the_rest_imported(engine: Engine, tmp_path: Path) -> None:
    bowtie = {"type": "Feature", "properties": {"WarnCode": "BOW"},
              "geometry": {"type": "Polygon", "coordinates": [[[126, 34], [127, 35], [127, 34], [126, 35], [126, 34]]]}}
    features = [
        box_feature("S1251100", 126.0, 37.0, 126.5, 37.5, name="인천·경기북부앞바다"),
        {"type": "Feature", "properties": {"WarnCode": "PT"}, "geometry": {"type": "Point", "coordinates": [126, 37]}},
        box_feature("", 126.0, 37.0, 126.5, 37.5),
        box_feature("SWAP", 37.0, 126.0, 37.5, 126.5),  # [lat, lon] by mistake
        bowtie,
        box_feature("S1251100", 126.0, 37.0, 126.5, 37.5),
        "not a feature",
    ]
    path = write_geojson(tmp_path / "zones.geojson", features)
    with Session(engine) as session:
        report = import_zone_geojson(session, path)
        session.commit()
        zones = {z.code: z for z in load_zone_polygons(session)}
    assert report.imported == ["S1251100", "BOW"]
    assert [s.split(":")[0] for s in report.skipped] == ["feature 1 (PT)", "feature 2", "feature 3 (SWAP)",
                                                         "feature 5", "feature 6"]
    assert "Point" in report.skipped[0] and "[lon, lat]" in report.skipped[2]
    assert len(report.repaired) == 1 and report.repaired[0].startswith("feature 4 (BOW)")
    assert zones["BOW"].geometry.is_valid and zones["BOW"].geometry.area == pytest.approx(0.5)
    assert zones["S1251100"].name == "인천·경기북부앞바다"


def test_unusable_file_raises_one_error(engine: Engine, tmp_path: Path) -> None:
    bad = tmp_path / "bad.geojson"
    bad.write_text("{", encoding="utf-8")
    with Session(engine) as session, pytest.raises(ZoneImportError, match="bad.geojson: not JSON"):
        import_zone_geojson(session, bad)


# -- CLI ----------------------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    templates = "".join(f'[templates.{k}]\ncode = "{k.upper()}1"\ntext = "x"\n\n'
                        for k in ("alert", "update", "cancel"))
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "cli.db"}"\n\n[provider]\nkind = "dryrun"\n\n'
                    f"{templates}[vessels]\nbuffer_nm = 1.0\nstale_after_hours = 720\n", encoding="utf-8")
    return path


def cli(*args: str) -> tuple[int, str, str]:
    root = typer.Typer()
    root.add_typer(zones_app, name="zones")
    root.add_typer(vessels_app, name="vessels")
    result = runner.invoke(root, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_zones_and_vessels(config: Path, tmp_path: Path, shared_dir: Path) -> None:
    zones = write_geojson(tmp_path / "z.geojson", [box_feature("S1251100", 125.0, 37.0, 127.0, 38.0),
                                                   box_feature("S1251200", 125.0, 36.0, 127.0, 37.0)])
    code, out, err = cli("zones", "import", str(zones), "--code-property", "WarnCode", "--config", str(config))
    assert code == 0, err
    assert "2 zones imported" in out
    code, _, err = cli("zones", "import", str(zones), "--code-property", "CODE", "--config", str(config))
    assert code == 1 and "no 'CODE' property" in err and "error: " in err

    code, out, err = cli("zones", "list", "--marine", "--json", "--config", str(config))
    assert code == 0, err
    rows = {r["code"]: r for r in json.loads(out)}
    assert rows["S1251100"]["polygon"] is True and rows["S1251100"]["name"] == "인천·경기북부앞바다"
    assert all(r["kind"] == "marine" for r in rows.values())
    assert sum(r["polygon"] for r in rows.values()) == 2 and len(rows) > 100

    eng = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    upgrade(eng)
    with Session(eng) as session:
        add_person(session, "01012345678")
        session.commit()
    eng.dispose()
    code, out, err = cli("vessels", "add", "--mmsi", "227006760", "--name", "TEST", "--phone", "010-1234-5678",
                         "--config", str(config))
    assert code == 0 and "010-****-5678" in out and "01012345678" not in out, err
    code, _, err = cli("vessels", "add", "--mmsi", "227006761", "--phone", "010-9999-8888", "--config", str(config))
    assert code == 1 and err.startswith("error: phone 010-****-8888")

    ais = tmp_path / "feed.ais"
    sample = shared_dir / "corpus" / "feeds" / "ais_aivdm_sample.ais"
    ais.write_text(sample.read_text(encoding="ascii")
                   + '{"mmsi": 227006760, "lat": 37.0, "lon": 126.0, "at": "2099-01-01T00:00:00Z"}\n',
                   encoding="ascii")
    code, out, err = cli("vessels", "ingest-ais", str(ais), "--config", str(config))
    assert code == 0, err
    assert "11 positions from 8 vessels, 3 bad lines" in out and "stored 2 for 1 registered vessels" in out
    assert "bad: " in err and "line 10" in err
    code, out, _ = cli("vessels", "list", "--json", "--config", str(config))
    [vessel] = json.loads(out)
    assert (vessel["mmsi"], vessel["subscribers"], vessel["last_lat"], vessel["zones"]) == (
        227006760, 1, 37.0, ["S1251100", "S1251200"])  # on the shared border: both zones

    code, _, err = cli("vessels", "ingest-ais", str(tmp_path / "missing.ais"), "--config", str(config))
    assert code == 1 and "missing.ais: cannot read" in err
