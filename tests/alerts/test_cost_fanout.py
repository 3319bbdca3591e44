"""A fan-out against the loopback NHN server: the month's report equals what the provider side billed, to
the won; the short SMS form makes the fallbacks SMS and the report shows what that saved; reconciliation
against the provider's own result counts lists no difference (and lists one when there is)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alimcast_testkit import TEMPLATES, cap_xml, config_text
from sqlmodel import select

from alerts.config import ConfigError, load_config, parse_config
from alerts.cost_estimate import estimate_alert
from alerts.cost_reconcile import nhn_lister, our_side, provider_side
from alerts.cost_report import monthly_summary
from alerts.costs import month_of
from alerts.db import session_scope
from alerts.delivery.providers.nhn import NhnProvider
from alerts.models import AlertRecord, Delivery
from alerts.pipeline import Pipeline, feed_spec
from alerts.testing.nhn_server import NhnTestServer, RecipientBehaviour
from subscribers.store import add_subscriber

N = 120
SHORT_FORM = 'sms = "[#{hazard}#{level}] #{zones} #{action} #{effective}"\n'
PRICES = {"alimtalk": Decimal(8), "sms": Decimal(12), "lms": Decimal(39)}


def phone(i: int) -> str:
    return f"0105{i:07d}"


def behaviours() -> dict[str, RecipientBehaviour]:
    """About 12% fall back (one in ten of those fails), one is sent without receipt."""
    out: dict[str, RecipientBehaviour] = {}
    for i in range(N):
        if i % 8 == 0:
            out[phone(i)] = RecipientBehaviour(code="3019", fallback_ok=i % 80 != 0)
    out[phone(3)] = RecipientBehaviour(code="3005")
    return out


@pytest.fixture
def server() -> Iterator[NhnTestServer]:
    with NhnTestServer(templates={code: text for code, text in TEMPLATES.values()}, behaviours=behaviours()) as srv:
        yield srv


def _config(db_url: str, tmp_path: Path, srv: NhnTestServer, monkeypatch: pytest.MonkeyPatch, *,
            short_form: bool) -> Path:
    monkeypatch.setenv("T_APP_KEY", srv.app_key)
    monkeypatch.setenv("T_SECRET_KEY", srv.secret_key)
    monkeypatch.setenv("T_SENDER_KEY", srv.sender_key)
    text = config_text(db_url, [("kma", "cap", str(tmp_path / "feed.xml"))], provider="nhn", base_url=srv.base_url)
    if short_form:
        text = text.replace('code = "ALIMCAST_ALERT_01"\n', 'code = "ALIMCAST_ALERT_01"\n' + SHORT_FORM)
    cfg = tmp_path / "config.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


def _fan_out(cfg: Path, tmp_path: Path) -> tuple[Pipeline, str]:
    pipeline = Pipeline(load_config(cfg))
    with session_scope(pipeline.engine) as s:
        for i in range(N):
            add_subscriber(s, phone(i), ["S1251100"])
    sent = datetime.now(UTC).replace(microsecond=0)
    (tmp_path / "feed.xml").write_bytes(cap_xml("W-COST", sent=sent, zones=["S1251100"]))
    pipeline.poll(feed_spec(pipeline.config.feeds[0]), force=True)
    for _ in range(5):
        pipeline.tick()
        with session_scope(pipeline.engine) as s:
            if not s.exec(select(Delivery).where(Delivery.status.in_(("queued", "sending", "accepted")))).first():
                break
    return pipeline, month_of(datetime.now(UTC))


def _billed_krw(billed: dict[str, int]) -> Decimal:
    return sum((PRICES[ch] * n for ch, n in billed.items()), Decimal(0))


@pytest.mark.parametrize("short_form", [True, False])
def test_report_equals_what_the_provider_billed(tmp_path: Path, server: NhnTestServer,
                                                monkeypatch: pytest.MonkeyPatch, short_form: bool) -> None:
    cfg = _config(f"sqlite:///{tmp_path / 'f.db'}", tmp_path, server, monkeypatch, short_form=short_form)
    pipeline, month = _fan_out(cfg, tmp_path)
    billed = server.billed()
    fallbacks = sum(1 for i in range(N) if i % 8 == 0 and i % 80 != 0)
    assert billed["alimtalk"] == N - N // 8
    assert billed["sms" if short_form else "lms"] == fallbacks and billed["lms" if short_form else "sms"] == 0
    with session_scope(pipeline.engine) as s:
        report = monthly_summary(s, month)
    assert report.cost_krw == _billed_krw(billed)  # to the won
    assert report.messages == sum(billed.values()) and report.failures == len(range(0, N, 80))
    assert {ch: v["messages"] for ch, v in report.by_channel.items()} == {k: v for k, v in billed.items() if v}
    assert report.baseline_krw == Decimal(39) * report.messages  # the full warning is an LMS on the old route
    if short_form:
        assert report.short_sms_messages == fallbacks
        assert report.short_sms_saving_krw == Decimal(39 - 12) * fallbacks
        sms_texts = [m.resend["resendContent"] for m in server.messages if m.resend]
        assert len(sms_texts) == N and all(len(t.encode("cp949")) <= 90 for t in sms_texts)
    else:
        assert report.short_sms_messages == 0
    pipeline.close()


def test_reconciliation_and_estimate_against_the_provider(db_url: str, tmp_path: Path, server: NhnTestServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(db_url, tmp_path, server, monkeypatch, short_form=True)
    pipeline, month = _fan_out(cfg, tmp_path)
    billed = server.billed()
    with session_scope(pipeline.engine) as s:
        report = monthly_summary(s, month)
        rec = our_side(s, month, "nhn")
        alert_id = s.exec(select(AlertRecord.id)).one()
        est = estimate_alert(s, alert_id, pipeline.config.prices.book, "nhn", datetime.now(UTC))
    assert report.cost_krw == _billed_krw(billed)
    provider = NhnProvider(pipeline.config.provider.settings)
    try:
        provider_side(rec, nhn_lister(provider), datetime.now(UTC))
    finally:
        provider.close()
    assert rec.differences == [], rec.to_json()
    assert rec.theirs["delivered/alimtalk"] == N - N // 8 - 1 and rec.theirs["uncertain/alimtalk"] == 1
    assert sum(n for n, _ in rec.ours_detail.values()) == N
    assert est.finished == report.messages and est.pending == 0 and est.billed_krw == report.cost_krw
    # a message the provider billed that our ledger lost is listed
    with session_scope(pipeline.engine) as s:
        row = s.exec(select(Delivery).where(Delivery.status == "delivered")).first()
        assert row is not None
        row.status = "failed"
        s.add(row)
    with session_scope(pipeline.engine) as s:
        again = our_side(s, month, "nhn")
    again.theirs = rec.theirs
    assert {d["line"] for d in again.differences} == {"failed/-"}
    pipeline.close()


def test_short_form_checked_at_config_load() -> None:
    import tomllib

    base = config_text("sqlite:///:memory:", [])

    def with_form(form: str) -> dict:
        return tomllib.loads(base.replace('code = "ALIMCAST_ALERT_01"\n', f'code = "ALIMCAST_ALERT_01"\n{form}'))

    assert parse_config(with_form(SHORT_FORM)).templates["alert"].sms
    with pytest.raises(ConfigError, match=r"\[templates.alert\] sms: is \d+ EUC-KR bytes"):
        parse_config(with_form('sms = "[#{hazard} #{level}] #{action} 구역: #{zones} 발효: #{effective} '
                               '종료: #{expires}"\n'))
    with pytest.raises(ConfigError, match=r"uses #\{headline\}"):
        parse_config(with_form('sms = "#{headline}"\n'))
