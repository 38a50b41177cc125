"""`scheduler.Runtime`, started for real: APScheduler jobs per source, polls over HTTP on
127.0.0.1, publishing into the served cache, and /status under uvicorn."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import lxml.html
import pytest
import requests
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from conftest import (
    RSS_TYPE,
    SECURITY_BODY,
    SECURITY_TITLE,
    free_port,
    rss_feed,
    rss_item,
    sports_feed,
    wait_until_answers,
)
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from feeds.config import Settings
from feeds.model import Source
from feeds.pipeline import build_documents
from feeds.polling import make_fetcher, poll_source
from feeds.server import DocumentCache, create_app, make_server
from scheduler import Runtime
from storage import Storage

DEADLINE = 20.0  # generous: the polls themselves take well under a second


def wait_for(condition: Callable[[], object], what: str, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    fetch = replace(settings.fetch, min_interval=1, max_interval=2, read_timeout=1,
                    connect_timeout=1, max_backoff=2)
    return replace(settings, fetch=fetch)


@contextmanager
def running(settings: Settings, storage: Storage) -> Iterator[Runtime]:
    """A started Runtime whose first `sources` sync has finished; stopped on the way out."""
    runtime = Runtime(settings, storage, DocumentCache(storage))
    synced = threading.Event()

    def on_job(event) -> None:
        if event.job_id == "sources":
            synced.set()

    runtime.scheduler.add_listener(on_job, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    runtime.start()
    try:
        assert synced.wait(DEADLINE), "the sources sync job did not run"
        yield runtime
    finally:
        runtime.stop()
        # let a poll in flight finish before the storage fixture closes the database
        wait_for(lambda: not runtime.fetching, "polls in flight after stop", timeout=10)


def add_source(storage: Storage, name: str, url: str, next_poll: datetime | None = None,
               **fields) -> Source:
    fields.setdefault("min_interval", 1)
    fields.setdefault("max_interval", 2)
    source = storage.add_source(Source(name=name, url=url, **fields))
    if next_poll is not None:
        storage.save_source_state(replace(source, next_poll=next_poll))
    return storage.source(name)


def source_jobs(runtime: Runtime) -> set[str]:
    return {job.id for job in runtime.scheduler.get_jobs() if job.id.startswith("source:")}


# --- jobs follow the sources ------------------------------------------------------------------


def test_sync_job_keeps_one_job_per_enabled_source(fast_settings, storage):
    later = datetime.now(UTC) + timedelta(hours=1)  # no poll happens during the test
    for name in ("alpha", "beta", "gamma"):
        add_source(storage, name, f"http://127.0.0.1:9/{name}.xml", next_poll=later)
    with running(fast_settings, storage) as runtime:
        assert source_jobs(runtime) == {"source:alpha", "source:beta", "source:gamma"}

        storage.remove_source("beta")
        storage.save_source_state(replace(storage.source("gamma"), enabled=False))
        add_source(storage, "delta", "http://127.0.0.1:9/delta.xml", next_poll=later)
        runtime.sync_job()

        assert source_jobs(runtime) == {"source:alpha", "source:delta"}
        runtime.sync_job()  # a second sync changes nothing
        assert source_jobs(runtime) == {"source:alpha", "source:delta"}


def test_a_poll_whose_job_was_removed_meanwhile_ends_quietly(fast_settings, storage,
                                                              httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss_feed(), content_type="application/rss+xml")
    later = datetime.now(UTC) + timedelta(hours=1)
    add_source(storage, "alpha", httpserver.url_for("/feed.xml"), next_poll=later)
    with running(fast_settings, storage) as runtime:
        runtime.scheduler.remove_job("source:alpha")  # as a sync or a shutdown does mid-poll
        runtime.source_job("alpha")  # must not raise JobLookupError
        assert storage.source("alpha").last_status == 200


# --- a hanging source never stalls the others --------------------------------------------------


@pytest.fixture
def threaded_server() -> Iterator[HTTPServer]:
    """A pytest-httpserver answering requests concurrently, on 127.0.0.1."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def test_a_hanging_source_does_not_stall_the_others(fast_settings, storage, threaded_server):
    release = threading.Event()

    def hang(_request: Request) -> Response:
        release.wait(30)  # far longer than the read timeout of 1 s
        return Response(rss_feed(), content_type=RSS_TYPE)

    threaded_server.expect_request("/hang.xml").respond_with_handler(hang)
    threaded_server.expect_request("/fast.xml").respond_with_data(sports_feed("fast"),
                                                                  content_type=RSS_TYPE)
    soon = datetime.now(UTC) + timedelta(seconds=1)  # both due together, the hang first
    add_source(storage, "hang", threaded_server.url_for("/hang.xml"), next_poll=soon)
    add_source(storage, "fast", threaded_server.url_for("/fast.xml"),
               next_poll=soon + timedelta(milliseconds=200))
    try:
        with running(fast_settings, storage):
            wait_for(lambda: len([a for a in storage.articles() if a.source == "fast"]) == 3,
                     "the fast source's articles stored")
            hung = wait_for(lambda: (s := storage.source("hang")) and s.error_count and s,
                            "the hanging source's timeout recorded")
            assert "timeout" in hung.last_error, hung.last_error
            assert storage.source("fast").error_count == 0
    finally:
        release.set()


