"""The real app under uvicorn on 127.0.0.1, spoken to over HTTP with requests."""

from __future__ import annotations

import gzip
from datetime import timedelta

import brotli
import feedparser
import lxml.html
import pytest
import requests
from conftest import SEED_TITLE, T0

from feeds.pipeline import build_documents

PLAIN = {"Accept-Encoding": "identity"}
MEDIA = {"rss": "application/rss+xml", "atom": "application/atom+xml"}


def get(server, path: str, **headers) -> requests.Response:
    return requests.get(server.url + path, headers={**PLAIN, **headers}, timeout=5)


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_topic_feed_is_served_with_its_media_type(live_server, kind):
    response = get(live_server, f"/topics/security.{kind}")
    content_type = response.headers["Content-Type"].lower().replace(" ", "")

    assert response.status_code == 200
    assert content_type.startswith(MEDIA[kind] + ";")
    assert "charset=utf-8" in content_type
    assert SEED_TITLE in {e.title for e in feedparser.parse(response.content).entries}


def test_feed_has_validators_and_varies_on_encoding(live_server):
    response = get(live_server, "/topics/security.atom")

    assert response.headers.get("ETag")
    assert response.headers.get("Last-Modified")
    assert "accept-encoding" in response.headers.get("Vary", "").lower()


def test_if_none_match_with_the_etag_gives_304_and_no_body(live_server):
    etag = get(live_server, "/topics/security.rss").headers["ETag"]

    response = get(live_server, "/topics/security.rss", **{"If-None-Match": etag})

    assert response.status_code == 304
    assert response.content == b""


def test_if_modified_since_last_modified_gives_304(live_server):
    modified = get(live_server, "/topics/security.rss").headers["Last-Modified"]

    response = get(live_server, "/topics/security.rss", **{"If-Modified-Since": modified})

    assert response.status_code == 304
    assert response.content == b""


def test_gzip_body_decompresses_to_the_plain_body(live_server):
    plain = get(live_server, "/topics/security.atom").content
    zipped = requests.get(live_server.url + "/topics/security.atom",
                          headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5)
    raw = zipped.raw.read(decode_content=False)

    assert zipped.headers.get("Content-Encoding") == "gzip"
    assert "accept-encoding" in zipped.headers.get("Vary", "").lower()
    assert gzip.decompress(raw) == plain


def test_head_answers_like_get_without_a_body(live_server):
    full = get(live_server, "/topics/security.rss")
    head = requests.head(live_server.url + "/topics/security.rss", headers=PLAIN, timeout=5)

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Type"] == full.headers["Content-Type"]
    assert head.headers["ETag"] == full.headers["ETag"]


def test_opml_is_served(live_server):
    response = get(live_server, "/topics.opml")

    assert response.status_code == 200
    assert b"/topics/security." in response.content


def test_index_is_an_rtl_arabic_page_with_feed_autodiscovery(live_server):
    response = get(live_server, "/")
    page = lxml.html.document_fromstring(response.content)
    rss_links = {link.get("href") for link in
                 page.xpath('//head/link[@rel="alternate"][@type="application/rss+xml"]')}

    assert response.status_code == 200
    assert response.headers["Content-Type"].lower().startswith("text/html")
    assert (page.get("lang"), page.get("dir")) == ("ar", "rtl")
    assert rss_links == {f"{live_server.url}/topics/{t.slug}.rss"
                         for t in live_server.settings.topics}


def test_unknown_topic_is_a_short_404_page(live_server):
    response = get(live_server, "/topics/nope.rss")

    assert response.status_code == 404
    assert response.headers["Content-Type"].lower().startswith("text/html")
    assert "Traceback" not in response.text
    assert len(response.content) < 2000


def test_reload_serves_newly_published_bytes(live_server, make_article):
    before = get(live_server, "/topics/security.atom")
    live_server.storage.save_articles([make_article("fresh", title="خبر أمني جديد")])
    build_documents(live_server.settings, live_server.storage)
    live_server.cache.reload()

    after = get(live_server, "/topics/security.atom")

    assert after.headers["ETag"] != before.headers["ETag"]
    assert "خبر أمني جديد" in {e.title for e in feedparser.parse(after.content).entries}


def test_an_entity_feed_is_built_on_its_first_request_then_served_as_stored(live_server):
    first = get(live_server, "/tags/org:isis.atom")
    again = get(live_server, "/tags/org:isis.atom", **{"If-None-Match": first.headers["ETag"]})
    json_feed = get(live_server, "/tags/org:isis.json").json()

    assert first.status_code == 200
    assert first.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(first.content)
    assert feed.bozo == 0
    assert feed.feed.title.startswith("داعش")
    assert [e.title for e in feed.entries] == [SEED_TITLE]
    assert again.status_code == 304
    assert [item["title"] for item in json_feed["items"]] == [SEED_TITLE]


