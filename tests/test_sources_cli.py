"""`nashra sources ...` and `nashra ingest` with feed sources on a real HTTP server.

The config (fixture `config_file`) points storage and seeds into tmp_path; commands run
in-process with click's CliRunner, or as the real `nashra` command where its exit code and
stderr are the point.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import listparser
import pytest
from click.testing import CliRunner, Result
from conftest import RSS_TYPE, SPORTS_ITEMS, rss_feed, rss_item, sports_feed
from pytest_httpserver import HTTPServer

from feeds.cli import cli
from feeds.pipeline import ingest_seeds

HTML_PAGE = ("<!DOCTYPE html><html lang=\"ar\" dir=\"rtl\"><head><title>الموقع</title></head>"
             "<body><p>هذه صفحة وليست خلاصة.</p></body></html>")


@pytest.fixture
def run(config_file: Path):
    """run(*args) -> click Result of `nashra --config FILE *args`, in-process."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--config", str(config_file), *args])

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def one_line_error(stderr: str) -> str:
    """The only line of `stderr`, asserting there is exactly one and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def listed(output: str) -> dict[str, str]:
    """`sources list` output as {name: its block of lines}."""
    blocks: dict[str, str] = {}
    name = None
    for line in output.splitlines():
        if line and not line[0].isspace():
            name = line.split()[0]
            blocks[name] = line
        elif name is not None:
            blocks[name] += "\n" + line
    return blocks


def serve(httpserver: HTTPServer, path: str, body: bytes | str, status: int = 200,
          content_type: str = RSS_TYPE) -> str:
    httpserver.expect_request(path).respond_with_data(body, status=status,
                                                      content_type=content_type)
    return httpserver.url_for(path)


@pytest.fixture
def two_sources(httpserver, run):
    """A good source `good` (topic security) and a failing one `bad`, added with the CLI."""
    good = serve(httpserver, "/good.xml", sports_feed())
    bad = serve(httpserver, "/bad.xml", "boom", status=500, content_type="text/plain")
    ok(run("sources", "add", good, "--name", "good", "--topic", "security"))
    ok(run("sources", "add", bad, "--name", "bad"))
    return good, bad


# --- add, ingest, list ------------------------------------------------------------------------


def test_add_stores_the_source_with_its_topic(httpserver, run, storage):
    url = httpserver.url_for("/feed.xml")

    result = ok(run("sources", "add", url, "--name", "n", "--topic", "security"))

    assert "n" in result.stdout and url in result.stdout
    [source] = storage.sources()
    assert (source.name, source.url, source.topics, source.enabled) == (
        "n", url, ("security",), True)


def test_ingest_polls_every_source_and_prints_one_line_each(two_sources, nashra, config_file,
                                                             storage):
    result = nashra("ingest", "--config", str(config_file))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len([line for line in lines if line.startswith("good:")]) == 1, lines
    assert len([line for line in lines if line.startswith("bad:")]) == 1, lines
    assert "3 new" in next(line for line in lines if line.startswith("good:"))
    assert "500" in next(line for line in lines if line.startswith("bad:"))
    good = [a for a in storage.articles() if a.source == "good"]
    assert sorted(a.title for a in good) == sorted(t for t, _ in SPORTS_ITEMS)
    assert all("security" in a.topics for a in good)


def test_list_shows_name_url_status_and_errors_after_ingest(two_sources, run):
    good, bad = two_sources
    ok(run("ingest"))

    blocks = listed(ok(run("sources", "list")).stdout)

    assert set(blocks) >= {"good", "bad"}, blocks
    assert good in blocks["good"] and "status 200" in blocks["good"]
    assert "errors 0" in blocks["good"] and "items 3" in blocks["good"]
    assert bad in blocks["bad"] and "status 500" in blocks["bad"]
    assert "errors 1" in blocks["bad"]
    assert "last error:" in blocks["bad"] and "500" in blocks["bad"].split("last error:")[1]


# --- check ------------------------------------------------------------------------------------


def test_check_prints_the_feed_and_its_problems_and_stores_nothing(httpserver, run, settings,
                                                                  storage):
    ingest_seeds(settings, storage)
    before = storage.article_count()
    url = serve(httpserver, "/check.xml", rss_feed(
        rss_item("urn:c:1", "المنتخب يستعد للمباراة", "نص الخبر الأول.", link="/c/1"),
        rss_item("urn:c:2", "افتتاح الموسم الرياضي", "نص الخبر الثاني.", link="/c/2"),
        '<item><guid isPermaLink="false">urn:c:3</guid></item>',  # no title, no text
        title="نشرة الفحص"))

    result = ok(run("sources", "check", url))

    out = result.stdout
    assert "نشرة الفحص" in out
    assert "entries 2" in out
    assert "المنتخب يستعد للمباراة" in out and "افتتاح الموسم الرياضي" in out
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    assert any("entry 3" in line for line in problems), out
    assert storage.article_count() == before
    assert storage.sources() == []


@pytest.mark.parametrize(("body", "status", "content_type", "says"), [
    (HTML_PAGE, 200, "text/html; charset=utf-8", "feed"),
    ("boom", 500, "text/plain", "500"),
], ids=["html-page", "http-500"])
def test_check_of_a_non_feed_fails_with_one_line(httpserver, nashra, config_file, body, status,
                                                 content_type, says):
    url = serve(httpserver, "/page", body, status=status, content_type=content_type)

    result = nashra("-q", "sources", "check", url, "--config", str(config_file))

    assert result.returncode != 0, result.stdout
    line = one_line_error(result.stderr)
    assert line.startswith("Error:") and says in line.lower(), line


# --- remove -----------------------------------------------------------------------------------


def test_remove_stops_listing_the_source_but_keeps_its_articles(httpserver, run, storage):
    url = serve(httpserver, "/feed.xml", sports_feed())
    ok(run("sources", "add", url, "--name", "n"))
    ok(run("ingest"))
    assert len([a for a in storage.articles() if a.source == "n"]) == 3

    removed = ok(run("sources", "remove", "n"))
    after = ok(run("sources", "list")).stdout

    assert "removed n" in removed.stdout
    assert "n" not in listed(after) and url not in after
    articles = ok(run("articles", "--limit", "50")).stdout
    for title, _ in SPORTS_ITEMS:
        assert title in articles


# --- import, export ---------------------------------------------------------------------------

NESTED_OPML = """<?xml version="1.0" encoding="utf-8"?>
<opml version="2.0"><head><title>اشتراكاتي</title></head><body>
  <outline text="أخبار">
    <outline text="المغرب">
      <outline type="rss" text="هسبريس" title="هسبريس" xmlUrl="https://www.hespress.com/feed"/>
    </outline>
    <outline type="rss" text="الجزيرة" xmlUrl="https://www.aljazeera.net/aljazeerarss/a.xml"/>
  </outline>
  <outline type="rss" text="Le360" xmlUrl="https://le360.ma/rss?lang=ar&amp;section=all"/>
