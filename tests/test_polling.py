"""Feed sources polled for real: pytest-httpserver on 127.0.0.1, SQLite in tmp_path.

Every test stores a `Source`, polls it with `feeds.polling.poll_source` and reads what was
stored (articles and the source's polling state) back from storage.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import (
    RSS_TYPE,
    SECURITY_BODY,
    SECURITY_TITLE,
    SEED_TITLE,
    SPORTS_ITEMS,
    config_text,
    rss_feed,
    rss_item,
    sports_feed,
)
from pytest_httpserver import HTTPServer
from werkzeug import Response

from feeds.config import load_settings
from feeds.model import Source
from feeds.pipeline import build_documents, ingest_seeds
from feeds.polling import (
    MAX_AUTO_PROCESSES,
    MIN_AUTO_POLLS,
    FeedReader,
    make_fetcher,
    poll_all,
    poll_source,
    reader_processes,
    sync_config_sources,
)
from storage import Storage

ETAG = '"feed-v1"'
LAST_MODIFIED = "Thu, 01 May 2025 08:00:00 GMT"
HTML_PAGE = ("<!DOCTYPE html><html lang=\"ar\" dir=\"rtl\"><head><title>الموقع</title></head>"
             "<body><h1>مرحبا</h1><p>هذه صفحة الموقع وليست خلاصة.</p></body></html>")
XSS_FRAGMENTS = ("<script", "onerror", "javascript:", "<iframe", "<style")


def forbidden(text: str) -> list[str]:
    """The XSS fragments in `text`, raw or entity-escaped (once or twice)."""
    lowered = text.lower()
    forms = []
    for fragment in XSS_FRAGMENTS:
        forms += [fragment, fragment.replace("<", "&lt;"), fragment.replace("<", "&amp;lt;"),
                  fragment.replace("<", "&#60;"), fragment.replace("<", "&#x3c;")]
    return [form for form in forms if form in lowered]


@pytest.fixture
def fetcher(settings):
    with make_fetcher(settings) as fetcher:
        yield fetcher


@pytest.fixture
def add(storage, httpserver: HTTPServer):
    """add(name="news", path="/feed", **fields) -> the stored Source for a URL on httpserver."""

    def add_source(name: str = "news", path: str = "/feed", **fields) -> Source:
        return storage.add_source(Source(name=name, url=httpserver.url_for(path), **fields))

    return add_source


@pytest.fixture
def poll(settings, storage, fetcher):
    """poll(name) -> IngestReport of one poll of the source as it is stored now."""

    def poll_once(name: str = "news", **kwargs):
        source = storage.source(name)
        assert source is not None, f"no stored source {name}"
        return poll_source(settings, storage, fetcher, source, **kwargs)

    return poll_once


def serve(httpserver: HTTPServer, body: bytes | str, path: str = "/feed", status: int = 200,
          content_type: str = RSS_TYPE, **headers: str) -> None:
    httpserver.expect_request(path).respond_with_data(body, status=status,
                                                      content_type=content_type,
                                                      headers=headers)


def seconds_after_fetch(source: Source) -> float:
    return (source.next_poll - source.last_fetch).total_seconds()


@pytest.fixture(autouse=True)
def _no_unhandled_requests(httpserver):
    """Every request the code made had a handler (pytest-httpserver answers 500 otherwise)."""
    yield
    httpserver.check_assertions()


# --- 200, 304, redirects, 410, 429, 5xx -------------------------------------------------


def test_200_stores_the_items_and_remembers_the_validators(httpserver, storage, add, poll):
    serve(httpserver, sports_feed(), ETag=ETAG, **{"Last-Modified": LAST_MODIFIED})
    add()
    before = datetime.now(UTC)

    report = poll()

    articles = storage.articles()
    assert report.new == 3
    assert sorted(a.title for a in articles) == sorted(t for t, _ in SPORTS_ITEMS)
    assert {a.source for a in articles} == {"news"}
    state = storage.source("news")
    assert (state.last_status, state.item_count, state.error_count) == (200, 3, 0)
    assert state.last_error is None
    assert (state.etag, state.last_modified) == (ETAG, LAST_MODIFIED)
    assert state.last_fetch is not None and state.next_poll > before
    assert state.next_poll > datetime.now(UTC)


def test_second_poll_is_conditional_and_304_stores_nothing(httpserver, storage, add, poll):
    serve(httpserver, sports_feed(), ETag=ETAG, **{"Last-Modified": LAST_MODIFIED})
    add()
    poll()
    httpserver.clear_all_handlers()
    httpserver.expect_request("/feed").respond_with_response(Response(status=304))

    report = poll()

    request = httpserver.log[-1][0]
    assert request.headers.get("If-None-Match") == ETAG
    assert request.headers.get("If-Modified-Since") == LAST_MODIFIED
    assert report.new == report.updated == 0
    assert "not modified" in report.note
    assert storage.article_count() == 3
    state = storage.source("news")
    assert (state.last_status, state.error_count, state.last_error) == (304, 0, None)
    assert (state.etag, state.last_modified) == (ETAG, LAST_MODIFIED)


def redirect(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request("/old").respond_with_response(
        Response(status=status, headers={"Location": "/new"}))
    serve(httpserver, sports_feed(), path="/new")


def test_301_updates_the_stored_url(httpserver, storage, add, poll):
    redirect(httpserver, 301)
    add(path="/old")

    poll()

    assert storage.source("news").url == httpserver.url_for("/new")
    assert storage.article_count() == 3


def test_302_keeps_the_stored_url(httpserver, storage, add, poll):
    redirect(httpserver, 302)
    add(path="/old")

    poll()

    assert storage.source("news").url == httpserver.url_for("/old")
    assert storage.article_count() == 3


def test_410_disables_the_source_with_a_warning(httpserver, storage, add, poll, caplog):
    serve(httpserver, "gone", status=410, content_type="text/plain")
    add(name="gone-feed")

    with caplog.at_level(logging.INFO):
        poll("gone-feed")

    state = storage.source("gone-feed")
    assert state.enabled is False
    assert state.last_status == 410
    assert "gone-feed" not in {s.name for s in storage.sources(include_disabled=False)}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("gone-feed" in message for message in warnings), warnings


def test_429_with_retry_after_waits_that_long(httpserver, storage, add, poll):
    serve(httpserver, "slow down", status=429, content_type="text/plain",
          **{"Retry-After": "3600"})
    add()

    poll()

    state = storage.source("news")
    assert state.error_count == 1 and state.last_status == 429
    assert "429" in state.last_error
    assert seconds_after_fetch(state) >= 3600 - 5


def test_500_backs_off_and_a_200_resets_the_errors(httpserver, storage, add, poll):
    for _ in range(2):
        httpserver.expect_oneshot_request("/feed").respond_with_data(
            "boom", status=500, content_type="text/plain")
    serve(httpserver, sports_feed())
    add()
    rng = random.Random(7)

    poll(rng=rng)
    first = storage.source("news")
    poll(rng=rng)
    second = storage.source("news")

    assert (first.error_count, second.error_count) == (1, 2)
    assert second.last_error and "500" in second.last_error
    assert second.last_status == 500
    assert second.next_poll > second.last_fetch and second.next_poll > datetime.now(UTC)
    assert seconds_after_fetch(second) >= seconds_after_fetch(first)
    assert storage.article_count() == 0

    poll(rng=rng)

    third = storage.source("news")
    assert (third.last_status, third.error_count, third.last_error) == (200, 0, None)
    assert storage.article_count() == 3


def test_html_page_is_an_error_and_stores_nothing(httpserver, storage, add, poll):
    serve(httpserver, HTML_PAGE, content_type="text/html; charset=utf-8")
    add()

    report = poll()

    state = storage.source("news")
    assert state.error_count == 1
    assert "not an RSS or Atom feed" in (state.last_error or "")
    assert report.new == 0 and storage.article_count() == 0


# --- bozo feeds ---------------------------------------------------------------------------


def bozo_warnings(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and name in r.getMessage()
            and "not well-formed" in r.getMessage()]


@pytest.mark.parametrize("broken", [
    # an unescaped & in a title
    rss_item("urn:b:1", "الرباط & الدار البيضاء: قطار جديد", "خط جديد بين المدينتين."),
    # a tag closed by the wrong name
    rss_item("urn:b:1", "افتتاح معرض الكتاب", "<b>دورة جديدة</i> للمعرض في الرباط."),
], ids=["ampersand", "mismatched-tags"])
def test_bozo_feed_is_stored_and_warned_about_once(httpserver, storage, add, poll, caplog,
                                                   broken):
    good = rss_item("urn:b:2", "مهرجان السينما يختتم دورته", "اختتم المهرجان دورته أمس.")
    serve(httpserver, rss_feed(broken, good))  # no validators: every poll gets a 200
    add(name="bozo-feed")

    with caplog.at_level(logging.INFO):
        first = poll("bozo-feed")
        state = storage.source("bozo-feed")
        second = poll("bozo-feed")

    assert first.new == 2 and storage.article_count() == 2
    assert state.bozo and "not well-formed" in state.bozo
    assert (state.last_status, state.error_count) == (200, 0)
    assert second.new == 0
    assert storage.source("bozo-feed").bozo == state.bozo
    assert len(bozo_warnings(caplog, "bozo-feed")) == 1, bozo_warnings(caplog, "bozo-feed")


# --- what gets stored: XSS, links, dates, language, topics --------------------------------


XSS_FEED = rss_feed(
    rss_item("urn:x:1", "خبر أمني &lt;script&gt;alert(1)&lt;/script&gt; عاجل",
             "<![CDATA[<p>قالت الشرطة إن العملية الأمنية نجحت.</p>"
             "<img src=x onerror=alert(1)>"
             '<p><a href="javascript:alert(1)">اضغط هنا</a></p>'
             '<iframe src="https://evil.example/"></iframe>'
             "<style>body{background:url(javascript:alert(1))}</style>"
             "<script>alert(2)</script><p>نهاية الخبر.</p>]]>",
             link="javascript:alert(1)"),
    rss_item("urn:x:2", "تقرير &amp;lt;script&amp;gt;alert(3)&amp;lt;/script&amp;gt; أمني",
             "&lt;p onclick=&quot;x&quot;&gt;نص &lt;script&gt;alert(4)&lt;/script&gt;"
             "&lt;iframe src=&quot;https://evil.example/&quot;&gt;&lt;/iframe&gt;&lt;/p&gt;",
             link="/news/2.html"),
)


def test_xss_payloads_never_reach_storage_or_published_feeds(httpserver, settings, storage,
                                                             add, poll):
    serve(httpserver, XSS_FEED)
    add(name="xss", topics=("security",))

    poll("xss")

    articles = storage.articles()
    assert len(articles) == 2
    for article in articles:
        stored = " ".join(str(v) for v in (article.title, article.content_html,
                                           article.summary, article.url, article.author))
        assert forbidden(stored) == [], (article.key, stored)
    build_documents(settings, storage)
    documents = {d.path: d.body.decode("utf-8") for d in storage.documents()}
    feeds = [documents["topics/security.rss"], documents["topics/security.atom"]]
    assert all("نهاية الخبر" in feed for feed in feeds)  # the entry is there...
    for feed in feeds:
        assert forbidden(feed) == []  # ...without its payloads


def test_relative_links_are_resolved_against_the_feed_url(httpserver, storage, add, poll):
    feed = rss_feed(
        rss_item("urn:r:1", "خبر بروابط نسبية",
                 '&lt;p&gt;&lt;a href="../more.html"&gt;المزيد&lt;/a&gt; '
                 '&lt;img src="img/photo.jpg" alt="صورة"&gt;&lt;/p&gt;',
                 link="story-1.html"),
        rss_item("urn:r:2", "خبر برابط من الجذر", "نص قصير.", link="/abs/2.html"),
    )
    serve(httpserver, feed, path="/feeds/main.xml")
    add(path="/feeds/main.xml")

    poll()

    by_key = {a.key: a for a in storage.articles()}
    assert by_key["urn:r:1"].url == httpserver.url_for("/feeds/story-1.html")
    assert by_key["urn:r:2"].url == httpserver.url_for("/abs/2.html")
    content = by_key["urn:r:1"].content_html
    assert f'href="{httpserver.url_for("/more.html")}"' in content
    assert f'src="{httpserver.url_for("/feeds/img/photo.jpg")}"' in content


def test_undated_item_is_published_when_first_seen_and_marked_estimated(httpserver, storage,
                                                                        add, poll):
    dated = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    serve(httpserver, rss_feed(rss_item("urn:d:1", "خبر بلا تاريخ", "نص الخبر."),
                               rss_item("urn:d:2", "خبر له تاريخ", "نص آخر.", published=dated)))
    add()
    before = datetime.now(UTC).replace(microsecond=0)

    poll()

    after = datetime.now(UTC)
    by_key = {a.key: a for a in storage.articles()}
    undated, with_date = by_key["urn:d:1"], by_key["urn:d:2"]
    assert undated.date_estimated is True
    assert before <= undated.published <= after
    assert undated.published == storage.source("news").last_fetch
    assert with_date.date_estimated is False and with_date.published == dated


def test_declared_english_on_arabic_text_is_stored_as_arabic(httpserver, storage, add, poll):
    serve(httpserver, rss_feed(*(rss_item(f"urn:l:{n}", title, body)
                                 for n, (title, body) in enumerate(SPORTS_ITEMS)),
                               language="en"))
    add()

    poll()

    assert [a.language for a in storage.articles()] == ["ar"] * 3


def test_source_topics_are_added_to_every_article(httpserver, storage, add, poll):
    serve(httpserver, sports_feed())
    add(topics=("security",))

    poll()

    articles = storage.articles()
    assert len(articles) == 3
    assert all("security" in a.topics for a in articles), [a.topics for a in articles]
    assert len(storage.articles("security")) == 3


# --- full text ------------------------------------------------------------------------------

PAGE_PARAGRAPHS = [
    "أعلنت وزارة التجهيز والماء عن إطلاق مشروع جديد لتحلية مياه البحر في مدينة الداخلة، "
    "بطاقة إنتاجية تبلغ ثلاثين مليون متر مكعب سنويا، لتلبية حاجيات السكان والفلاحة في المنطقة.",
    "وأوضح بلاغ للوزارة أن المشروع سيمول بشراكة بين القطاعين العام والخاص، وأن الأشغال "
    "ستنطلق خلال الأشهر المقبلة على أن تنتهي في غضون ثلاث سنوات من تاريخ انطلاقها الرسمي.",
    "ويأتي هذا المشروع في سياق البرنامج الوطني للتزويد بالماء الشروب ومياه السقي، الذي "
    "يهدف إلى مواجهة آثار الجفاف المتكرر الذي تعرفه المملكة منذ عدة سنوات متتالية.",
    "وأكد المسؤولون أن المحطة ستعتمد على الطاقات المتجددة لتقليص كلفة الإنتاج والحد من "
    "الانبعاثات، وهو ما يجعلها من أكبر المحطات من نوعها في القارة الإفريقية.",
    "وينتظر أن يوفر المشروع مئات فرص الشغل المباشرة وغير المباشرة لفائدة شباب المنطقة، "
    "إلى جانب تشجيع الاستثمار في الأنشطة الفلاحية الموجهة للتصدير نحو الأسواق الخارجية.",
]
NAV_TEXT = "الرئيسية سياسة اقتصاد رياضة اتصل بنا"
FOOTER_TEXT = "جميع الحقوق محفوظة لموقع المثال"


def article_page() -> str:
    paragraphs = "".join(f"<p>{p}</p>" for p in PAGE_PARAGRAPHS)
    return ("<!DOCTYPE html><html lang=\"ar\" dir=\"rtl\"><head><meta charset=\"utf-8\">"
            "<title>مشروع لتحلية مياه البحر في الداخلة</title></head><body>"
            f"<nav><ul>{''.join(f'<li><a href=/{n}>{w}</a></li>' for n, w in enumerate(NAV_TEXT.split()))}</ul>"  # noqa: E501
            f"<p>{NAV_TEXT}</p></nav>"
            f"<article><h1>مشروع لتحلية مياه البحر في الداخلة</h1>{paragraphs}</article>"
            f"<footer><p>{FOOTER_TEXT}</p></footer></body></html>")


def test_full_text_source_stores_the_page_text_or_keeps_the_summary(httpserver, storage, add,
                                                                   poll):
    summary_ok = "مشروع جديد لتحلية مياه البحر."
    summary_404 = "ملخص خبر صفحته غير موجودة."
    serve(httpserver, rss_feed(
        rss_item("urn:f:1", "مشروع لتحلية مياه البحر في الداخلة", summary_ok,
                 link="/articles/1.html"),
        rss_item("urn:f:2", "خبر صفحته مفقودة", summary_404, link="/articles/404.html")))
    serve(httpserver, article_page(), path="/articles/1.html",
          content_type="text/html; charset=utf-8")
    httpserver.expect_request("/articles/404.html").respond_with_data(
        "not found", status=404, content_type="text/plain")
    add(full_text=True)

    poll()

    by_key = {a.key: a for a in storage.articles()}
    full = by_key["urn:f:1"].content_html
    assert "بطاقة إنتاجية تبلغ ثلاثين مليون متر مكعب سنويا" in full
    assert "في غضون ثلاث سنوات من تاريخ انطلاقها الرسمي" in full
    assert "اتصل بنا" not in full and FOOTER_TEXT not in full
    assert summary_404 in by_key["urn:f:2"].content_html
    requested = {request.path for request, _ in httpserver.log}
    assert {"/articles/1.html", "/articles/404.html"} <= requested


# --- config sources -------------------------------------------------------------------------


def write_config(tmp_path: Path, db: Path, seeds: Path, sources: dict[str, str]) -> Path:
    blocks = "".join(f'\n[[sources]]\nname = "{name}"\nurl = "{url}"\n'
                     for name, url in sources.items())
    path = tmp_path / "sources.toml"
    path.write_text(config_text(db, seeds) + blocks, "utf-8")
    return path


def test_config_sources_are_synced_and_dropped_ones_keep_their_articles(
        httpserver, tmp_path, db_path, seeds_dir, storage, fetcher):
    serve(httpserver, sports_feed("one"), path="/one")
    serve(httpserver, sports_feed("two"), path="/two")
    storage.add_source(Source(name="mine", url=httpserver.url_for("/mine")))
    both = load_settings(write_config(tmp_path, db_path, seeds_dir, {
        "cfg-one": httpserver.url_for("/one"), "cfg-two": httpserver.url_for("/two")}))

    sync_config_sources(both, storage)

    stored = {s.name: s for s in storage.sources()}
    assert set(stored) == {"cfg-one", "cfg-two", "mine"}
    assert (stored["cfg-one"].origin, stored["cfg-two"].origin) == ("config", "config")
    assert stored["cfg-two"].url == httpserver.url_for("/two")
    assert stored["mine"].origin == "cli"
    poll_source(both, storage, fetcher, stored["cfg-two"])
    assert len([a for a in storage.articles() if a.source == "cfg-two"]) == 3
    sync_config_sources(both, storage)  # the config names no title: the feed's stays
    assert storage.source("cfg-two").title == "مصدر تجريبي"

    one = load_settings(write_config(tmp_path, db_path, seeds_dir, {
        "cfg-one": httpserver.url_for("/one")}))
    sync_config_sources(one, storage)

    assert {s.name for s in storage.sources()} == {"cfg-one", "mine"}
    assert storage.source("cfg-two") is None
    assert len([a for a in storage.articles() if a.source == "cfg-two"]) == 3


# --- seeds and sources meet in the same topic feeds -----------------------------------------


def test_feed_article_and_seed_article_share_a_topic_feed(httpserver, settings, storage, add,
                                                          poll):
    serve(httpserver, rss_feed(rss_item("urn:s:1", SECURITY_TITLE, SECURITY_BODY,
                                        link="/news/security-1.html",
                                        published=datetime.now(UTC) - timedelta(hours=1))))
    add()  # no topics of its own: the tagger puts the entry in `security`

    ingest_seeds(settings, storage)
    poll()
    build_documents(settings, storage)

    assert {a.title for a in storage.articles("security")} == {SEED_TITLE, SECURITY_TITLE}
    documents = {d.path: d.body.decode("utf-8") for d in storage.documents()}
    for kind in ("rss", "atom"):
        feed = documents[f"topics/security.{kind}"]
        assert SEED_TITLE in feed and SECURITY_TITLE in feed, kind


# --- worker processes -----------------------------------------------------------------------


def stored_articles(storage) -> list[tuple]:
    return sorted((a.id, a.title, a.content_html, a.summary, a.language, a.topics, a.url)
                  for a in storage.articles(limit=100))


def test_worker_processes_store_what_the_polling_thread_stores(httpserver, settings, tmp_path):
    serve(httpserver, sports_feed())
    serve(httpserver, rss_feed(rss_item("urn:s:1", SECURITY_TITLE, SECURITY_BODY),
                               language="en"), path="/security")
    serve(httpserver, rss_feed(rss_item("urn:f:1", "مشروع لتحلية مياه البحر في الداخلة",
                                        "مشروع جديد لتحلية مياه البحر.",
                                        link="/articles/1.html")), path="/full")
    serve(httpserver, article_page(), path="/articles/1.html",
          content_type="text/html; charset=utf-8")
    results = {}
    for processes in (0, 2):
        polled = replace(settings, storage_url=f"sqlite:///{tmp_path / f'{processes}.db'}",
                         fetch=replace(settings.fetch, processes=processes))
        storage = Storage(polled.storage_url)
        for name, path, fields in (("sports", "/feed", {"topics": ("morocco",)}),
                                   ("security", "/security", {}),
                                   ("full", "/full", {"full_text": True})):
            storage.add_source(Source(name=name, url=httpserver.url_for(path), **fields))
        with make_fetcher(polled) as fetcher:
            first = poll_all(polled, storage, fetcher)
            again = poll_all(polled, storage, fetcher)  # nothing changed: nothing prepared
        results[processes] = stored_articles(storage)
        storage.close()
        assert sum(r.new for r in first) == 5 and sum(r.unchanged for r in again) == 5
    assert results[2] == results[0]
    by_title = {row[1]: row for row in results[2]}
    assert by_title[SECURITY_TITLE][4] == "ar"  # detected in the worker, not the declared en
    assert "بطاقة إنتاجية تبلغ ثلاثين مليون" in by_title["مشروع لتحلية مياه البحر في الداخلة"][2]
    assert sum("morocco" in row[5] for row in results[2]) >= 3  # the source's topic


def test_auto_parsing_processes_are_for_many_polls_and_a_number_is_obeyed(settings):
    per_core = min(os.cpu_count() or 1, MAX_AUTO_PROCESSES) if (os.cpu_count() or 1) > 1 else 0
    assert reader_processes(settings) == per_core  # nashra run: many polls over time
    assert reader_processes(settings, MIN_AUTO_POLLS) == per_core
    assert reader_processes(settings, MIN_AUTO_POLLS - 1) == 0  # quicker in the threads
    three = replace(settings, fetch=replace(settings.fetch, processes=3))
    assert reader_processes(three, 2) == 3 and reader_processes(three, 1) == 0


def test_the_parsing_processes_forkserver_builds_what_every_process_reads():
    """feeds.reader_preload, which the forkserver imports, builds the tables a parsing
    process reads, so the processes forked from it need not build them each."""
    built = ("from feeds import dedupe, tagging, text; "
             "print(text.fold_table.cache_info().currsize, "
             "dedupe._folded_and_spaced_table.cache_info().currsize, "
             "tagging._gazetteer.cache_info().currsize, text._detector.cache_info().currsize, "
             "tagging.forms.cache_info().currsize > 2000)")
    for preload, expected in (("", "0 0 0 0 False"), ("import feeds.reader_preload; ",
                                                      "1 1 1 1 True")):
        found = subprocess.run([sys.executable, "-c", preload + built], capture_output=True,
                               text=True, check=True, cwd=Path(__file__).parent.parent)
        assert found.stdout.split() == expected.split()


def reader_workers() -> list[int]:
    """The pids of this process's parsing processes: the children of its forkserver."""
    return [worker for server in children(os.getpid())
            if b"forkserver" in Path(f"/proc/{server}/cmdline").read_bytes()
            for worker in children(server)]


