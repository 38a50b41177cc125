"""Parsing: feed bytes -> `Article`s (feedparser), with what went wrong said in words.

Pure: no network, no files, no clock unless the caller leaves out `now`. Bodies stay raw
HTML here: `feeds.clean.clean_article` sanitizes every article before it is stored or
published, so there is one sanitizer (nh3) with one allowlist. feedparser's own sanitizer
is therefore off, and so is its resolution of relative links, which runs its HTML parser
over every entry and costs more than the parse itself: links are made absolute here,
against xml:base and the feed URL, and only in the bodies that have a relative one.
"""

from __future__ import annotations

import calendar
import codecs
import hashlib
import html
import math
import mimetypes
import re
import time
import unicodedata
import xml.sax
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.sax.expatreader import ExpatParser

import feedparser
import feedparser.api

from feeds.clean import absolute_links, one_line, shorten, visible_line
from feeds.model import Article, Enclosure

FUTURE_SLACK = timedelta(days=1)  # clocks and time zones drift; a week ahead is a bug
# Nothing was syndicated before the web: earlier dates are placeholders (Hugo writes
# 0001-01-01 for undated pages, others a zero Unix time).
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
MAX_INFLATED_BYTES = 10_000_000  # a gzip body is inflated this far at most (fetch's default cap)
FALLBACK_TITLE_WORDS = 10
TITLE_MAX_CHARS = 300  # as for seeds: a longer "title" is a body in the wrong element
KEY_MAX_CHARS = 1000  # longer ids (whole bodies, seen in the wild) are kept as their hash
WEB_SCHEMES = ("http", "https")
HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")
NOT_A_FEED = "not an RSS or Atom feed"

# sy:updatePeriod in seconds (RSS 1.0 Syndication module; the period defaults to daily).
SY_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 30 * 86400,
              "yearly": 365 * 86400}

