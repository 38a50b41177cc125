"""Shared fixtures: settings and storage in tmp_path, seed files, a live HTTP server, `nashra`."""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from feeds.config import Settings, default_config_text, load_settings
from feeds.model import Article
from feeds.partners import PartnerDesk
from feeds.pipeline import build_documents, build_tag, ingest_seeds
from feeds.server import DocumentCache, create_app, make_server
from storage import Storage
from storage.schema import pending_rebuilds

REPO = Path(__file__).resolve().parent.parent
SHIPPED_SEEDS = REPO / "seeds"
SEED_TITLE = "المغرب يعزز دوره العالمي في مكافحة الإرهاب بزيارة حموشي إلى فيينا"
NASHRA = Path(sys.executable).parent / "nashra"
T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def seeds_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SHIPPED_SEEDS, tmp_path / "seeds"))


# --- storage backends: SQLite always; PostgreSQL for modules marked `both_backends` ----

PG_URL = os.environ.get("NASHRA_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "both_backends: run storage tests on SQLite and "
                                       "PostgreSQL ($NASHRA_TEST_PG_URL)")


def pytest_generate_tests(metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_backends") and (
            "backend" in metafunc.fixturenames):
        metafunc.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def backend(request) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[sa.URL]:
    """A PostgreSQL database of this test session's own, dropped at its end."""
    server = sa.make_url(PG_URL)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": 3})
    try:
        admin.connect().close()
    except sa.exc.OperationalError:
        admin.dispose()
        where = f"{server.host or 'localhost'}:{server.port or 5432}"
        pytest.skip(f"PostgreSQL not reachable at {where}: start it or set NASHRA_TEST_PG_URL")
    name = f"nashra_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:  # C collation: text sorts as in SQLite
        conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                             "LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture
def pg_url(pg_database: sa.URL) -> str:
    """A fresh, empty schema of the session's database, as a storage URL."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_database)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    url = pg_database.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def storage_url(request, backend: str, tmp_path: Path) -> str:
    if backend == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'nashra.db'}"


@pytest.fixture
def settings(storage_url: str, seeds_dir: Path) -> Settings:
    return replace(load_settings(), storage_url=storage_url, seeds_dir=seeds_dir)


@pytest.fixture
def storage(settings: Settings):
    store = Storage(settings.storage_url)
    yield store
    store.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nashra.db"


@pytest.fixture
def write_seed(seeds_dir: Path):
    """write_seed(name, text_or_bytes, mtime=None) -> the path of a new seed file."""

    def write(name: str, content: str | bytes, mtime: float | None = None) -> Path:
        path = seeds_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, "utf-8")
        else:
            path.write_bytes(content)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    return write


@pytest.fixture
def make_article():
    """make_article(key, **fields) -> an Article of source "test", in topic security."""

    def make(key: str, **fields) -> Article:
        published = fields.pop("published", T0)
        values = {
            "source": "test", "key": key, "title": f"خبر أمني رقم {key}",
            "content_html": f"<p>نص الخبر رقم {key} عن الأمن في المغرب.</p>", "summary": "",
            "language": "ar", "published": published, "updated": published,
            "topics": ("security",), "content_hash": f"hash-{key}",
        }
        values.update(fields)
        return Article(**values)

    return make


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def waiting_rebuilds(storage: Storage) -> dict[str, datetime]:
    """topic -> when its rebuild is due, for each topic waiting for one (feeds.tasks)."""
    with storage.engine.connect() as conn:
        return dict(conn.execute(sa.select(pending_rebuilds)).all())


def run_together(processes: list) -> None:
    """Start these processes at once and wait for each; every one must exit cleanly."""
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answers(url: str, timeout: float = 15.0, process=None) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = requests.get(url, timeout=1)
            if response.status_code == 200:
                return response
        except requests.ConnectionError:
            pass
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{url}: the server exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer 200 within {timeout}s")
        time.sleep(0.05)


@dataclass
class LiveServer:
    url: str
    settings: Settings
    storage: Storage
    cache: DocumentCache
    partners: PartnerDesk


class Records(logging.Handler):
    """The messages logged to the logger it is added to."""

    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def serving(app, port: int | None = None, access_log: bool = False, **options
            ) -> Iterator[str]:
    """`app` under a real uvicorn on 127.0.0.1 until the block ends; yields its URL."""
    port = port or free_port()
    server = make_server(app, "127.0.0.1", port, access_log=access_log, **options)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/topics.opml")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server(settings: Settings, storage: Storage):
    """The real Starlette app under uvicorn on 127.0.0.1, serving the ingested shipped seed."""
    port = free_port()
    served = settings.with_server("127.0.0.1", port)
    ingest_seeds(served, storage)
    build_documents(served, storage)
    cache = DocumentCache(storage)
    partners = PartnerDesk(served, storage, cache)
    tags = functools.partial(build_tag, served, storage)
    with serving(create_app(cache, partners=partners, tags=tags), port) as url:
        yield LiveServer(url, served, storage, cache, partners)


def config_text(db: Path | str, seeds: Path, **seeds_options: int) -> str:
    """The shipped config with storage at `db` (an SQLite file or a URL) and seeds at `seeds`."""
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    text = default_config_text()
    edits = [(r'^url = "sqlite:///var/nashra.db"', f'url = "{url}"'),
             (r'^dir = "seeds"', f'dir = "{seeds}"'),
             *((rf"^{key} = \d+", f"{key} = {value}") for key, value in seeds_options.items())]
    for pattern, replacement in edits:
        text, found = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
        assert found == 1, f"the shipped config has no line matching {pattern}"
    return text


@pytest.fixture
def config_file(tmp_path: Path, storage_url: str, seeds_dir: Path) -> Path:
    path = tmp_path / "nashra.toml"
    path.write_text(config_text(storage_url, seeds_dir), "utf-8")
    return path


def nashra_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NASHRA_CONFIG"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def nashra(tmp_path: Path):
    """nashra(*args) -> CompletedProcess of the real `nashra` command run in tmp_path."""

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(NASHRA), *args], cwd=tmp_path, env=nashra_env(),
                              capture_output=True, text=True, timeout=timeout)

    return run


# --- a Celery broker for the distributed roles: Redis on 127.0.0.1, or $NASHRA_TEST_BROKER_URL

BROKER_URL = os.environ.get("NASHRA_TEST_BROKER_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def broker_url() -> str:
    """A real broker that answers, else the test skips and says why."""
    from kombu import Connection
    from kombu.exceptions import OperationalError

    try:
        with Connection(BROKER_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except (OperationalError, OSError) as exc:
        pytest.skip(f"no Celery broker at {BROKER_URL} ({exc}): start Redis or RabbitMQ, "
                    "or set NASHRA_TEST_BROKER_URL")
    return BROKER_URL


@pytest.fixture
def broker_queue(broker_url: str) -> Iterator[str]:
    """A queue of this test's own on the broker, deleted at its end."""
    from kombu import Connection

    queue = f"nashra-test-{uuid.uuid4().hex[:8]}"
    yield queue
    with Connection(broker_url) as conn:
        conn.default_channel.queue_delete(queue)