def children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").glob("*/children")
            for child in task.read_text().split()]


def test_a_killed_parsing_process_fails_one_poll_and_the_next_reads_the_feed(
        httpserver, settings, storage, add, fetcher):
    serve(httpserver, sports_feed(), ETag=ETAG)
    add()
    with FeedReader(settings, processes=1) as reader:
        assert poll_source(settings, storage, fetcher, storage.source("news"),
                           reader=reader).new == 3
        storage.save_source_state(replace(storage.source("news"), etag=None))
        for pid in reader_workers():
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)

        failed = poll_source(settings, storage, fetcher, storage.source("news"), reader=reader)
        source = storage.source("news")
        assert "parsing process died" in failed.note and source.error_count == 1
        assert source.etag is None  # not remembered: the next poll fetches the feed whole

        again = poll_source(settings, storage, fetcher, source, reader=reader)
        assert again.unchanged == 3 and storage.source("news").error_count == 0


def test_a_poll_that_finds_its_reader_closed_leaves_the_source_as_stored(
        httpserver, settings, storage, add, fetcher):
    """Stopping `nashra run` closes the reader while polls may still be fetching: such a
    poll stores nothing and keeps the source's state, so the next run polls it again."""
    serve(httpserver, sports_feed(), ETag=ETAG)
    add()
    before = storage.source("news")
    reader = FeedReader(settings, processes=1)
    reader.close()
    report = poll_source(settings, storage, fetcher, before, reader=reader)
    assert report.note == "not read: stopping" and report.next_poll is None
    assert storage.source("news") == before and storage.article_count() == 0