# Legacy code pages of RTL scripts feedparser never tries: when a feed lies about its
# encoding, feedparser falls back to windows-1252 and Arabic turns into Latin mojibake.
LEGACY_RTL_CHARSETS = (("windows-1256", "ARABIC"), ("windows-1255", "HEBREW"))
_FALLBACK_ENCODINGS = ("windows-1252", "iso-8859-2")
_WORD = re.compile(r"\w+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_DECLARED = re.compile(r"declared as (\S+?),")
_COMMENT = re.compile(rb"<!--.*?-->", re.S)
_ELEMENT = re.compile(rb"<([!?]?)([A-Za-z_][\w.:-]*)")


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What one feed document holds, and what was wrong with it, in readable sentences."""

    title: str | None
    link: str | None
    language: str | None  # as the feed declares it (may be wrong: detection happens in clean)
    articles: list[Article]
    bozo: str | None  # feedparser's complaint about the document, as one sentence
    update_hint: float | None  # seconds the feed asks between polls (ttl, sy:updatePeriod)
    version: str  # feedparser's version string: "rss20", "atom10"..., "" if not a feed
    problems: list[str]  # entries skipped or changed, one sentence each


class EntryProblem(ValueError):
    """Why one entry cannot become an Article."""


def parse_feed(body: bytes, url: str, source: str, *, content_type: str | None = None,
               now: datetime | None = None) -> ParsedFeed:
    """The feed in `body` (fetched from `url`) as Articles of `source`. Never raises on bad input.

    `now` is the first-seen time given to undated entries. A bozo document is still read
    when feedparser recovers entries from it; the reason goes into `bozo`.
    """
    now = _utc(now or datetime.now(UTC))
    try:
        parsed, bozo = _feedparser(body, url, content_type)
    except Exception as exc:  # feedparser promises not to raise; do not trust one feed with it
        reason = f"feedparser failed on this document ({type(exc).__name__}: {exc})"
        return ParsedFeed(None, None, None, [], reason, None, "", [reason])
    feed = parsed.get("feed") or {}
    version = parsed.get("version") or ""
    entries = parsed.get("entries") or []
    if not version and not entries:
        reason = not_a_feed_reason(body, content_type)
        return ParsedFeed(None, None, None, [], reason, None, "", [reason])
    if not version:  # CDF, or XML that merely has <item>s: read loosely, and say so
        loose = f"unrecognised feed format; {len(entries)} entries read from it loosely"
        bozo = f"{bozo}; {loose}" if bozo else loose
    language = (feed.get("language") or "").strip() or None
    articles, problems = _articles(entries, url, source, feed, language or "", now)
    return ParsedFeed(
        title=_visible(feed.get("title")) or None,
        link=_web_url(urljoin(url, feed["link"])) if isinstance(feed.get("link"), str) else None,
        language=language,
        articles=articles,
        bozo=bozo,
        update_hint=update_hint(feed),
        version=version,
        problems=problems,
    )


def _feedparser(body: bytes, url: str, content_type: str | None) -> tuple[Any, str | None]:
    """(feedparser's result, bozo sentence), with UTF-16 and lying legacy RTL encodings fixed."""
    body, charset = _as_utf8(_gunzipped(body))
    parsed = _run_feedparser(body, url, content_type, charset)
    exception = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if (isinstance(exception, feedparser.CharacterEncodingOverride)
            and parsed.get("encoding") in _FALLBACK_ENCODINGS):
        guessed = legacy_rtl_charset(body)
        if guessed:
            retry = _run_feedparser(body, url, content_type, guessed)
            declared = _DECLARED.search(str(exception))
            note = (f"wrong character encoding: the document is not "
                    f"{declared.group(1) if declared else 'what it declares'} but {guessed} "
                    f"({dict(LEGACY_RTL_CHARSETS)[guessed].title()} text); read as {guessed}")
            broken = retry.get("bozo_exception") if retry.get("bozo") else None
            if isinstance(broken, xml.sax.SAXParseException):  # else it names our charset
                note = f"{note}; {describe_bozo(broken)}"
            return retry, note
    return parsed, describe_bozo(exception)


def _run_feedparser(body: bytes, url: str, content_type: str | None, charset: str | None):
    media_type = content_type or "application/xml"  # bytes without a type: trust the prolog
    if charset:
        media_type = f"{media_type.split(';')[0].strip()}; charset={charset}"
    return feedparser.parse(body, response_headers={"content-type": media_type},
                            sanitize_html=False, resolve_relative_uris=False)


class BufferedExpatParser(ExpatParser):
    """Python's expat SAX parser with expat's text buffering on, for feedparser: character
    data then comes in one callback per run of text, not one per line and entity. An
    escaped HTML body is mostly entities, so this spares feedparser 10-18% of its time.
    feedparser joins the pieces, so its results are the same; a test holds them to the
    stock parser's over every file of the shared corpus."""

    def reset(self):
        super().reset()
        self._parser.buffer_text = True


def create_parser(*args, **kwargs) -> BufferedExpatParser:
    """This module as a SAX driver (`xml.sax.make_parser` imports it by name)."""
    return BufferedExpatParser(*args, **kwargs)


if __name__ not in feedparser.api.PREFERRED_XML_PARSERS:  # the driver feedparser tries first
    feedparser.api.PREFERRED_XML_PARSERS.insert(0, __name__)


def _gunzipped(body: bytes) -> bytes:
    """`body` inflated when it is gzip data the server did not label (a saved .xml.gz, say).

    Inflation stops at MAX_INFLATED_BYTES, so a gzip bomb costs no more than a big feed.
    """
    if not body.startswith(b"\x1f\x8b"):
        return body
    try:
        return zlib.decompressobj(wbits=31).decompress(body, MAX_INFLATED_BYTES)
    except zlib.error:
        return body


def _as_utf8(body: bytes) -> tuple[bytes, str | None]:
    """(body, charset to force): UTF-16/32 documents re-encoded as UTF-8, leading space cut.

    feedparser reads UTF-16 only when the document also declares it; without a declaration
    it tries UTF-8, which accepts the NUL bytes and yields nothing. Whitespace before the
    XML declaration makes the document ill-formed for no reason, so it goes too.
    """
    codec, head = None, body[:16]
    if body.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        codec = "utf-32"
    elif body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        codec = "utf-16"
    elif len(head) == 16 and all(head[0::2]) and not any(head[1::2]):  # ASCII as UTF-16LE
        codec = "utf-16-le"
    elif len(head) == 16 and all(head[1::2]) and not any(head[0::2]):
        codec = "utf-16-be"
    if codec:
        try:
            return body.decode(codec).encode("utf-8").lstrip(), "utf-8"
        except UnicodeDecodeError:
            return body, None
    if body.startswith(codecs.BOM_UTF8):
        return codecs.BOM_UTF8 + body[3:].lstrip(), None
    return body.lstrip(), None


def legacy_rtl_charset(body: bytes) -> str | None:
    """The legacy Arabic or Hebrew code page `body` is written in, or None.

    Asked only after feedparser fell back to windows-1252, i.e. the declared encoding
    failed. Every non-ASCII word, read in the candidate code page, must be wholly in that
    script: read as windows-1256, Latin-1 text gives words that mix Latin and Arabic
    letters ("Mنnner"), so it is never mistaken for Arabic.
    """
    for charset, script in LEGACY_RTL_CHARSETS:
        try:
            text = body.decode(charset)
        except UnicodeDecodeError:
            continue
        words = [word for word in _WORD.findall(text) if not word.isascii()]
        if not words:
            return None
        native = sum(1 for word in words if _in_script(word, script))
        if native >= 0.9 * len(words):
            return charset
    return None


def _in_script(word: str, script: str) -> bool:
    if _ASCII_LETTER.search(word):
        return False
    return all(c.isascii() or unicodedata.name(c, "").startswith(script) for c in word)


def describe_bozo(exception: BaseException | None) -> str | None:
    """feedparser's bozo exception as one sentence a user can act on, or None."""
    if exception is None:
        return None
    if isinstance(exception, xml.sax.SAXParseException):
        return (f"not well-formed XML (line {exception.getLineNumber()}, column "
                f"{exception.getColumnNumber()}: {exception.getMessage()}); "
                "read what could be recovered")
    if isinstance(exception, feedparser.CharacterEncodingOverride):
        return f"wrong character encoding: {exception}"
    if isinstance(exception, feedparser.CharacterEncodingUnknown):
        return f"unknown character encoding: {exception}"
    if isinstance(exception, feedparser.NonXMLContentType):
        return f"served with a non-XML content type: {exception}"
    return f"{type(exception).__name__}: {exception}"


def not_a_feed_reason(body: bytes, content_type: str | None = None) -> str:
    """Why a document with no feed version and no entries is not a feed, and what to do."""
    head = _COMMENT.sub(b"", _as_utf8(_gunzipped(body))[0][:4096]).lower()
    if not head.strip():
        return f"empty document: {NOT_A_FEED}; check the URL"
    if b"<html" in head or b"<!doctype html" in head or "html" in (content_type or ""):
        return f"{NOT_A_FEED} (looks like HTML); check the URL"
    if head.startswith((b"{", b"[")):
        return f"{NOT_A_FEED} (looks like JSON, which Nashra does not read); check the URL"
    root = next((m.group(2) for m in _ELEMENT.finditer(head) if not m.group(1)), None)
    if root:
        return f"{NOT_A_FEED} (an XML document whose root is <{root.decode()}>); check the URL"
    return f"{NOT_A_FEED}; check the URL"


def update_hint(feed: Mapping[str, Any]) -> float | None:
    """Seconds the feed asks readers to wait between polls, or None when it says nothing.

    RSS <ttl> is minutes; sy:updatePeriod/sy:updateFrequency means "updated `frequency`
    times per period". When both are given the longer wins: each only says "no need to
    come back sooner".
    """
    hints = []
    ttl = _number(feed.get("ttl"))
    if ttl and ttl > 0:
        hints.append(ttl * 60)
    period_name = str(feed.get("sy_updateperiod") or "").strip().lower()
    frequency = _number(feed.get("sy_updatefrequency"))
    if period_name or frequency:
        period = SY_PERIODS.get(period_name or "daily")
        if period and (frequency is None or frequency > 0):
            hints.append(period / (frequency or 1))
    return max(hints) if hints else None


def _number(value: Any) -> float | None:
    """`value` as a finite number, or None."""
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- entries ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    url: str
    source: str
    language: str
    author: str | None
    now: datetime


def _articles(entries: Iterable[Any], url: str, source: str, feed: Mapping[str, Any],
              language: str, now: datetime) -> tuple[list[Article], list[str]]:
    """The entries as Articles, and a sentence for each one skipped or changed.

    Duplicate keys: the first entry with a key wins and later ones are skipped, as
    lemon24/reader does (docs/dev.rst, "Duplicate entries"; issue #335) and as Miniflux
    does (it stores the first entry with a hash and leaves later ones alone). Telling
    duplicates apart by link was rejected: which one got the plain key would depend on the
    feed's order, so keys would flip between fetches.
    """
    context = _Context(url, source, language, _author(feed), now)
    articles: list[Article] = []
    problems: list[str] = []
    first_with_key: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        try:
            article, notes = _entry_article(entry, context)
        except EntryProblem as exc:
            problems.append(f"entry {number} skipped: {exc}")
            continue
        except Exception as exc:  # one odd entry never costs the rest of the feed
            problems.append(f"entry {number} skipped: unreadable ({type(exc).__name__}: {exc})")
            continue
        if article.key in first_with_key:
            problems.append(f"entry {number} skipped: same id as entry "
                            f"{first_with_key[article.key]} ({article.key}); the first is kept")
            continue
        first_with_key[article.key] = number
        articles.append(article)
        problems.extend(f"entry {number}: {note}" for note in notes)
    return articles, problems


def _entry_article(entry: Mapping[str, Any], context: _Context) -> tuple[Article, list[str]]:
    """(Article, notes on what was changed) for one feedparser entry; EntryProblem if none."""
    base = urljoin(context.url, _base(entry, context.url))
    content, summary = (absolute_links(html, base) for html in _body(entry))
    title = _visible(entry.get("title")) or _first_words(summary or content)
    if not title:
        raise EntryProblem("no title and no text to make one from")
    key = entry_key(entry)
    if not key:
        raise EntryProblem("no id, link or text to identify it by")
    link = entry.get("link")
    url = _web_url(urljoin(base, link.strip())) if isinstance(link, str) else None
    notes = []
    if link and not url:
        notes.append(f"link {link!r} dropped: only http and https links are kept")
    source_published = _date(entry, "published_parsed")
    source_updated = _date(entry, "updated_parsed")
    published, updated, estimated, date_notes = _dates(source_published, source_updated,
                                                       context.now)
    return Article(
        source=context.source,
        key=key,
        title=shorten(title, TITLE_MAX_CHARS),
        content_html=content,
        summary=summary,
        language=_language(entry, context.language),
        published=published,
        updated=updated,
        url=url,
        author=_author(entry) or context.author,
        content_hash=content_hash(title, url, content, summary, source_published,
                                  source_updated),
        categories=_categories(entry),
        enclosures=_enclosures(entry, base),
        date_estimated=estimated,
    ), notes + date_notes


def entry_key(entry: Mapping[str, Any]) -> str | None:
    """The entry's guid/id, else its link, else a hash of its title and summary.

    The same for the same entry at every fetch; what Miniflux and lemon24/reader use.
    """
    for value in (entry.get("id"), entry.get("link")):
        if isinstance(value, str) and value.strip():
            value = value.strip()
            return value if len(value) <= KEY_MAX_CHARS else _hashed(value)
    text = f"{entry.get('title') or ''}\x00{entry.get('summary') or ''}"
    return _hashed(text) if text.strip("\x00").strip() else None


def _hashed(text: str) -> str:
    return "blake2b:" + hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def content_hash(title: str, url: str | None, content: str, summary: str,
                 published: datetime | None, updated: datetime | None) -> str:
    """A fingerprint that changes when the publisher edits the entry.

    Only the feed's own dates count: a first-seen time would change it at every fetch.
    """
    parts = [title, url or "", content, summary,
             published.isoformat() if published else "", updated.isoformat() if updated else ""]
    return hashlib.blake2b("\x00".join(parts).encode("utf-8"), digest_size=16).hexdigest()


def _body(entry: Mapping[str, Any]) -> tuple[str, str]:
    """(content_html, summary), both raw HTML; the summary is "" when it is the content."""
    contents = [c for c in entry.get("content") or () if c.get("value") and _is_text(c)]
    html_contents = [c for c in contents if _is_html(c.get("type"))]
    chosen = max(html_contents or contents, key=lambda c: len(c["value"]), default=None)
    summary = entry.get("summary") or ""
    # feedparser copies an Atom entry's content into a missing summary, without a detail.
    summary_type = (entry.get("summary_detail") or {}).get("type") or "text/html"
    if chosen is None:
        return _as_html(summary, summary_type), ""
    content = _as_html(chosen["value"], chosen.get("type"))
    if summary == chosen["value"]:
        return content, ""
    return content, _as_html(summary, summary_type)


def _is_html(media_type: str | None) -> bool:
    return (media_type or "").lower() in HTML_TYPES


def _is_text(detail: Mapping[str, Any]) -> bool:
    media_type = (detail.get("type") or "text/plain").lower()
    return _is_html(media_type) or media_type.startswith("text") or media_type.endswith("+xml")


def _as_html(value: str, media_type: str | None) -> str:
    """`value` as HTML: plain text escaped, its blank-line paragraphs as <p>."""
    if not value or _is_html(media_type):
        return value
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", value) if p.strip()]
    return "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)


def _visible(text: Any) -> str:
    """A title or name as one line of plain text: tags (and script bodies) gone, entities read.

    Every title is treated so, whatever type the feed gives it: RSS has no way to say, and
    feedparser calls a title with a <script> in it plain text. clean_article strips titles
    the same way once more, so stripping repeats until nothing changes: text that only
    looks like a tag once its entities are read ("&lt;br /&gt;") would vanish there, and
    an entry whose title would come out empty must get a fallback title here.
    """
    if not isinstance(text, str):
        return ""
    for _ in range(8):  # each pass reads one level of entities; deeper nesting is absurd
        stripped = visible_line(text)
        if stripped == text:
            break
        text = stripped
    return text


def _first_words(content_html: str) -> str:
    words = _visible(content_html).split()
    title = " ".join(words[:FALLBACK_TITLE_WORDS])
    return title + "…" if len(words) > FALLBACK_TITLE_WORDS else title


def _date(entry: Mapping[str, Any], key: str) -> datetime | None:
    """The entry's date `key` (a struct_time in UTC), or None when absent or a placeholder."""
    # `key in entry`: FeedParserDict.get("updated_parsed") falls back to published.
    value = entry[key] if key in entry else None  # noqa: SIM401
    if not isinstance(value, time.struct_time | tuple):
        return None
    try:
        moment = datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return moment if moment >= EARLIEST else None


def _dates(published: datetime | None, updated: datetime | None,
           now: datetime) -> tuple[datetime, datetime, bool, list[str]]:
    """(published, updated, estimated, notes) with the feed's dates made safe to sort by.

    No date at all: published is `now` (first seen) and the date is marked estimated. A
    date more than FUTURE_SLACK ahead of `now` is the publisher's clock or time zone gone
    wrong; it would pin the entry to the top of every feed, so it becomes `now`, estimated,
    and a note says so.
    """
    if published is None and updated is None:
        return now, now, True, []
    published = published or updated
    updated = updated or published
    notes, estimated, limit = [], False, now + FUTURE_SLACK
    if published > limit:
        notes.append(f"published date {published.isoformat()} is in the future; "
                     "the time it was first seen is used")
        published, estimated = now, True
    if updated > limit:
        updated = now
    return published, max(updated, published), estimated, notes


def _language(entry: Mapping[str, Any], feed_language: str) -> str:
    """The entry's own language (dc:language, xml:lang), else the feed's, else ""."""
    candidates = [entry.get("language")]
    candidates += [c.get("language") for c in entry.get("content") or ()]
    candidates += [(entry.get(k) or {}).get("language") for k in ("title_detail", "summary_detail")]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return feed_language


def _author(thing: Mapping[str, Any]) -> str | None:
    """The author's name as plain text (the address too, if that is all there is)."""
    detail = thing.get("author_detail") or {}
    name = detail.get("name") or thing.get("author") or ""
    return _visible(name) or None


def _categories(entry: Mapping[str, Any]) -> tuple[str, ...]:
    tags = entry.get("tags") or ()
    labels = (one_line(tag.get("label") or tag.get("term") or "") for tag in tags)
    return tuple(dict.fromkeys(label for label in labels if label))


def _base(entry: Mapping[str, Any], url: str) -> str:
    """The xml:base in force for the entry (feedparser keeps it on each text detail)."""
    for key in ("title_detail", "summary_detail"):
        base = (entry.get(key) or {}).get("base")
        if base:
            return base
    return url


def _enclosures(entry: Mapping[str, Any], base: str) -> tuple[Enclosure, ...]:
    """Enclosures, then media:content images and media:thumbnails, once per URL.

    feedparser leaves enclosure URLs unresolved, so they are resolved against the entry's
    base here; only http(s) URLs are kept.
    """
    found: dict[str, Enclosure] = {}

    def add(href: Any, media_type: Any, length: Any) -> None:
        url = _web_url(urljoin(base, href.strip())) if isinstance(href, str) else None
        if url and url not in found:
            found[url] = Enclosure(url, _media_type(media_type, url), _length(length))

    for enclosure in entry.get("enclosures") or ():
        add(enclosure.get("href") or enclosure.get("url"), enclosure.get("type"),
            enclosure.get("length"))
    for media in entry.get("media_content") or ():
        media_type = str(media.get("type") or "")
        if media.get("medium") == "image" or media_type.startswith("image/"):
            add(media.get("url"), media_type, media.get("filesize") or media.get("fileSize"))
    for thumbnail in entry.get("media_thumbnail") or ():
        add(thumbnail.get("url"), None, None)
    return tuple(found.values())


def _media_type(value: Any, url: str) -> str:
    media_type = str(value or "").strip().lower()
    if re.fullmatch(r"[\w.+-]+/[\w.+-]+", media_type):
        return media_type
    return mimetypes.guess_type(urlsplit(url).path)[0] or "application/octet-stream"


def _length(value: Any) -> int:
    number = _number(value)
    return int(number) if number and 0 < number < 2**63 else 0


def _web_url(url: Any) -> str | None:
    """`url` when it is an absolute http(s) URL; javascript:, data: and the like are not."""
    if not isinstance(url, str) or not url.strip():
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in WEB_SCHEMES and parts.netloc else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