</body></opml>
"""
OPML_URLS = {"https://www.hespress.com/feed", "https://www.aljazeera.net/aljazeerarss/a.xml",
             "https://le360.ma/rss?lang=ar&section=all"}


def test_import_adds_each_nested_feed_once(tmp_path, run, storage):
    opml = tmp_path / "subscriptions.opml"
    opml.write_text(NESTED_OPML, "utf-8")

    first = ok(run("sources", "import", str(opml)))
    again = ok(run("sources", "import", str(opml)))

    assert {s.url for s in storage.sources()} == OPML_URLS
    assert len(storage.sources()) == 3
    assert "imported 3 new" in first.stdout, first.stdout
    assert "imported 0 new" in again.stdout, again.stdout


def test_export_is_opml_that_reads_back_with_the_same_urls(tmp_path, run):
    opml = tmp_path / "subscriptions.opml"
    opml.write_text(NESTED_OPML, "utf-8")
    ok(run("sources", "import", str(opml)))
    ok(run("sources", "add", "https://example.org/ar/feed.xml", "--name", "example"))

    exported = ok(run("sources", "export")).stdout

    expected = OPML_URLS | {"https://example.org/ar/feed.xml"}
    parsed = listparser.parse(exported)
    assert not parsed.bozo, parsed.bozo_exception
    assert {feed.url for feed in parsed.feeds} == expected
    root = ET.fromstring(exported.encode("utf-8"))
    assert {o.get("xmlUrl") for o in root.iter("outline") if o.get("xmlUrl")} == expected


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "says"), [
    (("ftp://x",), "ftp://x"),
    (("https://example.org/feed", "--topic", "no-such-topic"), "no-such-topic"),
], ids=["ftp-url", "unknown-topic"])
def test_add_rejects_bad_input_with_one_line(run, storage, args, says):
    result = run("sources", "add", *args)

    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    line = one_line_error(result.stderr)
    assert line.startswith("Error:") and says in line, line
    assert storage.sources() == []
