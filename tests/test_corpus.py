"""feeds.parse and feeds.clean over the shared corpus of real feeds (../shared/corpus).

Every file goes through parse_feed and every article through clean_article; nothing may
raise, and every cleaned article must be publishable. One test per folder, so a failure
lists the files that failed instead of a thousand test ids.
"""

import operator
import re
from pathlib import Path

import pytest
from conftest import feedparser_both_ways

from feeds.clean import clean_article
from feeds.parse import parse_feed
from feeds.text import xml_safe

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
if not CORPUS.is_dir():
    pytest.skip(f"the shared corpus is not at {CORPUS}; these tests read real feeds from it",
                allow_module_level=True)

NOT_FEED_FILES = {"LICENSE", "COMMIT", "README.md"}
# Markup that must never survive clean_article (feedparser's sanitize tests are full of it).
DANGEROUS = re.compile(
    r"<(script|iframe|object|embed|style|form|meta|link|base)\b"
    r"|<[^>]*\son[a-z]+\s*="
    r"|<[^>]*\b(href|src|action)\s*=\s*[\"']?\s*(javascript|vbscript|data):",
    re.IGNORECASE,
)
FEEDPARSER_TESTS = CORPUS / "feedparser-tests"
FOLDERS = [
    "feeds-rtl",
    "feeds-oddities",
    *sorted(
        str(folder.relative_to(CORPUS))
        for folder in [FEEDPARSER_TESTS, *FEEDPARSER_TESTS.rglob("*")]
        if folder.is_dir() and any(p.is_file() and p.name not in NOT_FEED_FILES
                                   for p in folder.iterdir())
    ),
]


def corpus_files(folder: str) -> list[Path]:
    return sorted(p for p in (CORPUS / folder).iterdir()
                  if p.is_file() and p.name not in NOT_FEED_FILES)


def parse_file(relative: str, **kwargs):
    path = CORPUS / relative
    return parse_feed(path.read_bytes(), f"https://corpus.example.org/{relative}", "corpus",
                      **kwargs)


def publishing_faults(relative: str) -> list[str]:
    """What is wrong with one file's articles after parse + clean; [] when all is well."""
    feed = parse_file(relative)
    faults = []
    if not feed.articles and not feed.version and not feed.bozo:
        faults.append("no articles, no feed version and no reason given")
    for article in feed.articles:
        cleaned = clean_article(article)
        label = f"article {article.key!r}"
        if not cleaned.title:
            faults.append(f"{label}: empty title")
        elif xml_safe(cleaned.title) != cleaned.title:
            faults.append(f"{label}: title has characters XML forbids: {cleaned.title!r}")
        if cleaned.published.tzinfo is None or cleaned.published.utcoffset() is None:
            faults.append(f"{label}: naive published date {cleaned.published!r}")
        if cleaned.updated < cleaned.published:
            faults.append(f"{label}: updated before published")
        if unsafe := DANGEROUS.search(cleaned.content_html):
            faults.append(f"{label}: dangerous markup survived cleaning: {unsafe.group(0)!r}")
    return faults


def test_corpus_has_the_folders_it_should():
    assert len(corpus_files("feeds-rtl")) == 30
    assert len(corpus_files("feeds-oddities")) == 30
    feedparser_files = sum(len(corpus_files(f)) for f in FOLDERS if f.startswith("feedparser"))
    assert feedparser_files > 2000


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_file_parses_and_cleans_into_publishable_articles(folder):
    failures = []
    for path in corpus_files(folder):
        relative = str(path.relative_to(CORPUS))
        try:
            faults = publishing_faults(relative)
        except Exception as exc:  # the point of the test: report it with the file name
            faults = [f"raised {type(exc).__name__}: {exc}"]
        failures.extend(f"{relative}: {fault}" for fault in faults)
    assert not failures, f"{len(failures)} problem(s):\n" + "\n".join(failures[:50])


