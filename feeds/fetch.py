"""Fetching feed sources over HTTP, politely: conditional GET, size caps, careful redirects.

This is the one stage of the pipeline that touches the network. `Fetcher.fetch` never
raises for network or HTTP trouble: everything comes back as a `FetchResult` whose
`error` is one sentence naming the problem and the fix. It never retries either; the
scheduler decides when to try again, with `next_poll_delay` and `adaptive_interval`.
"""

from __future__ import annotations

import errno
import itertools
import math
import random
import re
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.request import ACCEPT_ENCODING as URLLIB3_ENCODINGS

ACCEPT = ("application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, "
          "*/*;q=0.5")
# gzip and deflate always; br/zstd only when urllib3 can decode them with what is installed.
CODINGS = tuple(c.strip() for c in URLLIB3_ENCODINGS.split(",") if c.strip())
ACCEPT_ENCODING = ", ".join(CODINGS)
REDIRECTS = (301, 302, 303, 307, 308)
PERMANENT = (301, 308)
RETRY_AFTER_STATUSES = (429, 503)
MAX_RETRY_AFTER = 7 * 86400  # a Retry-After further off than a week is a server mistake
CHUNK_BYTES = 64 * 1024
MIN_DATED_ITEMS = 3  # fewer dated items than this say nothing about a feed's rhythm
RECENT_ITEMS = 20  # the rhythm is taken from this many most recent item dates
# urllib3 2 names DNS failures; older ones leave a socket.gaierror.
_NAME_RESOLUTION = (getattr(urllib3.exceptions, "NameResolutionError", socket.gaierror),
                    socket.gaierror)


@dataclass(frozen=True)
class FetchResult:
    """What one fetch of a source gave; store `etag`/`last_modified` as they are after each.

    The validators are always the ones to send next time: the response's on 200, the
    response's or else the ones sent on 304, and the ones sent, unchanged, on failure.
    """

    url: str
    final_url: str
    status: int  # 0 when no response came (DNS, refused, timeout)
    body: bytes | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None  # every hop was permanent and the target answered
    retry_after: float | None = None
    max_age: int | None = None
    error: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def gone(self) -> bool:
        return self.status == 410

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.body is not None and self.error is None


