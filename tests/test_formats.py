"""JSON Feed 1.1 and the browser view (XSLT) of RSS/Atom, as served over HTTP."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime

import feedparser
import lxml.html
import pytest
import requests
from conftest import SEED_TITLE
from lxml import etree
from test_partners import add_partner, with_linked_article

from feeds.pipeline import build_documents
from feeds.text import RLM

PLAIN = {"Accept-Encoding": "identity"}
ENGLISH_TITLE = "Police dismantle a smuggling network"


def get(url: str, **headers) -> requests.Response:
    return requests.get(url, headers={**PLAIN, **headers}, timeout=10)


@pytest.fixture
def mixed(live_server, make_article):
    """The seed, an English entry with a link and author, and an Arabic title opening in Latin."""
    live_server.storage.save_articles([
        make_article("en", title=ENGLISH_TITLE, language="en", author="Staff",
                     content_html="<p>The police dismantled a network.</p>",
                     url="https://news.example.org/en/1"),
        make_article("latin", title="BCIJ يفكك خلية"),
    ])
    build_documents(live_server.settings, live_server.storage)
    live_server.cache.reload()
    return live_server


def test_json_feed_has_the_required_fields_and_its_media_type(mixed):
    url = f"{mixed.url}/topics/security.json"
    response = get(url)
    feed = response.json()

    assert response.headers["Content-Type"] == "application/feed+json; charset=utf-8"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] and feed["feed_url"] == url and feed["language"] == "ar"
    assert len(feed["items"]) == 3
    for item in feed["items"]:
        assert item["id"] and (item.get("content_html") or item.get("content_text"))
        assert datetime.fromisoformat(item["date_published"]).tzinfo is not None


def test_json_feed_is_right_to_left_aware_like_atom(mixed):
    items = {i["id"]: i for i in get(f"{mixed.url}/topics/security.json").json()["items"]}
    atom = feedparser.parse(get(f"{mixed.url}/topics/security.atom").content)

    assert {i["title"] for i in items.values()} == {e.title for e in atom.entries}
    assert RLM + "BCIJ يفكك خلية" in {i["title"] for i in items.values()}
    english = next(i for i in items.values() if i["title"] == ENGLISH_TITLE)
    seed = next(i for i in items.values() if i["title"] == SEED_TITLE)
    assert english["content_html"].startswith('<div dir="ltr" lang="en">')
    assert (english["language"], english["url"], english["authors"]) == (
        "en", "https://news.example.org/en/1", [{"name": "Staff"}])
    assert seed["content_html"].startswith('<div dir="rtl" lang="ar">')
    assert seed["language"] == "ar" and "url" not in seed


def test_partner_json_feed_is_shaped_like_its_atom(live_server, make_article):
    with_linked_article(live_server, make_article)
    token = add_partner(live_server, "json", full_content=False, utm_source="j")

    feed = get(f"{live_server.url}/p/{token}/topics/security.json").json()

    linked = next(i for i in feed["items"] if "url" in i)
    assert "utm_source=j" in linked["url"]
    assert all(i["content_html"].endswith(f"<p>{i['summary']}</p></div>") for i in feed["items"])
    assert token not in feed["feed_url"]


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_feeds_point_browsers_at_a_stylesheet_and_still_parse(live_server, kind):
    body = get(f"{live_server.url}/topics/security.{kind}").content
    instruction = etree.fromstring(body).getprevious()

    assert isinstance(instruction, etree._ProcessingInstruction)
    assert instruction.target == "xml-stylesheet"
    assert instruction.get("type") == "text/xsl"
    assert instruction.get("href") == f"{live_server.url}/style/ar.xsl"
    assert feedparser.parse(body).bozo == 0


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_the_stylesheet_shows_the_feed_as_a_right_to_left_page(live_server, kind):
    body = get(f"{live_server.url}/topics/security.{kind}").content
    href = etree.fromstring(body).getprevious().get("href")
    stylesheet = get(href)

    page = etree.XSLT(etree.fromstring(stylesheet.content))(etree.fromstring(body))
    root = page.getroot()

    assert stylesheet.headers["Content-Type"] == "text/xsl; charset=utf-8"
    assert (root.get("lang"), root.get("dir")) == ("ar", "rtl")
    assert root.findtext("head/title").startswith("أمن")
    assert ["".join(li.itertext()).startswith(SEED_TITLE) for li in root.iter("li")] == [True]


def test_index_links_every_format(live_server):
    page = get(f"{live_server.url}/").text

    assert 'type="application/feed+json" title="أمن (JSON Feed 1.1)" ' in page
    assert 'href="/topics/security.json"' in page


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_browsers_get_the_feed_as_xml_and_readers_as_a_feed(live_server, kind):
    url = f"{live_server.url}/topics/security.{kind}"
    browser = get(url, Accept=BROWSER_ACCEPT)
    reader = get(url, Accept=feedparser.http.ACCEPT_HEADER)

    assert browser.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert reader.headers["Content-Type"] == f"application/{kind}+xml; charset=utf-8"
    assert browser.content == reader.content
    assert browser.headers["Vary"] == "Accept-Encoding, Accept"


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="needs headless Chromium (Debian's chromium package)")
@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_chromium_shows_the_feed_as_a_right_to_left_page(live_server, kind):
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         f"{live_server.url}/topics/security.{kind}"],
        capture_output=True, timeout=120, check=True).stdout
    page = lxml.html.document_fromstring(dom)

    assert (page.get("lang"), page.get("dir")) == ("ar", "rtl")
    assert SEED_TITLE in page.text_content()
    assert page.find_class("note")
