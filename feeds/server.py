"""HTTP: the published documents, pre-rendered and pre-compressed, with conditional GET.

The server builds no public feed: it serves the bytes that publishing stored, from memory,
and `DocumentCache.reload()` swaps in new ones after each build. Partner feeds are built
on their first pull by `feeds.partners` and kept beside them. uvicorn runs it all, with
`DocumentProtocol` answering stored documents as soon as a request's headers are read.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hmac
import html
import http
import ipaddress
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import format_datetime, parsedate_to_datetime
from typing import TYPE_CHECKING

import brotli
import httptools
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.supervisors import Multiprocess

from feeds.model import Document
from feeds.publish import FEED_KINDS, IMMUTABLE_AGE, INDEX_PATH, MEDIA_TYPES
from storage import Storage

if TYPE_CHECKING:
    from feeds.partners import PartnerDesk

PARTNER_PREFIX = "partner/"
# Paid once per build for every changed document: on a 540 KB feed quality 6 takes 14 ms
# and beats gzip -6 (23 ms); quality 11 was 18% smaller but took 0.76 s, which a full
# rebuild pays for every feed and archive page (a minute of CPU before serving).
BROTLI_QUALITY = 6
ENCODINGS = ("br", "gzip")  # in order of preference
JSON_FEED_TYPE = MEDIA_TYPES["json"].split(";")[0]
XML_FEED_TYPES = (MEDIA_TYPES["rss"], MEDIA_TYPES["atom"])
BROWSER_XML_TYPE = "application/xml; charset=utf-8"


@dataclass(frozen=True)
class Answer:
    """A response ready for ASGI, made once per document and variant, sent as is.

    It is an ASGI app, so a Starlette endpoint can return it too.
    """

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        await send({"type": "http.response.start", "status": self.status,
                    "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})

    @functools.cached_property
    def head(self) -> bytes:
        """The status line and headers as sent, but for the Date and Connection lines."""
        status = http.HTTPStatus(self.status)
        lines = [f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode("ascii")]
        lines += [name + b": " + value + b"\r\n" for name, value in self.headers]
        return b"".join(lines)


@dataclass(frozen=True)
class Answers:
    """The three answers to one variant of a document: 304, 200 and HEAD's 200."""

    not_modified: Answer
    full: Answer
    head: Answer


@dataclass(frozen=True)
class Served:
    """A document with everything a response needs, computed once per build.

    `key` says what a derived document (a partner's feed) was built from. Its answers are
    made on first use per variant and kept: serving one is a dict lookup.
    """

    document: Document
    compressed: dict[str, bytes]
    last_modified: str
    key: object = None
    _answers: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, document: Document, key: object = None) -> Served:
        body = document.body
        return cls(document, {"gzip": gzip.compress(body, mtime=0),
                              "br": brotli.compress(body, quality=BROTLI_QUALITY)},
                   format_datetime(document.last_modified, usegmt=True), key)

    def etag(self, encoding: str | None) -> str:
        """Strong ETags differ per encoding (RFC 9110 8.8.3)."""
        tag = self.document.etag
        return f'{tag[:-1]}-{encoding}"' if encoding else tag

    @functools.cached_property
    def etags(self) -> frozenset[str]:
        return frozenset(self.etag(encoding) for encoding in (None, *ENCODINGS))

    @property
    def is_xml_feed(self) -> bool:
        return self.document.media_type in XML_FEED_TYPES

    def answers(self, privacy: str, encoding: str | None, browser: bool) -> Answers:
        """`privacy` is "private" for a partner's feed: shared caches must not keep it."""
        variant = (privacy, encoding, browser)
        answers = self._answers.get(variant)
        if answers is None:
            answers = self._answers[variant] = self._make_answers(*variant)
        return answers

    def _make_answers(self, privacy: str, encoding: str | None, browser: bool) -> Answers:
        document = self.document
        age = document.max_age
        headers = [
            ("etag", self.etag(encoding)),
            ("last-modified", self.last_modified),
            ("cache-control", f"{privacy}, max-age={age}"
             + (", immutable" if age >= IMMUTABLE_AGE else "")),
            ("vary", "Accept-Encoding, Accept" if self.is_xml_feed else "Accept-Encoding"),
        ]
        not_modified = Answer(304, _raw(headers))
        if privacy == "public" and document.media_type.startswith(JSON_FEED_TYPE):
            headers.append(("access-control-allow-origin", "*"))  # read by browser scripts
        body = self.compressed[encoding] if encoding else document.body
        if encoding:
            headers.append(("content-encoding", encoding))
        headers += [("content-length", str(len(body))),
                    ("content-type", BROWSER_XML_TYPE if browser else document.media_type)]
        return Answers(not_modified, Answer(200, _raw(headers), body), Answer(200, _raw(headers)))


