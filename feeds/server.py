"""HTTP: the published documents, pre-rendered and pre-compressed, with conditional GET.

The server never builds a feed: it serves the bytes that publishing stored, from memory,
and `DocumentCache.reload()` swaps in new ones after each build.
"""

from __future__ import annotations

import gzip
import html
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from feeds.model import Document
from feeds.publish import INDEX_PATH
from storage import Storage

CACHE_CONTROL = "public, max-age=60"


@dataclass(frozen=True)
class Served:
    """A document with everything a response needs, computed once per build."""

    document: Document
    gzipped: bytes
    last_modified: str

    @property
    def etag(self) -> str:
        return self.document.etag

    @property
    def gzip_etag(self) -> str:
        return self.document.etag[:-1] + '-gzip"'


class DocumentCache:
    """The stored documents by URL path, replaced whole on reload (readers never block)."""

    def __init__(self, storage: Storage):
        self._storage = storage
        self._lock = threading.Lock()
        self._served: dict[str, Served] = {}
        self.reload()

    def reload(self) -> None:
        served = {}
        for document in self._storage.documents():
            served[document.path] = Served(
                document,
                gzip.compress(document.body, mtime=0),
                format_datetime(document.last_modified, usegmt=True),
            )
        with self._lock:
            self._served = served

    def get(self, path: str) -> Served | None:
        return self._served.get(path)


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _not_modified(request: Request, served: Served) -> bool:
    """RFC 9110: If-None-Match decides when present; otherwise If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or bool(tags & {served.etag, served.gzip_etag})
    since = request.headers.get("if-modified-since")
    if since:
        try:
            return served.document.last_modified.replace(microsecond=0) <= parsedate_to_datetime(
                since)
        except (TypeError, ValueError):
            return False
    return False


async def serve_document(request: Request) -> Response:
    path = request.url.path.lstrip("/") or INDEX_PATH
    served = request.app.state.cache.get(path)
    if served is None:
        return _not_found(path)
    use_gzip = _accepts_gzip(request)
    headers = {
        "ETag": served.gzip_etag if use_gzip else served.etag,
        "Last-Modified": served.last_modified,
        "Cache-Control": CACHE_CONTROL,
        "Vary": "Accept-Encoding",
    }
    if _not_modified(request, served):
        return Response(status_code=304, headers=headers)
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
    body = served.gzipped if use_gzip else served.document.body
    return Response(body, headers=headers, media_type=served.document.media_type)


def _not_found(path: str) -> Response:
    page = (
        '<!DOCTYPE html><html lang="ar" dir="rtl"><head><meta charset="utf-8">'
        "<title>غير موجود</title></head><body><h1>غير موجود</h1>"
        f"<p>لا توجد صفحة أو موضوع بهذا العنوان: <bdi>/{html.escape(path)}</bdi></p>"
        '<p><a href="/">قائمة المواضيع</a></p></body></html>'
    )
    return Response(page, status_code=404, media_type="text/html; charset=utf-8")


async def status_json(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(request.app.state.status))


async def status_page(request: Request) -> Response:
    status = await run_in_threadpool(request.app.state.status)
    esc = html.escape
    rows = "\n".join(
        f"<tr><td><bdi>{esc(s['name'])}</bdi></td><td>{'✓' if s['enabled'] else '✗'}</td>"
        f"<td>{esc(s['last_fetch'] or '-')}</td><td>{s['last_status'] or '-'}</td>"
        f"<td>{s['item_count']}</td><td>{s['error_count']}</td>"
        f"<td>{esc(s['next_poll'] or '-')}</td>"
        f"<td dir=\"auto\">{esc(s['last_error'] or s['bozo'] or '')}</td></tr>"
        for s in status["sources"])
    page = _STATUS_TEMPLATE.format(
        articles=status["articles"], due=status["due"], errors=status["errors"],
        fetching=esc(", ".join(status["fetching"]) or "-"), rows=rows)
    return HTMLResponse(page)


_STATUS_TEMPLATE = """<!DOCTYPE html>
<html lang="ar" dir="rtl"><head><meta charset="utf-8"><title>الحالة</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}td,th{{padding:.2rem .6rem;
border-bottom:1px solid #ddd;text-align:start}}</style></head><body>
<h1>حالة المصادر</h1>
<p>المقالات: {articles} · مستحقة: {due} · قيد الجلب: <bdi>{fetching}</bdi> · أخطاء: {errors}
· <a href="/status.json">JSON</a></p>
<table><tr><th>المصدر</th><th>مفعل</th><th>آخر جلب</th><th>الحالة</th><th>المواد</th>
<th>الأخطاء</th><th>الجلب التالي</th><th>آخر مشكلة</th></tr>
{rows}
</table></body></html>
"""


def create_app(cache: DocumentCache, status: Callable[[], dict] | None = None) -> Starlette:
    """The app: documents from `cache`, and /status (HTML and JSON) when `status` is given."""
    routes = []
    if status is not None:
        routes += [Route("/status", status_page), Route("/status.json", status_json)]
    routes.append(Route("/{path:path}", serve_document, methods=["GET", "HEAD"]))
    app = Starlette(routes=routes)
    app.state.cache = cache
    app.state.status = status
    return app


def make_server(app: Starlette, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for `app`; `.run()` blocks until Ctrl-C or `.should_exit`."""
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                         access_log=False, server_header=False))
