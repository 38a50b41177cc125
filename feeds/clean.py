"""Cleaning: HTML sanitizing (nh3) and site-chrome removal at the edges of scraped text."""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parseaddr
from functools import lru_cache
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import lxml.html
import nh3
from lxml import etree
from requests.utils import requote_uri

from feeds.model import Article
from feeds.text import (
    canonical_language,
    detect_language,
    direction,
    fold,
    written_direction,
    xml_safe,
)

# What survives sanitizing: structure, links, images, and the direction/language markup
# RTL text depends on. Scripts, styles, event handlers, forms and iframes never do.
ALLOWED_TAGS = {
    "p", "br", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li", "a", "img",
    "figure", "figcaption", "strong", "em", "b", "i", "u", "s", "sub", "sup", "code", "pre",
    "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "span", "div", "hr",
    "q", "cite", "abbr", "time", "small", "mark", "bdi", "dl", "dt", "dd",
}
ALLOWED_ATTRIBUTES = {
    "*": {"dir", "lang", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "time": {"datetime"},
}
URL_SCHEMES = {"http", "https", "mailto"}

CHROME_MAX_CHARS = 200  # a longer line is a paragraph, whatever it contains
SUMMARY_MAX_CHARS = 280
_TAG = re.compile(r"<[^>]+>")


def clean_article(article: Article, default_language: str = "und") -> Article:
    """`article` made safe to publish: XML-safe NFC text, sanitized HTML, a language, a summary.

    Every source goes through here, so no stage after it sees untrusted markup.
    """
    content = sanitize_html(xml_safe(article.content_html))
    text = plain_text(content)
    title = visible_line(xml_safe(article.title))
    language = choose_language(article.language, f"{title}\n{text}", default_language)
    summary = xml_safe(plain_text(article.summary)) if article.summary else text
    return replace(
        article,
        title=title,
        content_html=content,
        summary=shorten(one_line(summary), SUMMARY_MAX_CHARS),
        language=canonical_language(language),
        url=clean_url(xml_safe(article.url)) if article.url else None,
        author=author_name(xml_safe(article.author)) if article.author else None,
        published=article.published.replace(microsecond=0),
        updated=article.updated.replace(microsecond=0),
    )


@dataclass(frozen=True)
class Extracted:
    """The main text of a web page and what its metadata says about it."""

    title: str | None
    content_html: str
    published: datetime | None
    author: str | None
    url: str | None


def extract_article(page: bytes | str, url: str | None = None) -> Extracted | None:
    """The article in a web page, without menus, ads and comments (trafilatura), or None.

    Used for HTML seeds and for the full-text mode of sources whose feeds carry only
    summaries. The HTML output keeps zero-width non-joiners, which Persian needs.
    """
    # trafilatura takes 0.4 s to import: only pay for it when a page is extracted.
    import trafilatura
    from trafilatura.metadata import extract_metadata
    from trafilatura.utils import load_html

    tree = load_html(page)
    if tree is None:
        return None
    metadata = extract_metadata(tree, default_url=url)
    content = trafilatura.extract(tree, url=url, output_format="html", include_images=True,
                                  include_links=True, favor_precision=True)
    if not content:
        return None
    published = None
    if metadata.date:
        with suppress(ValueError):
            published = datetime.fromisoformat(metadata.date).replace(tzinfo=UTC)
    return Extracted(metadata.title, content, published, metadata.author, metadata.url or url)


def choose_language(declared: str, text: str, default: str) -> str:
    """The declared language unless the text contradicts its direction.

    Feeds often declare `en` on Arabic or Persian text; detection wins then. When both
    agree on direction the publisher's finer choice (ar vs fa, say) is kept, so the
    language model (~300 µs) runs only when the letters disagree or nothing is declared.
    """
    if declared and written_direction(text) in (None, direction(declared)):
        return declared
    detected = detect_language(text, "")
    if detected and (not declared or direction(detected) != direction(declared)):
        return detected
    return declared or default


def one_line(text: str) -> str:
    return " ".join(text.split())


# What nh3 (html5ever) or entity decoding could change in text: tags, entities, controls,
# carriage returns, lone surrogates and a byte order mark. Text without any is left as is.
_MARKUP = re.compile("[<&\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\r\ud800-\udfff\ufeff]")


def visible_line(text: str) -> str:
    """`text` with tags (and script bodies) dropped and entities read once, as one line."""
    if not _MARKUP.search(text):  # most titles: nh3 and unescaping would change nothing
        return one_line(text)
    return one_line(plain_text(nh3.clean(text, tags=set())))


def author_name(author: str) -> str | None:
    """The name in "Name <mail@example.org>"; addresses are not published."""
    name, address = parseaddr(author)
    if address and "@" in address:
        return one_line(name) or None
    return one_line(author) or None


def clean_url(url: str) -> str | None:
    """An http(s) IRI as an ASCII URI (IDNA host, percent-encoded path), or None."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None  # javascript:, data:, relative leftovers: nothing a reader should follow
    host = parts.hostname or ""
    if not host.isascii():
        netloc = parts.netloc.replace(host, host.encode("idna").decode("ascii"))
        parts = parts._replace(netloc=netloc)
    return requote_uri(urlunsplit(parts))


@lru_cache(maxsize=64)  # clean and tagging both ask for the text of the same body
def plain_text(content_html: str) -> str:
    """The text of an HTML fragment, tags dropped and entities decoded."""
    return html.unescape(_TAG.sub(" ", content_html))


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ،,.;:؛") + "…"


def sanitize_html(fragment: str) -> str:
    """`fragment` with everything outside the allowlist removed (nh3, i.e. Ammonia), as XHTML.

    Serializing as XML once here, at ingest, lets every publish wrap the stored body as it
    is: Atom type="xhtml" needs well-formed markup, and HTML's <br> is not.
    """
    cleaned = nh3.clean(fragment, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                        url_schemes=URL_SCHEMES, link_rel="noopener noreferrer")
    return to_xhtml(cleaned)


def to_xhtml(fragment: str) -> str:
    """An HTML fragment re-serialized as well-formed XHTML (lxml), entities resolved."""
    if not fragment.strip():
        return ""
    return _inner(lxml.html.fragment_fromstring(fragment, create_parent="div"), "xml")


def _inner(root, method: str) -> str:
    """What is inside `root` (its lead text and children, tails included), serialized."""
    lead = html.escape(root.text or "", quote=False)
    return lead + "".join(etree.tostring(child, method=method, encoding="unicode")
                          for child in root)


# An href or src whose value has no scheme (relative, root-relative or protocol-relative).
_RELATIVE_REF = re.compile(r"""\b(?:href|src)\s*=\s*(?!["']?(?:[a-z][a-z0-9+.\-]*:|#))""", re.I)


def absolute_links(fragment: str, base: str) -> str:
    """`fragment` with relative href/src made absolute against `base` (lxml).

    Most entries have no relative link, and a regex says so without parsing them.
    """
    if not base or not _RELATIVE_REF.search(fragment):
        return fragment
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    root.make_links_absolute(base, resolve_base_href=False, handle_failures="discard")
    return _inner(root, "html")


_COMBINING = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in range(0x300, 0x10000) if unicodedata.combining(chr(c)))
    + "]"
)


