"""Personal links in messages: unguessable, one person each, hashed at rest, expire with the warning, and
opening one is not an acknowledgement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alimcast_testkit import cap_xml
from public_testkit import deliveries, links_in, make_pipeline, publish
from sqlmodel import select

from alerts.db import session_scope
from alerts.public.acks import acknowledge_link, record_ack
from alerts.public.links import hash_token, resolve_ack, resolve_manage
from alerts.public.models import Acknowledgement, PersonalLink
from subscribers.store import add_subscriber

NOW = datetime.now(UTC).replace(microsecond=0)


def _people(pipeline, *phones: str) -> list[int]:  # type: ignore[no-untyped-def]
    with session_scope(pipeline.engine) as s:
        return [add_subscriber(s, p, ["S1251100"]).id for p in phones]  # type: ignore[misc]


def test_severe_warning_carries_a_personal_ack_and_manage_link(tmp_path: Path) -> None:
    pipeline = make_pipeline(f"sqlite:///{tmp_path / 'a.db'}", tmp_path)
    a, b = _people(pipeline, "010-3000-0001", "010-3000-0002")
    publish(tmp_path, cap_xml("S1", sent=NOW, zones=["S1251100"], severity="Severe", event="풍랑경보",
                              expires=NOW + timedelta(hours=6)))
    pipeline.run_once()
    rows = {d.subscriber_id: d for d in deliveries(pipeline)}
    la, lb = links_in(rows[a].text), links_in(rows[b].text)
    assert set(la) == {"a", "u"} and set(lb) == {"a", "u"}
    assert la["a"] != lb["a"] and la["u"] != lb["u"] and la["a"] != la["u"]
    assert len(la["a"]) >= 32  # 192 random bits
    assert rows[a].params["ack_url"].endswith(la["a"])  # the template parameter carries it too
    with session_scope(pipeline.engine) as s:
        stored = {link.token_hash for link in s.exec(select(PersonalLink))}
        assert hash_token(la["a"]) in stored and la["a"] not in stored  # only the hash is kept
        # each link stands for its own person, and the thread of the warning
        ta, tb = resolve_ack(s, la["a"], NOW), resolve_ack(s, lb["a"], NOW)
        assert ta is not None and tb is not None
        assert ta.subscriber.id == a and tb.subscriber.id == b and ta.thread.id == tb.thread.id
        assert resolve_manage(s, lb["u"], NOW).id == b  # type: ignore[union-attr]
        # an ack token is not a manage token and vice versa; a guessed token is nothing
        assert resolve_manage(s, la["a"], NOW) is None and resolve_ack(s, la["u"], NOW) is None
        assert resolve_ack(s, la["a"][:-1] + ("A" if la["a"][-1] != "A" else "B"), NOW) is None
        # opening (resolving) records nothing
        assert s.exec(select(Acknowledgement)).all() == []
        first = acknowledge_link(s, la["a"], now=NOW)
        again = acknowledge_link(s, la["a"], now=NOW + timedelta(minutes=5))
        assert first.ok and first.new and again.ok and not again.new
        assert again.acked_at == NOW
        acks = s.exec(select(Acknowledgement)).all()
        assert [(k.subscriber_id, k.how) for k in acks] == [(a, "link")]
    pipeline.close()


def test_moderate_warning_has_no_ack_line_and_link_expires_with_the_warning(tmp_path: Path) -> None:
    pipeline = make_pipeline(f"sqlite:///{tmp_path / 'a.db'}", tmp_path)
    (a,) = _people(pipeline, "010-3000-0003")
    publish(tmp_path, cap_xml("M1", sent=NOW, zones=["S1251100"], severity="Moderate"))
    pipeline.run_once()
    text = deliveries(pipeline)[0].text
    assert "확인:" not in text and set(links_in(text)) == {"u"}  # the empty line is left out
    publish(tmp_path, cap_xml("S2", sent=NOW + timedelta(minutes=1), zones=["S1251100"], severity="Severe",
                              event="풍랑경보"))
    pipeline.run_once()
    token = links_in(deliveries(pipeline)[-1].text)["a"]
    with session_scope(pipeline.engine) as s:
        assert resolve_ack(s, token, NOW + timedelta(minutes=2)) is not None
    publish(tmp_path, cap_xml("S2C", sent=NOW + timedelta(minutes=3), zones=["S1251100"], severity="Severe",
                              event="풍랑경보", msg_type="Cancel", references=[("S2", NOW + timedelta(minutes=1))]))
    pipeline.run_once()
    cancel = deliveries(pipeline)[-1]
    assert cancel.kind == "cancel" and set(links_in(cancel.text)) == {"u"}  # a 해제 asks for no confirmation
    with session_scope(pipeline.engine) as s:
        assert resolve_ack(s, token, NOW + timedelta(minutes=4)) is None  # lifted: the link expired with it
        assert not acknowledge_link(s, token, now=NOW + timedelta(minutes=4)).ok
        assert s.exec(select(Acknowledgement)).all() == []
    pipeline.close()


def test_without_public_url_no_links_are_made_and_their_lines_are_left_out(tmp_path: Path) -> None:
    pipeline = make_pipeline(f"sqlite:///{tmp_path / 'a.db'}", tmp_path, links=False)
    _people(pipeline, "010-3000-0004")
    publish(tmp_path, cap_xml("S3", sent=NOW, zones=["S1251100"], severity="Extreme", event="태풍경보"))
    pipeline.run_once()
    (row,) = deliveries(pipeline)
    assert row.status == "delivered"
    assert "확인:" not in row.text and "수신 관리" not in row.text and "https://" not in row.text
    with session_scope(pipeline.engine) as s:
        assert s.exec(select(PersonalLink)).all() == []
    pipeline.close()


def test_operator_ack_is_recorded_once(tmp_path: Path) -> None:
    pipeline = make_pipeline(f"sqlite:///{tmp_path / 'a.db'}", tmp_path)
    (a,) = _people(pipeline, "010-3000-0005")
    publish(tmp_path, cap_xml("S4", sent=NOW, zones=["S1251100"], severity="Severe", event="풍랑경보"))
    pipeline.run_once()
    row = deliveries(pipeline)[0]
    with session_scope(pipeline.engine) as s:
        assert record_ack(s, row.thread_id, a, row.alert_id, now=NOW, how="operator").new
        assert not record_ack(s, row.thread_id, a, row.alert_id, now=NOW, how="link").new
        (ack,) = s.exec(select(Acknowledgement)).all()
        assert ack.how == "operator"
    pipeline.close()
