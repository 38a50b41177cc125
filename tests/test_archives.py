"""RFC 5005 archived feeds: complete, chained archive pages that never change once full."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import feedparser
import pytest
import requests

from feeds.pipeline import build_documents

pytestmark = pytest.mark.both_backends

START = datetime(2030, 1, 1, tzinfo=UTC)  # after the shipped seed
PLAIN = {"Accept-Encoding": "identity"}


@pytest.fixture
def paged(live_server):
    """The live server publishing three items a feed and an archive page."""
    live_server.settings = replace(live_server.settings, items_per_feed=3)
    return live_server


def publish(server, make_article, numbers) -> None:
    server.storage.save_articles([make_article(f"n{n}", published=START + timedelta(hours=n))
                                  for n in numbers])
    build_documents(server.settings, server.storage)
    server.cache.reload()


def fetch(url: str) -> tuple[requests.Response, feedparser.FeedParserDict]:
    response = requests.get(url, headers=PLAIN, timeout=10)
    return response, feedparser.parse(response.content)


def links(feed) -> dict[str, str]:
    return {link.rel: link.href for link in feed.feed.links}


def chain(server) -> list[tuple[requests.Response, feedparser.FeedParserDict]]:
    """The current feed, then each archive page by prev-archive, newest first."""
    pages = [fetch(f"{server.url}/topics/security.atom")]
    while "prev-archive" in links(pages[-1][1]):
        pages.append(fetch(links(pages[-1][1])["prev-archive"]))
    return pages


def test_archive_pages_hold_every_older_story_once(paged, make_article):
    publish(paged, make_article, range(10))  # with the seed: 11 stories

    pages = chain(paged)
    ids = [e.id for _, feed in pages for e in feed.entries]

    assert [len(feed.entries) for _, feed in pages] == [3, 2, 3, 3]  # current, open, full
    assert len(ids) == len(set(ids)) == 11
    assert all(feed.bozo == 0 for _, feed in pages)
    current, open_page, second, first = (links(feed) for _, feed in pages)
    assert current["prev-archive"].endswith("/topics/security/archive/3.atom")
    assert "next-archive" not in open_page
    assert second["next-archive"].endswith("/archive/3.atom")
    assert first["next-archive"].endswith("/archive/2.atom") and "prev-archive" not in first
    for page in (open_page, second, first):
        assert page["current"] == f"{paged.url}/topics/security.atom"


def test_full_pages_are_immutable_and_marked_as_archives(paged, make_article):
    publish(paged, make_article, range(10))
    (_, _), (open_response, _), (full, _), (first, _) = chain(paged)

    assert "immutable" in full.headers["Cache-Control"]
    assert "max-age=31536000" in first.headers["Cache-Control"]
    assert "immutable" not in open_response.headers["Cache-Control"]
    assert b"<fh:archive/>" in full.content


def test_a_full_page_never_changes_and_the_open_page_fills_in_turn(paged, make_article):
    publish(paged, make_article, range(10))
    first = fetch(f"{paged.url}/topics/security/archive/1.atom")[0]

    paged.storage.save_articles([make_article("n1", title="خبر أمني معدل",
                                              published=START + timedelta(hours=1),
                                              content_hash="edited")])
    publish(paged, make_article, range(10, 13))
    pages = chain(paged)

    again = fetch(f"{paged.url}/topics/security/archive/1.atom")[0]
    assert (again.content, again.headers["ETag"]) == (first.content, first.headers["ETag"])
    assert [len(feed.entries) for _, feed in pages] == [3, 2, 3, 3, 3]
    assert links(pages[2][1])["next-archive"].endswith("/archive/4.atom")
    ids = [e.id for _, feed in pages for e in feed.entries]
    assert len(ids) == len(set(ids)) == 14


def test_a_topic_with_few_stories_has_no_archive(live_server):
    assert "prev-archive" not in links(fetch(f"{live_server.url}/topics/security.atom")[1])
