"""Fetching against a real HTTP server on 127.0.0.1 (pytest-httpserver); nothing is mocked."""

from __future__ import annotations

import gzip
import random
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from feeds.fetch import (
    Fetcher,
    FetchResult,
    adaptive_interval,
    backoff_delay,
    next_poll_delay,
    user_agent,
)

UA = user_agent("0.1.0", "http://127.0.0.1:8080")
FEED = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>نشرة</title><item><title>خبر</title></item></channel></rss>").encode()
RSS = "application/rss+xml; charset=utf-8"
LAST_MODIFIED = "Thu, 01 May 2025 08:00:00 GMT"
HOUR = 3600.0
DAY = 86400.0


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(UA) as fetcher:
        yield fetcher


def serve_feed(httpserver: HTTPServer, path: str = "/feed", **headers: str) -> str:
    httpserver.expect_request(path).respond_with_data(FEED, content_type=RSS, headers=headers)
    return httpserver.url_for(path)


def redirect(httpserver: HTTPServer, path: str, status: int, location: str) -> str:
    httpserver.expect_request(path).respond_with_response(
        Response(status=status, headers={"Location": location}))
    return httpserver.url_for(path)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_user_agent_names_nashra_and_its_site():
    assert UA == "Nashra/0.1.0 (+http://127.0.0.1:8080; feed aggregator)"


def test_200_gives_body_validators_and_max_age(httpserver: HTTPServer, fetcher: Fetcher):
    url = serve_feed(httpserver, ETag='"v1"', **{"Last-Modified": LAST_MODIFIED,
                                                 "Cache-Control": "public, max-age=600"})
    result = fetcher.fetch(url)
    assert result.ok and result.error is None
    assert (result.status, result.body, result.content_type) == (200, FEED, RSS)
    assert (result.etag, result.last_modified, result.max_age) == ('"v1"', LAST_MODIFIED, 600)
    assert result.final_url == url and result.moved_to is None


def test_request_headers_name_nashra(httpserver: HTTPServer, fetcher: Fetcher):
    fetcher.fetch(serve_feed(httpserver))
    request = httpserver.log[-1][0]
    assert request.headers["User-Agent"] == UA and "Nashra/" in UA
    assert request.headers["Accept"].startswith("application/rss+xml, application/atom+xml")
    assert "gzip" in request.headers["Accept-Encoding"]
    assert "If-None-Match" not in request.headers and "If-Modified-Since" not in request.headers


def test_validators_round_trip_to_304(httpserver: HTTPServer, fetcher: Fetcher):
    conditional = {"If-None-Match": '"v1"', "If-Modified-Since": LAST_MODIFIED}
    httpserver.expect_request("/feed", headers=conditional).respond_with_data(
        "", status=304, headers={"ETag": '"v1"'})
    url = serve_feed(httpserver, ETag='"v1"', **{"Last-Modified": LAST_MODIFIED})

    first = fetcher.fetch(url)
    second = fetcher.fetch(url, etag=first.etag, last_modified=first.last_modified)

    assert first.ok
    assert second.not_modified and not second.ok
    assert (second.status, second.body, second.error) == (304, None, None)
    assert (second.etag, second.last_modified) == ('"v1"', LAST_MODIFIED)  # still to be sent
    assert httpserver.log[-1][0].headers["If-None-Match"] == '"v1"'


def test_gzip_body_is_decompressed(httpserver: HTTPServer, fetcher: Fetcher):
    httpserver.expect_request("/feed").respond_with_data(
        gzip.compress(FEED), content_type=RSS, headers={"Content-Encoding": "gzip"})
    result = fetcher.fetch(httpserver.url_for("/feed"))
    assert result.ok and result.body == FEED


def test_permanent_redirects_set_moved_to(httpserver: HTTPServer, fetcher: Fetcher):
    target = serve_feed(httpserver)
    start = redirect(httpserver, "/old", 301, httpserver.url_for("/older"))
    redirect(httpserver, "/older", 308, "feed")  # relative to /older
    result = fetcher.fetch(start)
    assert result.ok and result.body == FEED
    assert result.url == start
    assert result.final_url == result.moved_to == target