@lru_cache(maxsize=8192)
def chrome_key(line: str) -> str:
    """The form lines are compared in: folded, unaccented, punctuation as single spaces."""
    letters = _COMBINING.sub("", unicodedata.normalize("NFKD", fold(line)))
    return " ".join(re.sub(r"[\W_]+", " ", letters).split())


@lru_cache(maxsize=1)
def _chrome_rules() -> tuple[frozenset[str], re.Pattern[str]]:
    text = resources.files("feeds").joinpath("data/boilerplate.txt").read_text("utf-8")
    phrases, patterns = set(), []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("re:"):
            patterns.append(line[3:])
        else:
            phrases.add(chrome_key(line))
    return frozenset(phrases), re.compile("|".join(f"(?:{p})" for p in patterns))


def is_chrome(line: str, site_lines: frozenset[str] = frozenset()) -> bool:
    """True when `line` is site chrome: a listed phrase or a line the site repeats."""
    if len(line) > CHROME_MAX_CHARS:
        return False
    key = chrome_key(line)
    phrases, pattern = _chrome_rules()
    return key in phrases or key in site_lines or bool(pattern.fullmatch(key))


def strip_chrome(lines: Sequence[str], site_lines: frozenset[str] = frozenset()) -> list[str]:
    """`lines` without the chrome lines at its start and end; blank lines are kept as given.

    Only the edges are trimmed, and trimming stops at the first real line, so a paragraph
    that merely mentions "read more" in the body always stays.
    """
    start, end = 0, len(lines)
    while start < end and (not lines[start].strip() or is_chrome(lines[start], site_lines)):
        start += 1
    while end > start and (not lines[end - 1].strip() or is_chrome(lines[end - 1], site_lines)):
        end -= 1
    return list(lines[start:end])


def repeated_edge_lines(
    documents: Iterable[Sequence[str]], edge: int = 8, min_documents: int = 3, share: float = 0.3
) -> frozenset[str]:
    """Keys of short lines found near the edges of many documents of one site.

    A line among the first or last `edge` non-blank lines of at least `min_documents`
    documents and of `share` of them all is that site's chrome (menus, footers, bylines).
    """
    counts: Counter[str] = Counter()
    total = 0
    for lines in documents:
        total += 1
        text_lines = [line for line in lines if line.strip()]
        edges = text_lines[:edge] + text_lines[-edge:]
        counts.update({chrome_key(line) for line in edges if len(line) <= CHROME_MAX_CHARS})
    needed = max(min_documents, share * total)
    return frozenset(key for key, n in counts.items() if key and n >= needed)