def test_feedparser_with_buffered_text_reads_every_file_as_the_stock_parser_does():
    differ = [str(path.relative_to(CORPUS)) for folder in FOLDERS
              for path in corpus_files(folder)
              if operator.ne(*feedparser_both_ways(path.read_bytes()))]
    assert not differ, f"{len(differ)} file(s) read differently: {differ[:20]}"


# Feeds that declare a left-to-right language on right-to-left text, and feeds whose
# declared language is right: detection wins only when the directions disagree.
@pytest.mark.parametrize(
    ("relative", "declared", "expected"),
    [
        ("feeds-rtl/ar_hespress_prospect-rss-feeds_20260215.rss.xml", "en", "ar"),
        ("feeds-rtl/ar_sky-news-arabia_prospect-rss-feeds_20260401.rss.xml", "en", "ar"),
        ("feeds-rtl/fa_hoder-editormyself_2005.rss.xml", "en-us", "fa"),
        ("feeds-rtl/ar_hugo_ehablog.rss.xml", "en-us", "ar"),
        ("feeds-rtl/ur_voa-urdu_2014.rss.xml", "ur", "ur"),
        ("feeds-rtl/he_spz_aggregated-feed.rss.xml", "he", "he"),
    ],
)
def test_rtl_articles_get_their_real_language(relative, declared, expected):
    feed = parse_file(relative)
    assert feed.language == declared
    assert feed.articles
    assert {clean_article(a).language for a in feed.articles} == {expected}


def test_html_page_is_reported_as_not_a_feed():
    feed = parse_file("feeds-oddities/nodefp_notafeed.html", content_type="text/html")
    assert feed.articles == []
    assert feed.bozo == "not an RSS or Atom feed (looks like HTML); check the URL"


def test_custom_xml_with_items_is_read_loosely_and_flagged():
    feed = parse_file("feeds-rtl/he_spz_ynet-main-news_contentfeed_NOT_RSS.xml")
    assert feed.version == ""
    assert len(feed.articles) == 10
    assert "unrecognised feed format" in feed.bozo


@pytest.mark.parametrize(
    ("relative", "count"),
    [
        ("feeds-oddities/simplepie_feed-utf16le.xml", 1),  # UTF-16LE, no BOM, no declaration
        ("feeds-oddities/nodefp_invalid-characters-gzipped.xml", 25),  # gzip, unlabelled
        ("feeds-oddities/rssparser_giantbomb-podcast.rss", 730),
    ],
)
def test_oddities_feedparser_alone_misreads_are_read(relative, count):
    assert len(parse_file(relative).articles) == count


def test_undeclared_latin1_is_read_without_mojibake():
    feed = parse_file("feeds-oddities/miniflux_no_encoding_ISO-8859-1.xml")
    text = " ".join(a.title + a.content_html for a in feed.articles)
    assert "é" in text and "Ã" not in text


@pytest.mark.parametrize(
    "relative",
    ["feeds-oddities/miniflux_koi8r.xml", "feeds-oddities/nodefp_iconv.xml",
     "feeds-oddities/miniflux_encoding_WINDOWS-1251.xml"],
)
def test_declared_cyrillic_encodings_are_honoured(relative):
    titles = [a.title for a in parse_file(relative).articles]
    assert titles and all(any("а" <= c <= "я" or "А" <= c <= "Я" for c in t) for t in titles)


def test_relative_links_resolve_against_the_feed_url():
    feed = parse_file("feeds-oddities/nodefp_rss-with-relative-urls.xml")
    assert [a.url for a in feed.articles] == [
        "https://corpus.example.org/en/games/neverwinter/news/detail/"
        "10743874-neverwinter-%26-jingle-jam-humble-bundle%21",
        "https://corpus.example.org/en/games/neverwinter/news/detail/"
        "10738994-2x-underdark-currency-%26-15%25-off-bags%21",
    ]


def test_real_duplicate_guids_keep_the_first_entry():
    feed = parse_file("feeds-rtl/ar_hugo_ammark_journal.rss.xml")
    keys = [a.key for a in feed.articles]
    assert len(keys) == len(set(keys)) == 3
    assert any("same id as entry 2" in p for p in feed.problems)
