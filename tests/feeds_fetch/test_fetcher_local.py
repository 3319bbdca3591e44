"""Fetcher on local sources: plain paths, file:// URLs and samples bundled with the package."""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator
from pathlib import Path

import pytest
from feedfetch_server import cap_doc

from feeds.fetch import Fetcher, FetchError
from feeds.registry import get_parser


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(max_bytes=4096, trust_env=False) as f:
        yield f


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_local_file_and_unchanged_file_is_not_modified(tmp_path: Path, fetcher: Fetcher, form: str) -> None:
    feed = tmp_path / "경보 feed.xml"  # a space and Hangul: file:// URLs must be percent-decoded
    feed.write_bytes(cap_doc("LOCAL"))
    url = str(feed) if form == "path" else feed.as_uri()

    first = fetcher.fetch(url)
    assert (first.status, first.content) == (200, cap_doc("LOCAL"))
    assert first.etag and first.last_modified and first.final_url == str(feed)

    again = fetcher.fetch(url, etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.content is None

    feed.write_bytes(cap_doc("LOCAL-2") + b"\n")  # another size, so the change shows whatever the mtime
    changed = fetcher.fetch(url, etag=first.etag)
    assert changed.status == 200 and changed.content == cap_doc("LOCAL-2") + b"\n"
    assert changed.etag != first.etag


def test_local_file_size_cap(tmp_path: Path, fetcher: Fetcher) -> None:
    big = tmp_path / "big.xml"
    big.write_bytes(b"<a>" + b"x" * 5000 + b"</a>")
    with pytest.raises(FetchError, match="larger than 4096 bytes"):
        fetcher.fetch(str(big))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/nonexistent/alimcast/feed.xml", "no such file"),
        ("file:///nonexistent/alimcast/feed.xml", "no such file"),
        ("bundled:no_such_sample.xml", "no bundled sample named"),
        ("bundled:../registry.py", "plain file name"),
        ("bundled:", "plain file name"),
    ],
)
def test_missing_local_sources(fetcher: Fetcher, url: str, message: str) -> None:
    with pytest.raises(FetchError, match=message) as info:
        fetcher.fetch(url)
    assert url in str(info.value) and not info.value.retryable


def test_directory_is_not_a_feed(tmp_path: Path, fetcher: Fetcher) -> None:
    with pytest.raises(FetchError, match="not a regular file"):
        fetcher.fetch(str(tmp_path))


def test_html_file_is_refused_when_asked(tmp_path: Path, fetcher: Fetcher) -> None:
    page = tmp_path / "saved.xml"
    page.write_bytes(b"<!DOCTYPE html><html><body>error</body></html>")
    with pytest.raises(FetchError, match="HTML page"):
        fetcher.fetch(str(page), reject_html=True)


SAMPLE = "kma_pungrang_sample.cap.xml"


def test_bundled_sample_reads_through_importlib_resources(fetcher: Fetcher) -> None:
    resource = importlib.resources.files("feeds").joinpath("samples", SAMPLE)
    if not resource.is_file():
        pytest.skip(f"feeds/samples/{SAMPLE} is not written yet")
    with Fetcher(trust_env=False) as roomy:  # the sample may be bigger than this file's 4 KiB cap
        result = roomy.fetch(f"bundled:{SAMPLE}")
        assert result.content == resource.read_bytes() and result.final_url == f"bundled:{SAMPLE}"
        assert roomy.fetch(f"bundled:{SAMPLE}", etag=result.etag).not_modified
    alerts = get_parser("cap").parse(result.content, origin=result.final_url).alerts
    assert alerts and alerts[0].identifier
