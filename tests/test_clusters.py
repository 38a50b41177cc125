"""The dedupe stage end to end: real seeds, real feeds on 127.0.0.1, real SQLite, feedparser.

Each layer makes one cluster; feeds show a cluster once and credit the other outlets (RSS
and Atom, RTL and LTR); split and explain work from the CLI; a restart decides as before.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from conftest import RSS_TYPE, rss_feed, rss_item
from pytest_httpserver import HTTPServer

from feeds.cli import cli
from feeds.clusters import Deduper, deduper_for, forget_deduper
from feeds.model import Source
from feeds.pipeline import build_documents, ingest_seeds
from feeds.polling import make_fetcher, poll_source
from storage import Storage
from storage.schema import SCHEMA_VERSION

pytestmark = pytest.mark.both_backends

REPO = Path(__file__).resolve().parent.parent
SEED_TEXT = next((REPO / "seeds").glob("*.txt")).read_text("utf-8")
SEED_LINES = [line for line in SEED_TEXT.split("\n\n") if line.strip()]
SEED_TITLE = SEED_LINES[0].strip()
# The shipped seed's paragraphs, without the site chrome at its end.
PARAGRAPHS = [p.strip() for p in SEED_LINES[1:] if len(p.split()) > 12]
FULL_BODY = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)

ENGLISH = [
    "The central bank kept its main interest rate unchanged on Tuesday, citing a slower "
    "rise in consumer prices and a stable outlook for the currency over the coming months.",
    "Officials said growth had picked up in the third quarter, led by exports of phosphates, "
    "cars and farm produce, while tourism receipts reached a record for the season.",
    "Analysts had expected the decision after inflation fell for a fourth month in a row, "
    "and most forecast a first cut in the spring if food prices keep easing as they have.",
    "The bank also said it would continue to widen the band in which the currency trades, "
    "a reform it began several years ago with the support of international lenders.",
]


@pytest.fixture
def fetcher(settings):
    with make_fetcher(settings) as fetcher:
        yield fetcher


@pytest.fixture(autouse=True)
def _fresh_window(storage):
    """Each test's storage starts with its own window, as a new process would."""
    yield
    forget_deduper(storage)


def ingest_seed_of_yesterday(settings, storage) -> None:
    """The shipped seed, dated a day ago: feed items of the last hours come after it.

    (A seed is dated by its file's mtime, which a fresh clone sets to the checkout time.)
    """
    yesterday = (datetime.now(UTC) - timedelta(days=1)).timestamp()
    for seed in settings.seeds_dir.glob("*.txt"):
        os.utime(seed, (yesterday, yesterday))
    ingest_seeds(settings, storage)


def serve(httpserver: HTTPServer, path: str, *items: str, language: str = "ar",
          title: str = "مصدر") -> str:
    body = rss_feed(*items, title=title, language=language)
    httpserver.expect_request(path).respond_with_data(body, content_type=RSS_TYPE)
    return httpserver.url_for(path)


def poll(settings, storage, fetcher, name: str, url: str, title: str | None = None,
         **fields):
    source = storage.add_source(Source(name=name, url=url, title=title, **fields))
    return poll_source(settings, storage, fetcher, source)


def item(guid: str, title: str, paragraphs: list[str], link: str | None = None,
         hours_ago: float = 2.0) -> str:
    html = "".join(f"&lt;p&gt;{p}&lt;/p&gt;" for p in paragraphs)
    return rss_item(guid, title, html, link, datetime.now(UTC) - timedelta(hours=hours_ago))


def feed_of(settings, storage, topic: str, kind: str):
    documents = {d.path: d for d in storage.documents()}
    parsed = feedparser.parse(documents[f"topics/{topic}.{kind}"].body)
    assert parsed.bozo == 0, parsed.bozo_exception
    return parsed


def with_titles(parsed, title: str) -> list:
    return [e for e in parsed.entries if e.title.lstrip("\u200f") == title]


# --- the layers -------------------------------------------------------------------------