# --- polls are published -----------------------------------------------------------------------


def test_new_articles_from_a_source_job_are_published_and_served(fast_settings, storage,
                                                                 httpserver):
    build_documents(fast_settings, storage)
    httpserver.expect_request("/security.xml").respond_with_data(rss_feed(
        rss_item("urn:p:1", SECURITY_TITLE, SECURITY_BODY, link="/news/1.html",
                 published=datetime.now(UTC) - timedelta(minutes=5))), content_type=RSS_TYPE)
    later = datetime.now(UTC) + timedelta(hours=1)  # only the explicit poll below runs
    add_source(storage, "police", httpserver.url_for("/security.xml"), next_poll=later)
    with running(fast_settings, storage) as runtime:
        served = runtime.cache.get("topics/security.atom")
        assert served is not None and SECURITY_TITLE not in served.document.body.decode()

        runtime.source_job("police")
        runtime.publish_job()

        def published() -> bool:
            served = runtime.cache.get("topics/security.atom")
            return SECURITY_TITLE in served.document.body.decode()

        wait_for(published, "the new entry in the served security feed")
        rss = runtime.cache.get("topics/security.rss").document.body.decode()
        assert SECURITY_TITLE in rss


# --- status -------------------------------------------------------------------------------------


@contextmanager
def serving(app) -> Iterator[str]:
    port = free_port()
    server = make_server(app, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_status_lists_every_source_and_is_served(fast_settings, storage, httpserver):
    httpserver.expect_request("/ok.xml").respond_with_data(sports_feed(), content_type=RSS_TYPE)
    httpserver.expect_request("/broken.xml").respond_with_data("boom", status=500,
                                                               content_type="text/plain")
    httpserver.expect_request("/gone.xml").respond_with_data("gone", status=410,
                                                             content_type="text/plain")
    for name in ("ok", "broken", "gone"):
        add_source(storage, name, httpserver.url_for(f"/{name}.xml"), min_interval=900,
                   max_interval=3600)
    with make_fetcher(fast_settings) as fetcher:
        for source in storage.sources():
            poll_source(fast_settings, storage, fetcher, source)
    with running(fast_settings, storage) as runtime:
        status = runtime.status()
        by_name = {s["name"]: s for s in status["sources"]}
        assert set(by_name) == {"ok", "broken", "gone"}
        assert (by_name["ok"]["last_status"], by_name["ok"]["item_count"],
                by_name["ok"]["error_count"]) == (200, 3, 0)
        assert by_name["broken"]["error_count"] == 1 and "500" in by_name["broken"]["last_error"]
        assert by_name["gone"]["enabled"] is False
        assert by_name["ok"]["url"] == httpserver.url_for("/ok.xml")
        assert status["articles"] == 3 and status["errors"] >= 1

        with serving(create_app(runtime.cache, status=runtime.status)) as url:
            wait_until_answers(f"{url}/status.json")
            response = requests.get(f"{url}/status.json", timeout=5)
            page = requests.get(f"{url}/status", timeout=5)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    served = {s["name"]: s for s in response.json()["sources"]}
    assert set(served) == {"ok", "broken", "gone"}
    # The running scheduler may have retried the broken source by now (fast backoff here).
    assert served["ok"]["last_status"] == 200 and served["broken"]["error_count"] >= 1
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    root = lxml.html.fromstring(page.content)
    assert root.get("dir") == "rtl"
    text = root.text_content()
    assert all(name in text for name in ("ok", "broken", "gone"))