class _Failure(Exception):
    """A fetch ends early; `status` is 0 when no response came."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


def user_agent(version: str, site_url: str) -> str:
    """Who is asking and where to read about it, as feed publishers expect to see."""
    return f"Nashra/{version} (+{site_url}; feed aggregator)"


class Fetcher:
    """One shared session for all sources: connections are reused, headers set once.

    A session passed in is used as it is (the fetcher's headers go with each request)
    and is left open by `close()`.
    """

    def __init__(self, user_agent: str, timeout: tuple[float, float] = (10, 30),
                 max_bytes: int = 10_000_000, max_redirects: int = 5,
                 session: requests.Session | None = None, total_timeout: float = 120.0):
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.total_timeout = total_timeout  # a body trickling in slower than this is cut off
        self.headers = {"User-Agent": user_agent, "Accept": ACCEPT,
                        "Accept-Encoding": ACCEPT_ENCODING}
        self._owns_session = session is None
        self.session = session or _new_session()
        if self._owns_session:
            self.session.headers.update(self.headers)

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def fetch(self, url: str, etag: str | None = None,
              last_modified: str | None = None) -> FetchResult:
        """Never raises for network or HTTP problems: they come back in .error."""
        headers = dict(self.headers)
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        state = _Hops(url)
        try:
            return self._follow(state, headers, etag, last_modified)
        except _Failure as failure:
            return FetchResult(url, state.current, failure.status, etag=etag,
                               last_modified=last_modified, error=str(failure))

    def _follow(self, state: _Hops, headers: dict[str, str], etag: str | None,
                last_modified: str | None) -> FetchResult:
        deadline = time.monotonic() + self.total_timeout
        while True:
            _check_url(state.current, state.url)
            response = self._get(state.current, headers)
            try:
                location = response.headers.get("Location")
                if response.status_code in REDIRECTS and location:
                    state.hop(response.status_code, location, self.max_redirects)
                    continue
                return self._result(state, response, deadline, etag, last_modified)
            finally:
                response.close()

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        try:
            return self.session.get(url, headers=headers, timeout=self.timeout, stream=True,
                                    allow_redirects=False)
        except requests.RequestException as exc:
            raise _Failure(_network_error(exc, url, self.timeout)) from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise _Failure(f"could not fetch {url}: {exc}") from None

    def _result(self, state: _Hops, response: requests.Response, deadline: float,
                etag: str | None, last_modified: str | None) -> FetchResult:
        status = response.status_code
        url = state.current
        headers = response.headers
        common = {"url": state.url, "final_url": url, "status": status,
                  "content_type": headers.get("Content-Type"),
                  "max_age": _max_age(headers.get("Cache-Control"))}
        if status == 304:
            return FetchResult(**common, etag=headers.get("ETag") or etag,
                               last_modified=headers.get("Last-Modified") or last_modified,
                               moved_to=state.moved_to)
        if status != 200:
            retry_after = None
            if status in RETRY_AFTER_STATUSES:
                retry_after = _retry_after(headers.get("Retry-After"))
            return FetchResult(**common, etag=etag, last_modified=last_modified,
                               retry_after=retry_after,
                               error=_http_error(status, response.reason, url, retry_after))
        try:
            body = self._read(response, url, deadline)
        except _Failure as failure:
            return FetchResult(**common, etag=etag, last_modified=last_modified,
                               error=str(failure))
        return FetchResult(**common, body=body, etag=headers.get("ETag"),
                           last_modified=headers.get("Last-Modified"), moved_to=state.moved_to)

    def _read(self, response: requests.Response, url: str, deadline: float) -> bytes:
        """The decompressed body, counted as it arrives and cut off past `max_bytes`."""
        coding = _unsupported_coding(response.headers.get("Content-Encoding"))
        if coding:
            raise _Failure(f"{url} sent its body compressed with {coding!r}, which Nashra "
                           "cannot decode; ask the publisher for gzip or plain responses")
        too_big = _Failure(f"response is larger than {_size(self.max_bytes)}; raise [fetch] "
                           f"max_bytes if {url} really is a feed that big, or check the URL")
        length = response.headers.get("Content-Length", "")
        if not response.headers.get("Content-Encoding") and length.isdigit() and (
                int(length) > self.max_bytes):
            raise too_big
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                size += len(chunk)
                if size > self.max_bytes:
                    raise too_big
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise _Failure(f"{url} took more than {self.total_timeout:g} s to send "
                                   "its feed; the server is too slow, will try again later")
        except requests.RequestException as exc:
            raise _Failure(_body_error(exc, url, self.timeout[1])) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Failure(f"reading the feed from {url} failed: {exc}") from None
        return b"".join(chunks)


class _Hops:
    """The redirect chain of one fetch: where it is now, and whether every hop was permanent."""

    def __init__(self, url: str):
        self.url = url
        self.current = url
        self.seen = [url]
        self.permanent = True

    def hop(self, status: int, location: str, max_redirects: int) -> None:
        target = urljoin(self.current, location.strip())
        if target in self.seen:
            raise _Failure(f"redirect loop: {' -> '.join([*self.seen, target])}; the site is "
                           "misconfigured, check the URL in a browser", status)
        if len(self.seen) > max_redirects:
            raise _Failure(f"more than {max_redirects} redirects from {self.url} (last to "
                           f"{target}); use the final feed URL instead", status)
        self.seen.append(target)
        self.current = target
        self.permanent = self.permanent and status in PERMANENT

    @property
    def moved_to(self) -> str | None:
        return self.current if len(self.seen) > 1 and self.permanent else None


def _new_session() -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=32, pool_maxsize=16, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _check_url(url: str, asked: str) -> None:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.hostname:
        return
    if url != asked:
        raise _Failure(f"{asked} redirects to {url!r}, which is not an http(s) URL; check the "
                       "source's url in a browser")
    raise _Failure(f"{url!r} is not an http(s) URL; give the feed's full address, starting "
                   "with https://")


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def _network_error(exc: requests.RequestException, url: str,
                   timeout: tuple[float, float]) -> str:
    """One sentence for a request that got no response at all."""
    host = _host(url)
    if isinstance(exc, requests.ConnectTimeout):
        return (f"timed out connecting to {host} after {timeout[0]:g} s (connect timeout); the "
                "server is down or unreachable, will try again later")
    if isinstance(exc, requests.ReadTimeout):
        return (f"{url} did not answer within {timeout[1]:g} s (read timeout); the server is "
                "overloaded, will try again later")
    if isinstance(exc, requests.exceptions.SSLError):
        return (f"TLS/SSL error with {host}: {_reason(exc)}; the site's certificate is invalid "
                "or expired, try the http:// URL or tell the publisher")
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema |
                  requests.exceptions.MissingSchema):
        return f"{url!r} is not a valid URL ({exc}); fix the source's url"
    if isinstance(exc, requests.ConnectionError):
        reason = _root(exc)
        if isinstance(reason, _NAME_RESOLUTION):
            return (f"could not resolve host {urlsplit(url).hostname} (DNS lookup failed); "
                    "check the URL's spelling, or the network")
        if isinstance(reason, ConnectionRefusedError) or "refused" in str(reason).lower():
            return (f"connection to {host} refused; nothing is listening there, check the "
                    "URL's host and port")
        if isinstance(reason, OSError) and reason.errno == errno.ECONNRESET:
            return f"{host} closed the connection; will try again later"
        return f"could not connect to {host}: {_reason(exc)}; will try again later"
    return f"could not fetch {url}: {_reason(exc)}"


def _body_error(exc: requests.RequestException, url: str, read_timeout: float) -> str:
    """One sentence for a response whose body broke off."""
    if isinstance(_root(exc), urllib3.exceptions.ReadTimeoutError) or isinstance(
            exc, requests.Timeout):
        return (f"{url} stopped sending its feed for more than {read_timeout:g} s (read "
                "timeout); will try again later")
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return (f"the compressed body from {url} is corrupt and could not be decompressed; "
                "will try again later, tell the publisher if it persists")
    return f"the response from {url} was cut off ({_reason(exc)}); will try again later"


def _root(exc: BaseException) -> BaseException:
    """The innermost cause under requests' and urllib3's wrappers (MaxRetryError.reason...)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException) and exc.args and isinstance(
                exc.args[0], BaseException):
            inner = exc.args[0]
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def _reason(exc: BaseException) -> str:
    root = _root(exc)
    return str(root) or type(root).__name__


