"""A month computed by hand, compared exactly with the report (SQLite and PostgreSQL): prices changing
mid-month, both fallback types, the short SMS form, failures not billed, dry runs apart, a month before
adoption from an old invoice; plus the price book, the baseline modes and the CLI's formats."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alimcast_testkit import config_text
from sqlmodel import select
from typer.testing import CliRunner, Result

from alerts.cli.app import app
from alerts.config import ConfigError, Prices, load_config, parse_config
from alerts.cost_report import monthly_summary
from alerts.costs import record_costs
from alerts.db import make_engine, session_scope, upgrade
from alerts.models import AlertRecord, AlertThread, CostEntry, Delivery
from alerts.pricing import PriceBook, PriceEntry, parse_baseline, parse_price_entries
from subscribers.store import add_subscriber

D = Decimal
runner = CliRunner()
LONG = "[풍랑 주의보] 발표\n구역: 서해중부먼바다\n발효: 3월 10일(화) 09:00\n조업 선박은 안전한 곳으로 대피하십시오."
SHORT = "[풍랑주의보] 서해중부먼바다"  # fits one SMS: the old route sent it as SMS too
BOOK = PriceBook(
    entries=[
        PriceEntry(effective=date(2026, 1, 1), alimtalk=D("8"), sms=D("12"), lms=D("39"), mms=D("90"), provider="nhn"),
        # mid-month: the government contract from 16 March (KST)
        PriceEntry(effective=date(2026, 3, 16), alimtalk=D("5"), sms=D("8.063"), lms=D("26.763"), mms=D("49.863"),
                   provider="nhn"),
    ],
    invoices=parse_baseline({"invoices": [{"month": "2025-03", "messages": 1200, "cost_krw": 46_800}]})[1],
)


def _at(day: int, hour: int = 3) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=UTC)  # 12:00 KST


def _seed(url: str) -> tuple:
    engine = make_engine(url)
    upgrade(engine)
    with session_scope(engine) as s:
        thread = AlertThread(feed="kma")
        s.add(thread)
        s.flush()
        alert = AlertRecord(sender="kma", identifier="W1", sent=_at(1), status="Actual", msg_type="Alert",
                            scope="Public", event="풍랑주의보", feed="kma", thread_id=thread.id)
        s.add(alert)
        s.flush()
        subs = [add_subscriber(s, f"0103000{i:04d}", ["S1251100"]) for i in range(20)]
        s.flush()
        ids = (alert.id, thread.id, [sub.id for sub in subs])
    return engine, ids


def _delivery(ids: tuple, n: int, status: str, *, channel: str | None, fallback: str, text: str, day: int,
              provider: str = "nhn") -> Delivery:
    alert_id, thread_id, subs = ids
    return Delivery(alert_id=alert_id, thread_id=thread_id, subscriber_id=subs[n], status=status, channel=channel,
                    fallback_kind=fallback, text=text, provider=provider, sent_at=_at(day), finished_at=_at(day))


def test_a_month_by_hand(db_url: str) -> None:
    engine, ids = _seed(db_url)
    real = [
        # before 16 March: 8 / 12 / 39
        _delivery(ids, 0, "delivered", channel="alimtalk", fallback="LMS", text=LONG, day=3),
        _delivery(ids, 1, "delivered", channel="alimtalk", fallback="LMS", text=LONG, day=3),
        _delivery(ids, 2, "fallback_sent", channel=None, fallback="LMS", text=LONG, day=3),  # LMS fallback
        _delivery(ids, 3, "delivered", channel="alimtalk", fallback="SMS", text=SHORT, day=10),
        _delivery(ids, 4, "uncertain", channel=None, fallback="LMS", text=LONG, day=10),  # billed as AlimTalk
        _delivery(ids, 5, "failed", channel=None, fallback="LMS", text=LONG, day=10),  # not billed
        # from 16 March: 5 / 8.063 / 26.763
        _delivery(ids, 6, "delivered", channel="alimtalk", fallback="SMS", text=LONG, day=20),
        _delivery(ids, 7, "fallback_sent", channel="sms", fallback="SMS", text=LONG, day=20),  # short SMS form
        _delivery(ids, 8, "fallback_sent", channel="sms", fallback="SMS", text=SHORT, day=21),  # SMS by length
        _delivery(ids, 9, "failed", channel=None, fallback="SMS", text=LONG, day=21),
        _delivery(ids, 10, "suppressed", channel=None, fallback="SMS", text=LONG, day=21),
    ]
    dry = [_delivery(ids, 11 + i, "delivered", channel="alimtalk", fallback="LMS", text=LONG, day=20,
                     provider="dryrun") for i in range(3)]
    prices = Prices(alimtalk=0, sms=0, lms=0, book=BOOK)  # the flat fields must not be used
    with session_scope(engine) as s:
        s.add_all(real + dry)
        s.flush()
        assert record_costs(s, real, prices, dry_run=False, now=_at(25)) == 8
        assert record_costs(s, dry, prices, dry_run=True, now=_at(25)) == 3
    with session_scope(engine) as s:
        month = monthly_summary(s, "2026-03", BOOK)
    # by hand: cost 8+8+39+8+8 | 5+8.063+8.063 ; baseline 39+39+39+12+39 | 26.763+26.763+8.063
    assert month.messages == 8 and month.recipients == 8
    assert month.cost_krw == D("92.126")
    assert month.baseline_krw == D("229.589")
    assert month.saving_krw == D("137.463")
    assert month.by_channel == {"alimtalk": {"messages": 5, "cost_krw": 37},
                                "lms": {"messages": 1, "cost_krw": 39},
                                "sms": {"messages": 2, "cost_krw": 16.126}}
    assert month.fallbacks == {"sms": 2, "lms": 1} and month.uncertain == 1
    assert month.failures == 2  # failed, not billed: not in the cost
    assert month.short_sms_messages == 1 and month.short_sms_saving_krw == D("18.700")  # 26.763 - 8.063
    assert month.reach == 5 / 8
    # dry runs apart, at the nhn prices of 20 March
    assert month.simulated is not None and month.simulated.messages == 3
    assert month.simulated.cost_krw == D("15") and month.simulated.baseline_krw == D("80.289")
    # a month before adoption, entered from the old invoice
    assert month.last_year == {"month": "2025-03", "messages": 1200, "cost_krw": 46800, "source": "invoice",
                               "note": ""}
    report = month.report_json()
    for key in ("month", "messages", "cost_krw", "baseline_krw", "saving_krw", "saving_ratio", "by_channel"):
        assert key in report
    assert report["cost_krw"] == 92.126 and report["saving_ratio"] == round(137.463 / 229.589, 4)
    assert report["fallbacks"] == {"sms": 2, "lms": 1} and report["failures_not_billed"] == 2
    assert report["short_sms"] == {"messages": 1, "saving_krw": 18.7}
    with session_scope(engine) as s:
        by_provider = monthly_summary(s, "2026-03", BOOK, by="provider").groups
        by_hazard = monthly_summary(s, "2026-03", BOOK, by="hazard").groups
        by_feed = monthly_summary(s, "2026-03", BOOK, by="feed").groups
        by_zone = monthly_summary(s, "2026-03", BOOK, by="zone").groups
    assert set(by_provider) == {"nhn"} and by_provider["nhn"].cost_krw == D("92.126")
    assert by_hazard["풍랑"].messages == 8 and by_feed["kma"].baseline_krw == D("229.589")
    assert by_zone["S1251100"].messages == 8
    engine.dispose()


def test_baseline_modes(tmp_path: Path) -> None:
    engine, ids = _seed(f"sqlite:///{tmp_path / 'b.db'}")
    rows = [_delivery(ids, 0, "delivered", channel="alimtalk", fallback="SMS", text=SHORT, day=3),
            _delivery(ids, 1, "delivered", channel="alimtalk", fallback="LMS", text=LONG, day=3)]
    with session_scope(engine) as s:
        s.add_all(rows)
        s.flush()
        for mode, expected in (("sms", D("24")), ("lms", D("78")), ("auto", D("51"))):
            book = PriceBook(entries=BOOK.entries, baseline_mode=mode)
            s.exec(CostEntry.__table__.delete())  # type: ignore[attr-defined]
            record_costs(s, rows, Prices(0, 0, 0, book=book), dry_run=False, now=_at(4))
            s.flush()
            assert monthly_summary(s, "2026-03", book).baseline_krw == expected, mode
    engine.dispose()


@pytest.mark.slow
def test_money_is_exact_over_a_million_rows(tmp_path: Path) -> None:
    """8.063 KRW a million times is 8,063,000 KRW, not 8062999.99999..."""
    engine, ids = _seed(f"sqlite:///{tmp_path / 'm.db'}")
    n = 1_000_000
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute(
            "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < ?) "
            "INSERT INTO cost_entry (delivery_id, month, channel, price_krw, baseline_channel, baseline_krw, "
            "dry_run, created_at, price_e4, baseline_e4, status) "
            "SELECT x, '2026-03', 'sms', 8.063, 'lms', 26.763, 0, '2026-03-01 00:00:00', 80630, 267630, "
            "'fallback_sent' "
            "FROM i", (n,))
        raw.execute("PRAGMA foreign_keys=ON")
    with session_scope(engine) as s:
        month = monthly_summary(s, "2026-03", BOOK)
        floats = s.exec(select(CostEntry.price_krw).limit(1)).one()
    assert month.cost_krw == D("8063000") and month.baseline_krw == D("26763000")
    assert month.saving_krw == D("18700000")
    assert sum([floats] * 1000) != 8063  # the float column would have drifted
    engine.dispose()


def test_price_entries_parse_and_apply() -> None:
    entries = parse_price_entries([
        {"provider": "nhn", "effective": date(2026, 1, 1), "alimtalk": 8, "sms": 12, "lms": 39, "mms": 90},
        {"provider": "nhn", "effective": "2026-07-01", "alimtalk": 8.8, "sms": 13.2, "lms": 42.9, "vat": "included"},
        {"effective": date(2026, 1, 1), "alimtalk": 9, "sms": 13, "lms": 40},
    ])
    book = PriceBook(entries=entries)
    assert book.price("nhn", date(2026, 6, 30), "lms") == D("39")
    assert book.price("nhn", date(2026, 7, 1), "alimtalk") == D("8")  # 8.8 with VAT
    assert book.price("nhn", date(2026, 7, 1), "mms") == D("39")  # mms left out: priced as LMS
    assert book.price("solapi", date(2026, 7, 1), "sms") == D("13")  # the any-provider entry
    assert book.price("nhn", datetime(2026, 6, 30, 15, 0, tzinfo=UTC), "sms") == D("12")  # 1 July 00:00 KST
    with pytest.raises(ValueError, match=r"\[\[prices\]\] #1 effective"):
        parse_price_entries([{"alimtalk": 8, "sms": 12, "lms": 39}])
    with pytest.raises(ValueError, match=r"#1 sms"):
        parse_price_entries([{"effective": "2026-01-01", "alimtalk": 8, "sms": "cheap", "lms": 39}])


def _raw(extra: str) -> dict:
    import tomllib

    return tomllib.loads(config_text("sqlite:///:memory:", []).replace(
        "[prices]\nalimtalk = 8.0\nsms = 12.0\nlms = 39.0\n", "") + extra)


def test_config_prices_table_and_array() -> None:
    old = parse_config(_raw("[prices]\nalimtalk = 8.0\nsms = 12.0\nlms = 39.0\n"))
    assert old.prices.book is not None and old.prices.book.price("nhn", date(1999, 1, 1), "sms") == D("12")
    new = parse_config(_raw(
        '[[prices]]\nprovider = "nhn"\neffective = 2026-01-01\nalimtalk = 8\nsms = 12\nlms = 39\n'
        '[[prices]]\nprovider = "nhn"\neffective = 2026-03-16\nalimtalk = 5\nsms = 8.063\nlms = 26.763\n'
        '[baseline]\nmode = "lms"\n[[baseline.invoices]]\nmonth = "2025-03"\nmessages = 10\ncost_krw = 390\n'))
    assert new.prices.sms == 8.063 and new.prices.book is not None
    assert new.prices.book.baseline_mode == "lms" and new.prices.book.invoice("2025-03") is not None
    with pytest.raises(ConfigError, match=r"\[baseline\] mode"):
        parse_config(_raw('[baseline]\nmode = "mms"\n'))
    with pytest.raises(ConfigError, match=r"\[\[prices\]\] #1 vat"):
        parse_config(_raw('[[prices]]\neffective = 2026-01-01\nalimtalk = 8\nsms = 12\nlms = 39\nvat = "yes"\n'))


def test_cli_formats(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine, ids = _seed(url)
    rows = [_delivery(ids, i, "delivered", channel="alimtalk", fallback="LMS", text=LONG, day=3) for i in range(3)]
    with session_scope(engine) as s:
        s.add_all(rows)
        s.flush()
        record_costs(s, rows, Prices(8, 12, 39), dry_run=False, now=_at(4))
    engine.dispose()
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(url, []), encoding="utf-8")

    def cli(*args: str) -> Result:
        return runner.invoke(app, ["costs", *args, "--config", str(cfg)])

    done = cli("monthly", "--month", "2026-03", "--format", "csv", "--by", "feed")
    assert done.exit_code == 0, done.output
    lines = list(csv.reader(io.StringIO(done.stdout)))
    assert lines[0][:4] == ["month", "feed", "messages", "cost_krw"]
    assert lines[1][:6] == ["2026-03", "kma", "3", "24", "117", "93"]
    assert lines[-1][1:6] == ["total", "3", "24", "117", "93"]
    done = cli("monthly", "--month", "2026-03", "--format", "json", "--by", "hazard")
    assert json.loads(done.stdout)["groups"]["풍랑"]["cost_krw"] == 24
    done = cli("monthly", "--month", "2026-03")
    assert done.exit_code == 0 and "AlimTalk reach 100.0%" in done.stdout
    bad = cli("monthly", "--by", "colour")
    assert bad.exit_code == 1 and "--by 'colour'" in bad.stderr
    with session_scope(make_engine(url)) as s:
        alert_id = s.exec(select(AlertRecord.id)).one()
    est = cli("estimate", str(alert_id), "--format", "json")
    assert est.exit_code == 0, est.output
    assert json.loads(est.stdout)["billed_krw"] == 24
    assert cli("estimate", "999").exit_code == 1


def test_load_config_of_the_shipped_file_still_prices() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "config.toml")
    assert config.prices.book is not None and config.prices.book.baseline_mode == "auto"


def test_chart_is_rendered(tmp_path: Path) -> None:
    """``costs chart``: a PNG and an SVG of ledger months and a month before adoption (an invoice)."""
    import struct

    url = f"sqlite:///{tmp_path / 'chart.db'}"
    engine, ids = _seed(url)
    rows = [_delivery(ids, i, "delivered", channel="alimtalk", fallback="LMS", text=LONG, day=3) for i in range(4)]
    with session_scope(engine) as s:
        s.add_all(rows)
        s.flush()
        record_costs(s, rows, Prices(8, 12, 39), dry_run=False, now=_at(4))
    engine.dispose()
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(url, [], extra='[[baseline.invoices]]\nmonth = "2025-12"\nmessages = 4\n'
                                             'cost_krw = 156\n'), encoding="utf-8")
    for name in ("c.png", "c.svg"):
        done = runner.invoke(app, ["costs", "chart", "--months", "12", "--month", "2026-03", "--output",
                                   str(tmp_path / name), "--config", str(cfg)])
        assert done.exit_code == 0, done.output
    png = (tmp_path / "c.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1210, 616)
    svg = (tmp_path / "c.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and "Old route (SMS/LMS) would have cost" in svg and "saved 124 KRW (79%)" in svg
    bad = runner.invoke(app, ["costs", "chart", "--output", str(tmp_path / "c.gif"), "--config", str(cfg)])
    assert bad.exit_code == 1 and "c.gif" in bad.stderr


def test_migration_fills_exact_money_and_the_rollup(tmp_path: Path) -> None:
    """A ledger written before 0006 (float KRW) comes out exact, with its rollup and recipients."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0003")
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        raw.execute("PRAGMA foreign_keys=OFF")
        for i, (channel, price) in enumerate((("alimtalk", 8.063), ("alimtalk", 8.063), ("lms", 26.763)), start=1):
            raw.execute("INSERT INTO delivery (id, alert_id, thread_id, subscriber_id, kind, priority, status, "
                        "template_code, params, text, attempts, created_at, provider) VALUES (?, ?, 1, ?, 'alert', 0, "
                        "?, 'T', '{}', '', 1, '2026-03-02 00:00:00', 'nhn')",
                        (i, i, 10 + i % 2, "delivered" if channel == "alimtalk" else "fallback_sent"))
            raw.execute("INSERT INTO cost_entry (delivery_id, month, channel, price_krw, baseline_channel, "
                        "baseline_krw, dry_run, created_at) VALUES (?, '2026-03', ?, ?, 'lms', 26.763, 0, "
                        "'2026-03-02 00:00:00')", (i, channel, price))
    upgrade(engine)
    with session_scope(engine) as s:
        month = monthly_summary(s, "2026-03")
        entry = s.exec(select(CostEntry).where(CostEntry.delivery_id == 3)).one()
    assert (entry.price_e4, entry.status, entry.provider, entry.subscriber_id) == (267630, "fallback_sent", "nhn", 11)
    assert month.messages == 3 and month.recipients == 2 and month.fallbacks == {"sms": 0, "lms": 1}
    assert month.cost_krw == D("42.889") and month.baseline_krw == D("80.289")
    engine.dispose()