@pytest.mark.parametrize("hops", [[302], [307], [301, 302], [302, 301]])
def test_any_temporary_hop_keeps_the_url(httpserver: HTTPServer, fetcher: Fetcher, hops):
    target = serve_feed(httpserver)
    for i, status in enumerate(hops):
        nxt = "/feed" if i == len(hops) - 1 else f"/hop{i + 1}"
        redirect(httpserver, f"/hop{i}", status, nxt)
    result = fetcher.fetch(httpserver.url_for("/hop0"))
    assert result.ok and result.final_url == target
    assert result.moved_to is None


def test_permanent_redirect_to_an_error_is_not_a_move(httpserver: HTTPServer, fetcher: Fetcher):
    start = redirect(httpserver, "/old", 301, "/missing")
    httpserver.expect_request("/missing").respond_with_data("no", status=404)
    result = fetcher.fetch(start)
    assert result.status == 404 and result.moved_to is None
    assert result.error.startswith(f"HTTP 404 Not Found from {httpserver.url_for('/missing')}")


def test_redirect_loop(httpserver: HTTPServer, fetcher: Fetcher):
    a = redirect(httpserver, "/a", 302, "/b")
    b = redirect(httpserver, "/b", 301, "/a")
    result = fetcher.fetch(a)
    assert not result.ok and result.body is None
    assert result.error.startswith(f"redirect loop: {a} -> {b} -> {a}")


def test_more_than_max_redirects(httpserver: HTTPServer, fetcher: Fetcher):
    serve_feed(httpserver)
    for i in range(6):
        redirect(httpserver, f"/r{i}", 301, f"/r{i + 1}")
    redirect(httpserver, "/r6", 301, "/feed")
    five_hops = fetcher.fetch(httpserver.url_for("/r2"))  # r2 -> r6 -> feed
    assert five_hops.ok and five_hops.moved_to == httpserver.url_for("/feed")
    result = fetcher.fetch(httpserver.url_for("/r0"))
    assert not result.ok and result.moved_to is None
    assert "more than 5 redirects" in result.error


def test_redirect_away_from_http_is_refused(httpserver: HTTPServer, fetcher: Fetcher):
    start = redirect(httpserver, "/old", 301, "file:///etc/passwd")
    result = fetcher.fetch(start)
    assert not result.ok and "not an http(s) URL" in result.error


def test_410_is_gone(httpserver: HTTPServer, fetcher: Fetcher):
    httpserver.expect_request("/feed").respond_with_data("bye", status=410)
    result = fetcher.fetch(httpserver.url_for("/feed"))
    assert result.gone and not result.ok and result.body is None
    assert "410 Gone" in result.error and "remove" in result.error


def test_429_retry_after_seconds(httpserver: HTTPServer, fetcher: Fetcher):
    httpserver.expect_request("/feed").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "120"})
    result = fetcher.fetch(httpserver.url_for("/feed"), etag='"old"')
    assert (result.status, result.retry_after, result.body) == (429, 120.0, None)
    assert "429 Too Many Requests" in result.error
    assert result.etag == '"old"'  # validators survive a failure