def test_seed_and_feed_copy_of_the_same_text_are_one_story_crediting_both(
        httpserver, settings, storage, fetcher):
    ingest_seed_of_yesterday(settings, storage)
    url = serve(httpserver, "/agency", item("a1", "عنوان آخر للخبر نفسه", PARAGRAPHS,
                                            "https://agency.example.ma/story/1"))
    report = poll(settings, storage, fetcher, "agency", url, "وكالة الأنباء")
    assert (report.new, report.duplicates) == (1, 1)
    build_documents(settings, storage)

    for kind in ("rss", "atom"):
        parsed = feed_of(settings, storage, "security", kind)
        assert len(parsed.entries) == 1, "the copy must not be a second entry"
        content = parsed.entries[0].content[0].value
        assert "نشرته أيضًا" in content
        assert 'href="https://agency.example.ma/story/1"' in content
        assert "وكالة الأنباء" in content
    assert len(storage.articles("security")) == 1
    assert storage.topic_counts()["security"] == 1


def test_tracking_parameters_and_amp_make_the_same_url(httpserver, settings, storage,
                                                       fetcher):
    first = serve(httpserver, "/one", item("x", "خبر", ENGLISH[:1],
                                           "https://www.news.example.com/a/1/"))
    second = serve(httpserver, "/two", item("y", "خبر", ENGLISH[1:2],
                                            "http://news.example.com/a/1/amp?utm_source=x",
                                            hours_ago=1))  # later: it joins the first
    poll(settings, storage, fetcher, "one", first)
    report = poll(settings, storage, fetcher, "two", second)
    assert report.duplicates == 1
    copy = storage.article(storage.members(storage.articles()[0].id)[0].id)
    assert copy.dedupe.layer == "url"


def test_the_same_text_with_other_diacritics_and_letter_forms_is_the_text_layer(
        httpserver, settings, storage, fetcher):
    varied = [p.replace("ا", "أ", 3).replace("ي", "ى", 2).replace("ة", "ه", 2)
              .replace("المغرب", "المَغْرِب").replace("الأمن", "الامن") for p in PARAGRAPHS[:4]]
    first = serve(httpserver, "/one", item("1", "خبر", PARAGRAPHS[:4]))
    second = serve(httpserver, "/two", item("2", "خبر", varied, hours_ago=1))
    poll(settings, storage, fetcher, "one", first)
    assert poll(settings, storage, fetcher, "two", second).duplicates == 1
    [story] = storage.articles()
    assert storage.members(story.id)[0].dedupe.layer == "text"


def test_an_edit_by_the_same_source_is_an_update_not_a_duplicate(httpserver, settings,
                                                                  storage, fetcher):
    url = serve(httpserver, "/feed", item("g1", "خبر", PARAGRAPHS[:3]))
    poll(settings, storage, fetcher, "news", url)
    httpserver.clear()
    serve(httpserver, "/feed", item("g1", "خبر معدل", [*PARAGRAPHS[:3], "فقرة مضافة للتصحيح."]))
    report = poll(settings, storage, fetcher, "news", url)
    assert (report.new, report.updated, report.duplicates) == (0, 1, 0)
    [story] = storage.articles()
    article = storage.article(story.id)
    assert article.title == "خبر معدل" and article.dedupe.duplicate_of is None