def _http_error(status: int, reason: str | None, url: str, retry_after: float | None) -> str:
    """'HTTP 404 Not Found from URL; fix' for every final status but 200 and 304."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = reason or "unknown status"
    head = f"HTTP {status} {phrase} from {url}"
    if status in REDIRECTS:
        fix = "a redirect without a Location header; check the URL in a browser"
    elif status == 410:
        fix = "the feed was removed for good; remove or replace this source"
    elif status in RETRY_AFTER_STATUSES and retry_after is not None:
        fix = f"the server asks to wait {retry_after:g} s; polling will pause that long"
    elif status == 429:
        fix = "polled too often; polling will back off"
    elif status in (401, 403):
        fix = "the feed needs a login or refuses our User-Agent; check the URL in a browser"
    elif status == 404:
        fix = "no feed at this address; check the source's url"
    elif status >= 500:
        fix = "a problem on the server's side; will try again later"
    elif status >= 400:
        fix = "the server refused the request; check the source's url"
    else:
        fix = "expected 200 with the feed; check the source's url"
    return f"{head}; {fix}"


def _retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from Retry-After: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), MAX_RETRY_AFTER))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return float(min(max(0.0, math.ceil(seconds)), MAX_RETRY_AFTER))


_MAX_AGE = re.compile(r'^max-age\s*=\s*"?(\d+)"?$', re.IGNORECASE)


def _max_age(value: str | None) -> int | None:
    """Cache-Control max-age in seconds; None when absent or unreadable."""
    for directive in (value or "").split(","):
        match = _MAX_AGE.match(directive.strip())
        if match:
            return int(match.group(1))
    return None


def _unsupported_coding(value: str | None) -> str | None:
    for coding in (value or "").split(","):
        coding = coding.strip().lower()
        if coding and coding not in (*CODINGS, "identity", "x-gzip"):
            return coding
    return None


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def backoff_delay(error_count: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: base * 2**(n-1), capped at cap, jittered.

    "Equal" jitter (uniformly between half and all of the capped delay) rather than full
    jitter: sources that failed together spread out, yet none is retried almost at once,
    which full jitter allows and which a struggling server does not need.
    """
    exponent = min(max(error_count, 1) - 1, 60)
    delay = min(cap, base * 2**exponent)
    return rng.uniform(delay / 2, delay)


def next_poll_delay(result: FetchResult, error_count: int, interval: float, min_interval: float,
                    max_interval: float, rng: random.Random,
                    max_backoff: float | None = None) -> float:
    """Seconds until the next poll of a source after `result`.

    Retry-After when given (429/503), never less than it; backoff from min_interval up to
    max_backoff (default max_interval) after a failure; else `interval`, never below the
    response's max-age when the server asks for longer, and never above max_interval.
    `error_count` is the failures in a row including this one, 0 after a success, so a
    200 the caller could not parse (error_count > 0) backs off too.
    """
    cap = max_interval if max_backoff is None else max_backoff
    if (result.ok or result.not_modified) and error_count <= 0:
        return min(max_interval, max(min_interval, interval, result.max_age or 0))
    if result.gone:
        return cap
    delay = backoff_delay(error_count, min_interval, cap, rng)
    if result.retry_after is not None:
        return max(result.retry_after, delay)
    return delay


def adaptive_interval(item_dates: Sequence[datetime], min_interval: float, max_interval: float,
                      feed_hint: float | None = None, max_age: float | None = None) -> float:
    """How often to poll a feed, from how often it actually publishes.

    The median gap between its most recent distinct item dates (the median, so a night's
    pause or a burst does not skew it), clamped to [min_interval, max_interval]; with
    fewer than three dated items, max_interval. Never faster than the feed's own ttl or
    sy:updatePeriod hint (`feed_hint`, seconds) or Cache-Control max-age, but max_interval
    still wins: it is the user's promise of freshness.
    """
    stamps = sorted({_utc(d).timestamp() for d in item_dates}, reverse=True)[:RECENT_ITEMS]
    if len(stamps) < MIN_DATED_ITEMS:
        rhythm = max_interval
    else:
        rhythm = statistics.median(a - b for a, b in itertools.pairwise(stamps))
    return float(min(max_interval, max(min_interval, rhythm, feed_hint or 0, max_age or 0)))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