def test_429_retry_after_http_date(httpserver: HTTPServer, fetcher: Fetcher):
    when = datetime.now(UTC) + timedelta(seconds=300)
    httpserver.expect_request("/feed").respond_with_data(
        "", status=429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    result = fetcher.fetch(httpserver.url_for("/feed"))
    assert 280 <= result.retry_after <= 301


def test_503_retry_after(httpserver: HTTPServer, fetcher: Fetcher):
    httpserver.expect_request("/feed").respond_with_data(
        "", status=503, headers={"Retry-After": "60"})
    result = fetcher.fetch(httpserver.url_for("/feed"))
    assert result.status == 503 and result.retry_after == 60.0
    assert "503 Service Unavailable" in result.error


def test_500_names_status_and_url(httpserver: HTTPServer, fetcher: Fetcher):
    url = httpserver.url_for("/feed")
    httpserver.expect_request("/feed").respond_with_data("oops", status=500)
    result = fetcher.fetch(url)
    assert result.status == 500 and result.body is None and result.retry_after is None
    assert result.error.startswith(f"HTTP 500 Internal Server Error from {url}; ")


def test_read_timeout_before_headers(httpserver: HTTPServer):
    release = threading.Event()

    def stall(request: Request) -> Response:
        release.wait(5)
        return Response(FEED)

    httpserver.expect_request("/feed").respond_with_handler(stall)
    try:
        result = Fetcher(UA, timeout=(1, 0.3)).fetch(httpserver.url_for("/feed"))
    finally:
        release.set()
    assert result.status == 0 and result.body is None
    assert "read timeout" in result.error and "0.3 s" in result.error


def test_read_timeout_in_the_body(httpserver: HTTPServer):
    release = threading.Event()

    def trickle() -> Iterator[bytes]:
        yield FEED[:20]
        release.wait(5)
        yield FEED[20:]

    httpserver.expect_request("/feed").respond_with_response(Response(trickle()))
    try:
        result = Fetcher(UA, timeout=(1, 0.3)).fetch(httpserver.url_for("/feed"))
    finally:
        release.set()
    assert not result.ok and result.body is None
    assert "read timeout" in result.error


def test_connection_refused(fetcher: Fetcher):
    url = f"http://127.0.0.1:{closed_port()}/feed"
    result = fetcher.fetch(url, etag='"e"', last_modified=LAST_MODIFIED)
    assert (result.status, result.body, result.final_url) == (0, None, url)
    assert "refused" in result.error
    assert (result.etag, result.last_modified) == ('"e"', LAST_MODIFIED)


def test_dns_failure(fetcher: Fetcher):
    result = fetcher.fetch("http://nashra-test.invalid/feed")
    assert result.status == 0 and "resolve host nashra-test.invalid" in result.error


def test_not_a_url(fetcher: Fetcher):
    result = fetcher.fetch("feeds.example/rss")
    assert result.status == 0 and "not an http(s) URL" in result.error


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "streamed"])
def test_oversized_body_is_cut_off(httpserver: HTTPServer, with_length: bool):
    big = b"x" * 5000
    body = big if with_length else iter([big[:1000], big[1000:]])
    httpserver.expect_request("/feed").respond_with_response(Response(body))
    result = Fetcher(UA, max_bytes=1000).fetch(httpserver.url_for("/feed"))
    assert result.status == 200 and not result.ok and result.body is None
    assert result.error.startswith("response is larger than 1 kB; ")


def test_exactly_max_bytes_is_fine(httpserver: HTTPServer):
    httpserver.expect_request("/feed").respond_with_data(b"x" * 1000)
    assert Fetcher(UA, max_bytes=1000).fetch(httpserver.url_for("/feed")).ok


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return gzip.compress(bytes(50_000_000), compresslevel=9)  # ~50 kB on the wire