def test_a_prefix_copy_joins_by_containment_and_a_different_story_does_not(
        httpserver, settings, storage, fetcher):
    url = serve(httpserver, "/full", item("f", SEED_TITLE, PARAGRAPHS, hours_ago=5))
    poll(settings, storage, fetcher, "full", url)
    half = PARAGRAPHS[: max(2, len(PARAGRAPHS) // 2)]
    other = serve(httpserver, "/other",
                  item("p", "مقدمة الخبر", half, hours_ago=3),
                  item("e", "The bank", ENGLISH, hours_ago=3))
    report = poll(settings, storage, fetcher, "other", other)
    assert (report.new, report.duplicates) == (2, 1)
    prefix = next(a for a in storage.members(storage.articles()[-1].id))
    assert prefix.dedupe.layer in ("near", "text")
    assert prefix.dedupe.containment >= 0.8


def test_an_earlier_copy_polled_later_leads_its_cluster(httpserver, settings, storage,
                                                        fetcher):
    late = serve(httpserver, "/late", item("l", "لاحق", PARAGRAPHS, hours_ago=1))
    poll(settings, storage, fetcher, "late", late)
    early = serve(httpserver, "/early", item("e", "سابق", PARAGRAPHS, hours_ago=5))
    assert poll(settings, storage, fetcher, "early", early).duplicates == 1
    [story] = storage.articles()
    assert story.source == "early"
    assert [m.source for m in storage.members(story.id)] == ["late"]


def test_a_much_more_complete_copy_takes_over_the_cluster(httpserver, settings, storage,
                                                          fetcher):
    short = serve(httpserver, "/short", item("s", "موجز", PARAGRAPHS[:4], hours_ago=6))
    poll(settings, storage, fetcher, "short", short, "الموجز")
    full = serve(httpserver, "/full", item("f", SEED_TITLE, PARAGRAPHS, hours_ago=1))
    poll(settings, storage, fetcher, "full", full, "المصدر الكامل")
    [story] = storage.articles()
    assert story.source == "full", "the full text must be the cluster's canonical article"
    assert [c.url for c in story.reported_by] == [None]
    assert story.other_outlets[0].name == "الموجز"


# --- crediting in feeds -------------------------------------------------------------------


def test_ltr_cluster_is_credited_in_english_with_the_origin_as_source(
        httpserver, settings, storage, fetcher):
    first = serve(httpserver, "/wire", item("w", "Rates unchanged", ENGLISH,
                                            "https://wire.example.com/rates", hours_ago=4),
                  language="en", title="Wire")
    second = serve(httpserver, "/paper", item("p", "Bank holds rates", ENGLISH,
                                              "https://paper.example.com/bank", hours_ago=1),
                   language="en", title="Paper")
    poll(settings, storage, fetcher, "wire", first, "The Wire", topics=("economy",))
    poll(settings, storage, fetcher, "paper", second, "Daily Paper", topics=("economy",))
    economy = replace(settings.topic("economy"), language="en")
    settings = replace(settings, topics=(economy,))
    storage_topics = storage.articles("economy")
    assert len(storage_topics) == 1, "the two copies are one story in the economy topic"
    build_documents(settings, storage)

    atom = feed_of(settings, storage, "economy", "atom").entries[0]
    assert atom.source.title == "The Wire"
    assert [(link.rel, link.href) for link in atom.source.links] == [("self", first)]
    assert "Also reported by" in atom.content[0].value
    body = {d.path: d for d in storage.documents()}["topics/economy.atom"].body.decode()
    assert '<div dir="ltr" lang="en">' in body
    assert 'Also reported by: <a href="https://paper.example.com/bank" dir="ltr">Daily Paper</a>' \
        in body
    rss = feed_of(settings, storage, "economy", "rss").entries[0]
    assert rss.source.title == "The Wire" and rss.source.href == first
    assert "Also reported by" in rss.content[0].value


def test_rtl_credit_keeps_a_latin_outlet_name_isolated(httpserver, settings, storage, fetcher):
    ingest_seed_of_yesterday(settings, storage)
    url = serve(httpserver, "/afp", item("a", "نسخة", PARAGRAPHS, "https://afp.example.com/1"))
    poll(settings, storage, fetcher, "afp", url, "AFP")
    build_documents(settings, storage)
    feed_of(settings, storage, "security", "atom")  # well-formed, one entry
    atom = {d.path: d for d in storage.documents()}["topics/security.atom"].body.decode()
    assert '<div dir="rtl" lang="ar">' in atom
    assert 'نشرته أيضًا: <a href="https://afp.example.com/1" dir="ltr">AFP</a>' in atom


# --- split, explain, restart ---------------------------------------------------------------


def _two_copies(httpserver, settings, storage, fetcher) -> tuple[str, str]:
    ingest_seed_of_yesterday(settings, storage)
    url = serve(httpserver, "/copy", item("c", "نسخة", PARAGRAPHS, "https://copy.example/1"))
    poll(settings, storage, fetcher, "copy", url)
    [story] = storage.articles()
    [member] = storage.members(story.id)
    return story.id, member.id


def test_split_from_the_cli_undoes_the_merge_and_rebuilds_the_feeds(
        httpserver, settings, storage, fetcher, config_file):
    root, member = _two_copies(httpserver, settings, storage, fetcher)
    build_documents(settings, storage)
    assert len(feed_of(settings, storage, "security", "atom").entries) == 1

    result = CliRunner().invoke(cli, ["--config", str(config_file), "dedupe", "split",
                                      member[:8]])
    assert result.exit_code == 0, result.output
    assert "now stands alone" in result.output
    assert {a.id for a in storage.articles("security")} == {root, member}
    assert len(feed_of(settings, storage, "security", "atom").entries) == 2
    assert storage.article(member).dedupe.layer == "split"


def test_splitting_the_canonical_article_leaves_its_earliest_copy_in_charge(
        httpserver, settings, storage, fetcher):
    root, member = _two_copies(httpserver, settings, storage, fetcher)
    third = serve(httpserver, "/third", item("t", "ثالثة", PARAGRAPHS, hours_ago=0.5))
    poll(settings, storage, fetcher, "third", third)
    assert len(storage.members(root)) == 2
    storage.split(root)
    assert storage.article(root).dedupe.duplicate_of is None
    assert storage.article(member).dedupe.duplicate_of is None
    assert [m.source for m in storage.members(member)] == ["third"]


def test_explain_names_the_layer_and_the_figures(httpserver, settings, storage, fetcher,
                                                 config_file):
    root, member = _two_copies(httpserver, settings, storage, fetcher)
    english = serve(httpserver, "/en", item("e", "The bank", ENGLISH), language="en")
    poll(settings, storage, fetcher, "en", english)
    other = next(a.id for a in storage.articles() if a.language == "en")
    runner = CliRunner()
    same = runner.invoke(cli, ["--config", str(config_file), "dedupe", "explain", root, member])
    assert same.exit_code == 0, same.output
    assert "verdict: duplicates (layer: near)" in same.output  # the chrome-free seed vs
    assert "similarity 0.9" in same.output  # the feed copy that lost its short lines
    assert "one cluster, canonical" in same.output
    different = runner.invoke(cli, ["--config", str(config_file), "dedupe", "explain",
                                    root[:8], other[:8]])
    assert "verdict: not duplicates" in different.output
    assert "in different clusters" in different.output
    missing = runner.invoke(cli, ["--config", str(config_file), "dedupe", "explain", root,
                                  "nope"])
    assert missing.exit_code != 0 and "no stored article 'nope'" in missing.output


def test_after_a_restart_the_window_decides_as_before(httpserver, settings, storage, fetcher):
    ingest_seed_of_yesterday(settings, storage)
    url = serve(httpserver, "/a", item("1", "نسخة", PARAGRAPHS[:4]),
                item("2", "The bank", ENGLISH[:3]))
    poll(settings, storage, fetcher, "a", url)
    live = deduper_for(storage, settings.dedupe)
    restarted = Deduper.load(storage)
    assert restarted.members.keys() == live.members.keys()
    assert restarted.urls == live.urls and restarted.fingerprints == live.fingerprints

    probes = [a for a in storage.articles(limit=10)]
    probes = [replace(a, source="probe", id="", dedupe=None) for a in probes]
    probes += [replace(probes[0], key="x", source="probe2", id="",
                       content_html="".join(f"<p>{p}</p>" for p in PARAGRAPHS[1:5]))]
    assert [a.dedupe for a in live.assign(probes, {})] == \
        [a.dedupe for a in restarted.assign(probes, {})]


def test_an_earlier_copy_takes_over_the_whole_cluster_in_the_window(make_article):
    """Copies polled latest first: each earlier one leads, and brings the copies already
    in the cluster along, so the next copy joins the earliest whichever copy it matches."""
    deduper = Deduper(window=timedelta(days=14))
    now = datetime.now(UTC)
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    late, middle, early, later = (
        make_article(name, content_html=body, published=now - timedelta(hours=hours_ago))
        for name, hours_ago in (("late", 1), ("middle", 3), ("early", 5), ("later", 0)))
    for copy in (late, middle, early):
        deduper.assign([copy], {})
    assert {deduper.root(a.id) for a in (late, middle, early)} == {early.id}
    assert deduper.clusters == {early.id: {late.id, middle.id}}
    [joined] = deduper.assign([later], {})
    assert joined.dedupe.duplicate_of == early.id
    assert deduper.expire(now + timedelta(days=14, hours=-2)) == 2  # late and later stay
    assert deduper.clusters == {early.id: {late.id, later.id}}


def test_the_window_forgets_what_it_no_longer_covers(make_article):
    deduper = Deduper(window=timedelta(days=14))
    now = datetime.now(UTC)
    ancient, old, new = (make_article(name, published=now - timedelta(days=days))
                         for name, days in (("ancient", 20), ("old", 13), ("new", 0)))
    deduper.assign([ancient, old, new], {})
    assert ancient.id not in deduper.members  # never in the window
    assert deduper.expire(now + timedelta(days=2)) == 1
    assert old.id not in deduper.members and old.id not in deduper.index
    assert set(deduper.urls.values()) | set(deduper.fingerprints.values()) <= {new.id}


def test_a_version_1_database_is_upgraded_with_dedupe_keys(tmp_path, settings):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript((REPO / "tests/data/schema_v1.sql").read_text("utf-8"))
    storage = Storage(f"sqlite:///{db}")
    try:
        [story] = storage.articles()
        article = storage.article(story.id)
        assert article.dedupe.fingerprint and len(article.dedupe.signature) > 100
        assert Deduper.load(storage, window=timedelta(days=100_000)).members.keys() == \
            {article.id}
        with sqlite3.connect(db) as conn:
            version = conn.execute("select value from meta where key='schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)
    finally:
        storage.close()


# --- real feeds: the Hebrew snapshots of ../shared/corpus -----------------------------------

HEBREW = REPO.parent / "shared" / "corpus" / "feeds-rtl"
FAMILIES = ("israel-hayom", "walla-news", "ynet-breaking-news", "ynet-main-news")


@pytest.mark.skipif(not HEBREW.is_dir(), reason=f"the shared corpus is not at {HEBREW}")
@pytest.mark.parametrize("family", FAMILIES)
def test_hebrew_snapshots_of_one_feed_are_updates_and_a_second_outlet_is_credited(
        httpserver, settings, storage, fetcher, family):
    settings = replace(settings, dedupe=replace(settings.dedupe, window_days=36500))  # Feb 2026
    snapshots = sorted(HEBREW.glob(f"he_spz_{family}_2026*.rss.xml"))
    guids = set()
    for snapshot in snapshots:  # one source polled three times over a day
        body = snapshot.read_bytes()
        guids |= {e.get("id") or e.get("link") for e in feedparser.parse(body).entries}
        httpserver.clear()
        httpserver.expect_request("/feed").respond_with_data(body, content_type=RSS_TYPE)
        report = poll(settings, storage, fetcher, family, httpserver.url_for("/feed"))
        assert report.duplicates == 0, "one outlet's different stories must not merge"
    assert len(storage.articles(limit=100)) == len(guids)

    mirror = serve(httpserver, "/mirror")  # an aggregator carrying the same items
    httpserver.clear()
    httpserver.expect_request("/mirror").respond_with_data(snapshots[-1].read_bytes(),
                                                           content_type=RSS_TYPE)
    report = poll(settings, storage, fetcher, "mirror", mirror)
    assert report.new == report.duplicates > 0
    assert len(storage.articles(limit=100)) == len(guids)