def _raw(headers: list[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers)


class DocumentCache:
    """The stored documents by URL path, replaced whole on reload (readers never block).

    A document whose bytes did not change keeps its compressed forms. Documents built on
    request (entity feeds) are kept beside them until the next reload, the most recent
    `MAX_KEPT` of them.
    """

    MAX_KEPT = 300

    def __init__(self, storage: Storage):
        self._storage = storage
        self._lock = threading.Lock()
        self._served: dict[str, Served] = {}
        self._kept: dict[str, Served] = {}
        self.reload()

    def reload(self) -> None:
        served = {}
        for document in self._storage.documents():
            before = self._served.get(document.path)
            same = before is not None and before.document.etag == document.etag
            served[document.path] = (Served(document, before.compressed,
                                            before.last_modified) if same
                                     else Served.of(document))
        with self._lock:
            self._served, self._kept = served, {}

    def keep(self, documents: list[Document]) -> None:
        """Serve these documents, built on request, until the next reload."""
        with self._lock:
            kept = {**self._kept, **{d.path: Served.of(d) for d in documents}}
            self._kept = dict(list(kept.items())[-self.MAX_KEPT:])

    def refresh(self) -> None:
        """Reload when storage holds other documents than these: a worker process learns
        of a build this way, by a query that reads no bodies.
        """
        held = {path: served.document.built_from for path, served in self._served.items()}
        if self._storage.built_from() != held:
            self.reload()

    def get(self, path: str) -> Served | None:
        return self._served.get(path) or self._kept.get(path)


_CONDITIONS = frozenset((b"accept-encoding", b"accept", b"if-none-match", b"if-modified-since"))


def answer(served: Served, request_headers: list[tuple[bytes, bytes]], head: bool = False,
           privacy: str = "public") -> Answer:
    """200 with the body in the best accepted encoding, or 304; a HEAD (`head`) gets no body.

    `request_headers` as in an ASGI scope; `privacy` is "private" for a partner's feed.
    """
    headers = {name: value.decode("latin-1") for name, value in request_headers
               if name in _CONDITIONS}
    browser = served.is_xml_feed and "text/html" in headers.get(b"accept", "")
    answers = served.answers(privacy, _encoding(headers.get(b"accept-encoding", "")), browser)
    if _not_modified(headers, served):
        return answers.not_modified
    return answers.head if head else answers.full


@functools.lru_cache(maxsize=256)
def _encoding(accept_encoding: str) -> str | None:
    """The preferred encoding the client accepts (q > 0), or None for identity.

    Cached: clients send a handful of distinct values.
    """
    accepted = {}
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
        accepted[coding.strip().lower()] = quality
    for encoding in ENCODINGS:
        if accepted.get(encoding, accepted.get("*", 0.0)) > 0:
            return encoding
    return None


def _not_modified(headers: dict[bytes, str], served: Served) -> bool:
    """RFC 9110: If-None-Match decides when present; otherwise If-Modified-Since."""
    if_none_match = headers.get(b"if-none-match")
    if if_none_match is not None:
        if if_none_match in served.etags:  # what nearly every client sends: one tag of ours
            return True
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or not served.etags.isdisjoint(tags)
    since = headers.get(b"if-modified-since")
    if since:
        try:
            return served.document.last_modified.replace(microsecond=0) <= parsedate_to_datetime(
                since)
        except (TypeError, ValueError):
            return False
    return False


class FastPath:
    """GET and HEAD of a public document, answered before Starlette is entered.

    Routing and Starlette's request and response objects were most of a 304's cost. Most
    such requests do not even get here (`DocumentProtocol` answers them); those that wait
    their turn behind another on their connection do, and so does every request under
    another ASGI server. Anything else (partners, /status, a 404) goes on to `app`.
    """

    def __init__(self, app: Starlette, cache: DocumentCache):
        self.app, self.cache, self.state = app, cache, app.state

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            served = self.cache.get(scope["path"].lstrip("/") or INDEX_PATH)
            if served is not None:
                await answer(served, scope["headers"], scope["method"] == "HEAD")(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Answered:
    """The request cycle of a request `DocumentProtocol` answered itself: complete."""

    response_complete = True
    message_event = asyncio.Event()  # set when the connection is lost; nobody waits on it


class DocumentProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, which answers GET and HEAD of a stored public document
    itself, as soon as the request's headers are parsed.

    The bytes are prepared (`Answer.head`), so a 304 is a lookup and a write. Through ASGI,
    creating the request's task and cycle and sending two messages cost more than the rest
    of the request: this is where a feed server spends its time, answering conditional
    GETs. Everything else, and any request that must wait its turn (pipelined behind one
    being answered, or a client not reading), takes uvicorn's own path to the app.
    """

    def __init__(self, config: uvicorn.Config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.documents = _fast_path(self.app).cache
        self.idle_since: float | None = None
        self.server_headers: list | None = None
        self.server_header_lines = b""

    def on_message_begin(self) -> None:
        """A request's start: its ASGI scope is made only if it goes on to the app."""
        self.url, self.headers, self.expect_100_continue = b"", [], False

    def on_headers_complete(self) -> None:
        method, url = self.parser.get_method(), httptools.parse_url(self.url)
        served = self._stored_document(method, url.path)
        if served is None:
            self._make_scope()
            super().on_headers_complete()
            return
        keep_alive = self.parser.should_keep_alive() and self.parser.get_http_version() != "1.0"
        reply = answer(served, self.headers, method == b"HEAD")
        if self.access_log:  # before the answer, as uvicorn does: the client sees it after
            self._log(method, url, reply.status)
        end = b"\r\n" if keep_alive else b"connection: close\r\n\r\n"
        self.transport.write(reply.head + self._server_lines() + end)
        if reply.body:
            self.transport.write(reply.body)
        self.cycle = _Answered  # the message's end (and any body) finds its request answered
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()

    def _make_scope(self) -> None:
        """uvicorn's ASGI scope for this request, made only when it goes on to the app."""
        url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()  # a new scope, holding a headers list of its own
        self.url, self.expect_100_continue = url, expect_100_continue
        self.headers += headers

    def _stored_document(self, method: bytes, path: bytes) -> Served | None:
        """The public document this request asks for, if it can be answered now."""
        if (method not in (b"GET", b"HEAD") or b"%" in path or self.expect_100_continue
                or self.parser.should_upgrade() or self.pipeline or self.flow.write_paused
                or (self.cycle is not None and not self.cycle.response_complete)
                or self.limit_concurrency is not None or self.logger.level <= TRACE_LOG_LEVEL
                or (self.access_log and self._forwarded())):
            return None
        return self.documents.get(path.decode("ascii").lstrip("/") or INDEX_PATH)

    def _forwarded(self) -> bool:
        """Whether a proxy forwarded the request: uvicorn's proxy-headers middleware then
        logs the client it names, so the request goes that way."""
        return any(name == b"x-forwarded-for" for name, _ in self.headers)

    def _log(self, method: bytes, url, status: int) -> None:
        """uvicorn's access log line."""
        scope = {"client": self.client, "root_path": self.root_path,
                 "path": url.path.decode("ascii"), "query_string": url.query or b""}
        self.access_logger.info('%s - "%s %s HTTP/%s" %d', get_client_addr(scope),
                                method.decode("ascii"), get_path_with_query_string(scope),
                                self.parser.get_http_version(), status)

    def _server_lines(self) -> bytes:
        """uvicorn's default header lines (its Date, which it renews every second)."""
        headers = self.server_state.default_headers
        if headers is not self.server_headers:
            self.server_headers = headers
            self.server_header_lines = b"".join(name + b": " + value + b"\r\n"
                                                for name, value in headers)
        return self.server_header_lines

    # The keep-alive timeout, kept with one timer per connection, not one per request:
    # uvicorn arms a timer after each response and cancels it when the next request comes,
    # which cost a fifth of a 304. Here a request only marks the connection busy, and the
    # timer, when it fires, closes the connection if it has been idle long enough, or
    # waits for the rest of the timeout.

    def _unset_keepalive_if_required(self) -> None:
        self.idle_since = None

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self._start_asgi_task(*self.pipeline.pop())
            return
        self.idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self._close_when_idle(self.timeout_keep_alive)

    def _close_when_idle(self, delay: float) -> None:
        self.timeout_keep_alive_task = self.loop.call_later(delay, self.timeout_keep_alive_handler)

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        if self.idle_since is None:  # busy: the response's end sets the timer again
            return
        left = self.idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self._close_when_idle(left)
        else:
            super().timeout_keep_alive_handler()


def _fast_path(app: object) -> FastPath:
    """The FastPath inside uvicorn's middleware (proxy headers, logging)."""
    while not isinstance(app, FastPath):
        app = app.app
    return app


async def not_found(request: Request) -> Response:
    """Every stored document is answered by `FastPath`: what reaches here is none."""
    return _not_found(request.url.path.lstrip("/"))


async def tag_feed(request: Request) -> Response:
    """/tags/<tag>.<kind>: an entity's feed, built on its first request; `FastPath` serves
    it from then on, until the next build."""
    path = request.url.path.lstrip("/")
    tag, _, kind = request.path_params["name"].rpartition(".")
    build, cache = request.app.state.tags, request.app.state.cache
    documents = await run_in_threadpool(build, tag) if build and kind in FEED_KINDS else None
    if not documents:
        return _not_found(path)
    cache.keep(documents)
    return answer(cache.get(path), request.scope["headers"], request.method == "HEAD")


async def partner_by_path(request: Request) -> Response:
    """/p/<token>/topics/<slug>.<kind>: for clients that cannot set a header."""
    return await _partner_feed(request, request.path_params["token"])


async def partner_by_header(request: Request) -> Response:
    """/partner/topics/<slug>.<kind> with `Authorization: Bearer <token>`."""
    return await _partner_feed(request, _bearer(request))


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _partner_feed(request: Request, token: str) -> Response:
    """A partner's feed; a wrong token and a topic it may not pull get the topic's 404."""
    desk: PartnerDesk | None = request.app.state.partners
    name = request.path_params["name"]
    partner = desk.find(token) if desk is not None and token else None
    if partner is None or not desk.may_pull(partner, name):
        return _not_found(f"{PARTNER_PREFIX}topics/{name}")
    wait = await run_in_threadpool(desk.take, partner)  # a write to storage
    if wait:
        return Response(f"too many requests; retry in {wait} s\n", status_code=429,
                        headers={"Retry-After": str(wait)}, media_type="text/plain")
    served = await run_in_threadpool(desk.document, partner, name)
    return answer(served, request.scope["headers"], request.method == "HEAD", "private")


def _not_found(path: str) -> Response:
    page = (
        '<!DOCTYPE html><html lang="ar" dir="rtl"><head><meta charset="utf-8">'
        "<title>غير موجود</title></head><body><h1>غير موجود</h1>"
        f"<p>لا توجد صفحة أو موضوع بهذا العنوان: <bdi>/{html.escape(path)}</bdi></p>"
        '<p><a href="/">قائمة المواضيع</a></p></body></html>'
    )
    return Response(page, status_code=404, media_type="text/html; charset=utf-8")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _admitted(request: Request) -> bool:
    """/status is open on loopback; bound beyond it, it needs the admin token."""
    state = request.app.state
    if not state.admin_required:
        return True
    return bool(state.admin_token) and hmac.compare_digest(
        _bearer(request).encode("utf-8"), state.admin_token.encode("utf-8"))


def _status(request: Request) -> dict:
    state = request.app.state
    status = state.status() if state.status is not None else {}
    status["partners"] = state.partners.status() if state.partners is not None else []
    return status


def _unauthorized() -> Response:
    return Response("admin token required\n", status_code=401, media_type="text/plain",
                    headers={"WWW-Authenticate": 'Bearer realm="nashra status"'})


async def status_json(request: Request) -> Response:
    if not _admitted(request):
        return _unauthorized()
    return JSONResponse(await run_in_threadpool(_status, request))


async def status_page(request: Request) -> Response:
    if not _admitted(request):
        return _unauthorized()
    status = await run_in_threadpool(_status, request)
    sources = _SOURCES_TEMPLATE.format(**_source_rows(status)) if "sources" in status else ""
    return HTMLResponse(_STATUS_TEMPLATE.format(sources=sources,
                                                partners=_partner_rows(status["partners"])))


def _source_rows(status: dict) -> dict:
    esc = html.escape
    rows = "\n".join(
        f"<tr><td><bdi>{esc(s['name'])}</bdi></td><td>{'✓' if s['enabled'] else '✗'}</td>"
        f"<td>{esc(s['last_fetch'] or '-')}</td><td>{s['last_status'] or '-'}</td>"
        f"<td>{s['item_count']}</td><td>{s['error_count']}</td>"
        f"<td>{esc(s['next_poll'] or '-')}</td>"
        f"<td dir=\"auto\">{esc(s['last_error'] or s['bozo'] or '')}</td></tr>"
        for s in status["sources"])
    return {"articles": status["articles"], "due": status["due"], "errors": status["errors"],
            # A worker process (`--workers N`) cannot know what the main process fetches.
            "fetching": esc(", ".join(status.get("fetching", "?")) or "-"), "rows": rows}


def _partner_rows(partners: list[dict]) -> str:
    esc = html.escape
    return "\n".join(
        f"<tr><td><bdi>{esc(p['name'])}</bdi></td><td dir=\"ltr\">{esc(' '.join(p['topics']))}"
        f"</td><td>{p['pulls']}</td><td>{p['limited']}</td>"
        f"<td>{esc(p['last_pull'] or '-')}</td></tr>" for p in partners)


_SOURCES_TEMPLATE = """<h2>المصادر</h2>
<p>المقالات: {articles} · مستحقة: {due} · قيد الجلب: <bdi>{fetching}</bdi> · أخطاء: {errors}</p>
<table><tr><th>المصدر</th><th>مفعل</th><th>آخر جلب</th><th>الحالة</th><th>المواد</th>
<th>الأخطاء</th><th>الجلب التالي</th><th>آخر مشكلة</th></tr>
{rows}
</table>"""

_STATUS_TEMPLATE = """<!DOCTYPE html>
<html lang="ar" dir="rtl"><head><meta charset="utf-8"><title>الحالة</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}td,th{{padding:.2rem .6rem;
border-bottom:1px solid #ddd;text-align:start}}</style></head><body>
<h1>الحالة</h1>
<p><a href="/status.json">JSON</a></p>
{sources}
<h2>الشركاء</h2>
<table><tr><th>الشريك</th><th>المواضيع</th><th>السحوبات</th><th>المرفوضة (429)</th>
<th>آخر سحب</th></tr>
{partners}
</table></body></html>
"""


def create_app(cache: DocumentCache, status: Callable[[], dict] | None = None,
               partners: PartnerDesk | None = None, host: str = "127.0.0.1",
               admin_token: str | None = None,
               tags: Callable[[str], list[Document] | None] | None = None) -> FastPath:
    """The app: documents from `cache`, partner feeds, entity feeds that `tags` builds
    (None for an unknown tag), /status (HTML and JSON).

    `host` is the address the server is bound to: beyond loopback, /status needs
    `admin_token` (and is closed without one).
    """
    routes = [
        Route("/status", status_page), Route("/status.json", status_json),
        Route("/p/{token}/topics/{name}", partner_by_path, methods=["GET", "HEAD"]),
        Route("/partner/topics/{name}", partner_by_header, methods=["GET", "HEAD"]),
        Route("/tags/{name}", tag_feed, methods=["GET", "HEAD"]),
        Route("/{path:path}", not_found, methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes)
    app.state.cache = cache
    app.state.status = status
    app.state.partners = partners
    app.state.tags = tags
    app.state.admin_required = not is_loopback(host)
    app.state.admin_token = admin_token
    return FastPath(app, cache)


class _RedactTokens(logging.Filter):
    """uvicorn's access log prints each path, and a partner path holds the token."""

    PATTERN = re.compile(r"/p/[^/?#\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.PATTERN.sub("/p/[token]", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


_REDACT = _RedactTokens()


def _config(app: object, host: str, port: int, access_log: bool, **options) -> uvicorn.Config:
    # httptools (and uvloop): on h11 a 304 cost three times as much, before DocumentProtocol.
    return uvicorn.Config(app, host=host, port=port, server_header=False, http=DocumentProtocol,
                          log_level="info" if access_log else "warning",
                          access_log=access_log, **options)


def make_server(app: FastPath, host: str, port: int, access_log: bool = False,
                **options) -> uvicorn.Server:
    """A uvicorn server for `app`; `.run()` blocks until Ctrl-C or `.should_exit`.

    `options` go to uvicorn.Config (timeout_keep_alive=, say)."""
    config = _config(app, host, port, access_log, **options)
    logging.getLogger("uvicorn.access").addFilter(_REDACT)  # after Config set up logging
    return uvicorn.Server(config)


class Workers:
    """`workers` processes sharing one listening socket, each serving the app `factory`
    makes in it; `.run()` blocks until Ctrl-C (uvicorn's supervisor restarts a dead one).

    `factory` is pickled into each process, so it must be a module-level function (or a
    `functools.partial` of one).
    """

    def __init__(self, factory: Callable[[], FastPath], workers: int, host: str, port: int,
                 access_log: bool = False):
        self.config = _config(functools.partial(_worker_app, factory), host, port, access_log,
                              factory=True, workers=workers)

    def run(self) -> None:
        Multiprocess(self.config, sockets=[self.config.bind_socket()]).run()


def _worker_app(factory: Callable[[], FastPath]) -> FastPath:
    logging.getLogger("uvicorn.access").addFilter(_REDACT)  # a new process: its own logging
    return factory()