def test_gzip_bomb_is_cut_off_without_inflating_it(httpserver: HTTPServer, gzip_bomb: bytes):
    httpserver.expect_request("/feed").respond_with_data(
        gzip_bomb, content_type=RSS, headers={"Content-Encoding": "gzip"})
    fetcher = Fetcher(UA, max_bytes=1_000_000)
    tracemalloc.start()
    try:
        result = fetcher.fetch(httpserver.url_for("/feed"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.body is None and not result.ok
    assert result.error.startswith("response is larger than 1 MB; ")
    # The 50 MB were never inflated: what is traced is the 1 MB kept, the decoder's 64 kB
    # steps and the werkzeug server thread's own buffers (about 10 MB, any response).
    assert peak < 25_000_000


def test_backoff_grows_is_capped_and_jittered():
    rng = random.Random(7)
    samples = {n: [backoff_delay(n, 60, 3600, rng) for _ in range(50)] for n in range(1, 12)}
    for n, delays in samples.items():
        full = min(3600, 60 * 2 ** (n - 1))
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) == len(delays)  # jittered, not one fixed value
    assert min(samples[3]) > max(samples[1])  # grows
    assert max(samples[11]) <= 3600 and backoff_delay(10_000, 60, 3600, rng) <= 3600
    assert backoff_delay(3, 60, 3600, random.Random(1)) == backoff_delay(
        3, 60, 3600, random.Random(1))


def result(status: int, **fields) -> FetchResult:
    body = FEED if status == 200 else None
    return FetchResult("http://x/feed", "http://x/feed", status, body=body, **fields)


def test_next_poll_delay_honours_retry_after():
    rng = random.Random(3)
    throttled = result(429, retry_after=7200.0, error="HTTP 429")
    assert next_poll_delay(throttled, 1, HOUR, 900, DAY, rng) >= 7200
    short = result(503, retry_after=120.0, error="HTTP 503")
    assert next_poll_delay(short, 1, HOUR, 900, DAY, rng) >= 120


def test_next_poll_delay_on_success_and_failure():
    rng = random.Random(3)
    assert next_poll_delay(result(200), 0, HOUR, 900, DAY, rng) == HOUR
    assert next_poll_delay(result(304), 0, HOUR, 900, DAY, rng) == HOUR
    assert next_poll_delay(result(200, max_age=2 * HOUR), 0, HOUR, 900, DAY, rng) == 2 * HOUR
    assert next_poll_delay(result(200, max_age=60), 0, HOUR, 900, DAY, rng) == HOUR
    failed = result(500, error="HTTP 500")
    assert 450 <= next_poll_delay(failed, 1, HOUR, 900, DAY, rng) <= 900
    assert 3600 <= next_poll_delay(failed, 4, HOUR, 900, DAY, rng) <= 7200
    assert next_poll_delay(failed, 30, HOUR, 900, DAY, rng, max_backoff=HOUR) <= HOUR
    unparsable = result(200)  # fetched, but the caller counted a failure
    assert 1800 <= next_poll_delay(unparsable, 3, HOUR, 900, DAY, rng) <= 3600
    assert next_poll_delay(result(410, error="HTTP 410"), 1, HOUR, 900, DAY, rng) == DAY


def dates(step: timedelta, count: int) -> list[datetime]:
    newest = datetime(2025, 5, 1, 12, tzinfo=UTC)
    return [newest - i * step for i in range(count)]


def test_adaptive_interval_follows_the_feed():
    hourly = dates(timedelta(hours=1), 24)
    assert adaptive_interval(hourly, 900, DAY) == HOUR
    assert adaptive_interval(hourly, 900, DAY, feed_hint=2 * HOUR) == 2 * HOUR
    assert adaptive_interval(hourly, 900, DAY, max_age=5400) == 5400
    assert adaptive_interval(hourly, 900, DAY, feed_hint=600) == HOUR


def test_adaptive_interval_clamps():
    assert adaptive_interval(dates(timedelta(minutes=1), 30), 900, DAY) == 900
    assert adaptive_interval(dates(timedelta(days=7), 10), 900, DAY) == DAY
    assert adaptive_interval(dates(timedelta(hours=1), 24), 900, DAY, feed_hint=7 * DAY) == DAY


def test_adaptive_interval_with_too_few_dates_is_max():
    assert adaptive_interval([], 900, DAY) == DAY
    assert adaptive_interval(dates(timedelta(hours=1), 2), 900, DAY) == DAY
    same_time = [datetime(2025, 5, 1, tzinfo=UTC)] * 10
    assert adaptive_interval(same_time, 900, DAY) == DAY


def test_adaptive_interval_ignores_a_pause_and_naive_dates():
    hourly = dates(timedelta(hours=1), 12)
    paused = [*hourly, hourly[-1] - timedelta(days=3)]
    naive = [d.replace(tzinfo=None) for d in hourly]
    assert adaptive_interval(paused, 900, DAY) == HOUR
    assert adaptive_interval(naive, 900, DAY) == HOUR