# --- feed sources: pytest-httpserver on 127.0.0.1, small RSS feeds ----------------------


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver on the address 127.0.0.1 (its default is the name localhost)."""
    return ("127.0.0.1", 0)


RSS_TYPE = "application/rss+xml; charset=utf-8"
# Three Arabic items about sports: no topic term of `security` in them.
SPORTS_ITEMS = (
    ("المنتخب المغربي يفوز في مباراة ودية", "سجل اللاعبون ثلاثة أهداف في مباراة ودية أمس."),
    ("الدوري الاحترافي يستأنف نهاية الأسبوع", "تستأنف منافسات الدوري بعد توقف دام أسبوعين."),
    ("المدرب يعلن قائمة اللاعبين للبطولة", "أعلن المدرب قائمة من ستة وعشرين لاعبا للبطولة."),
)
SECURITY_TITLE = "الشرطة تفكك شبكة لتهريب المخدرات في طنجة"
SECURITY_BODY = ("أعلنت المديرية العامة للأمن الوطني أن عناصر الشرطة فككت شبكة إجرامية "
                 "تنشط في تهريب المخدرات، في عملية أمنية نوعية بتنسيق مع مراقبة التراب الوطني.")


def rfc822(moment: datetime) -> str:
    """An RSS pubDate (RFC 822, GMT)."""
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def rss_item(guid: str, title: str, description: str, link: str | None = None,
             published: datetime | None = None, extra: str = "") -> str:
    """One <item>; `title` and `description` are put in as they are (escape them yourself)."""
    parts = [f"<title>{title}</title>", f'<guid isPermaLink="false">{guid}</guid>',
             f"<description>{description}</description>"]
    if link is not None:
        parts.append(f"<link>{link}</link>")
    if published is not None:
        parts.append(f"<pubDate>{rfc822(published)}</pubDate>")
    return f"<item>{''.join(parts)}{extra}</item>"


def rss_feed(*items: str, title: str = "مصدر تجريبي", language: str | None = "ar",
             channel: str = "") -> bytes:
    lang = f"<language>{language}</language>" if language else ""
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>{title}</title><link>https://news.example.org/</link>"
            f"<description>أخبار</description>{lang}{channel}{''.join(items)}"
            "</channel></rss>").encode()


def sports_feed(prefix: str = "sports", hours_ago: float = 1.0) -> bytes:
    """An RSS feed of the three SPORTS_ITEMS, dated an hour or more ago."""
    now = datetime.now(UTC)
    return rss_feed(*(
        rss_item(f"urn:{prefix}:{n}", title, body, f"https://news.example.org/{prefix}/{n}",
                 now - timedelta(hours=hours_ago + n))
        for n, (title, body) in enumerate(SPORTS_ITEMS)))


def feedparser_both_ways(body: bytes) -> tuple[tuple, tuple]:
    """feedparser's result for `body` with its stock SAX parser, then with the buffered
    one feeds.parse gives it; each as (result without the bozo exception, the exception's
    type and words), since exceptions compare by identity."""
    import feedparser
    import feedparser.api

    def parsed() -> tuple:
        result = dict(feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False))
        exception = result.pop("bozo_exception", None)
        return result, type(exception).__name__, str(exception)

    ours = parsed()
    chosen = feedparser.api.PREFERRED_XML_PARSERS[:]
    feedparser.api.PREFERRED_XML_PARSERS[:] = [p for p in chosen if p != "feeds.parse"]
    try:
        return parsed(), ours
    finally:
        feedparser.api.PREFERRED_XML_PARSERS[:] = chosen