def html_links(response: requests.Response, kind: str) -> set[str]:
    """The page a served feed says it is the feed of: RSS <link>, Atom's alternate link,
    JSON Feed's home_page_url."""
    if kind == "json":
        return {response.json()["home_page_url"]}
    feed = feedparser.parse(response.content)
    return {feed.feed.link} | {link.href for link in feed.feed.links if link.rel == "alternate"}


@pytest.mark.parametrize(("feed", "page"), [("topics/security", "/#security"),
                                            ("tags/org:isis", "/")])
def test_a_feeds_html_link_is_a_page_the_server_has(live_server, feed, page):
    for kind in ("rss", "atom", "json"):
        (link,) = html_links(get(live_server, f"/{feed}.{kind}"), kind)
        assert link == live_server.url + page
        address, _, anchor = link.partition("#")
        response = requests.get(address, timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        if anchor:  # a topic's entry on the index page
            assert lxml.html.fromstring(response.content).xpath(f'//*[@id="{anchor}"]')


@pytest.mark.parametrize("path", ["/tags/org:no-such-group.atom", "/tags/org:isis.xml",
                                  "/tags/org:isis"])
def test_an_unknown_entity_or_format_is_a_404(live_server, path):
    assert get(live_server, path).status_code == 404


def test_an_entity_feed_follows_the_next_build(live_server, make_article):
    before = get(live_server, "/tags/org:isis.rss")
    live_server.storage.save_articles([make_article("isis2", title="داعش تتبنى هجوما",
                                                     topics=("security", "org:isis"))])
    live_server.cache.reload()

    after = get(live_server, "/tags/org:isis.rss")

    assert after.headers["ETag"] != before.headers["ETag"]
    assert "داعش تتبنى هجوما" in {e.title for e in feedparser.parse(after.content).entries}


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def raw(server, path: str, encoding: str, **headers) -> requests.Response:
    """The response with its body as sent (not decoded by requests)."""
    response = requests.get(server.url + path, stream=True, timeout=5,
                            headers={"Accept-Encoding": encoding, **headers})
    response.raw_body = response.raw.read(decode_content=False)
    return response


def test_brotli_is_preferred_and_decompresses_to_the_plain_body(live_server):
    plain = get(live_server, "/topics/security.atom")
    both = raw(live_server, "/topics/security.atom", "gzip, br")
    refused = raw(live_server, "/topics/security.atom", "br;q=0, gzip")

    assert both.headers["Content-Encoding"] == "br"
    assert brotli.decompress(both.raw_body) == plain.content
    assert refused.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(refused.raw_body) == plain.content
    assert len({plain.headers["ETag"], both.headers["ETag"], refused.headers["ETag"]}) == 3
    assert "accept-encoding" in both.headers["Vary"].lower()


def test_each_encodings_etag_validates(live_server):
    tag = raw(live_server, "/topics/security.rss", "br").headers["ETag"]

    again = raw(live_server, "/topics/security.rss", "br", **{"If-None-Match": tag})

    assert (again.status_code, again.raw_body) == (304, b"")
    assert again.headers["ETag"] == tag


def test_stale_validators_get_the_full_body(live_server):
    served = get(live_server, "/topics/security.rss")
    earlier = "Mon, 01 Jan 2001 00:00:00 GMT"

    other_tag = get(live_server, "/topics/security.rss", **{"If-None-Match": '"other"'})
    older = get(live_server, "/topics/security.rss", **{"If-Modified-Since": earlier})
    # If-None-Match decides when both are sent (RFC 9110 13.2.2).
    both = get(live_server, "/topics/security.rss", **{
        "If-None-Match": '"other"', "If-Modified-Since": served.headers["Last-Modified"]})

    assert [r.status_code for r in (other_tag, older, both)] == [200, 200, 200]
    assert older.content == served.content


def test_head_of_a_compressed_feed_has_the_headers_and_no_body(live_server):
    head = requests.head(live_server.url + "/topics/security.atom",
                         headers={"Accept-Encoding": "br"}, timeout=5)

    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["Content-Encoding"] == "br"
    assert head.headers["Content-Type"] == "application/atom+xml; charset=utf-8"


def max_age(response: requests.Response) -> int:
    directives = dict(part.strip().partition("=")[::2]
                      for part in response.headers["Cache-Control"].split(","))
    assert "public" in directives
    return int(directives["max-age"])


def test_cache_lifetime_follows_how_often_the_topic_updates(live_server, make_article):
    quiet = max_age(get(live_server, "/topics/security.atom"))
    live_server.storage.save_articles([make_article(f"busy-{n}", published=T0 + minutes(20 * n))
                                       for n in range(1, 12)])
    build_documents(live_server.settings, live_server.storage)
    live_server.cache.reload()

    busy = max_age(get(live_server, "/topics/security.atom"))

    assert quiet == 3600  # one article: nothing to go on, the longest
    assert busy == 120  # a tenth of the 20 minutes between items
