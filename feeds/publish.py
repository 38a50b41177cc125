"""Stored articles -> feed bytes: RSS 2.0, Atom 1.0 (feedgen) and JSON Feed 1.1 per topic,
their archive pages and browser stylesheets, OPML, index page.

Direction travels in the text and markup, not in the feed's language alone: bodies are
wrapped in a block with `dir` and `lang`, and RTL labels get U+200F when they open with a
left-to-right or neutral character (see feeds.text.rtl_label).
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import statistics
import string
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from feeds import __version__
from feeds.config import Settings
from feeds.model import Article, Credit, Document, Enclosure, Source, Topic
from feeds.tagging import entity_labels
from feeds.text import direction, first_strong, label_for

MEDIA_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "opml": "text/x-opml; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
    "xsl": "text/xsl; charset=utf-8",
}
FEED_KINDS = ("rss", "atom", "json")
FORMAT_NAMES = {"rss": "RSS 2.0", "atom": "Atom 1.0", "json": "JSON Feed 1.1"}
INDEX_PATH, OPML_PATH = "index.html", "topics.opml"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
DC_NS = "http://purl.org/dc/elements/1.1/"
ATOM_NS = "http://www.w3.org/2005/Atom"
FH_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005
IMMUTABLE_AGE = 31_536_000  # a year: the max-age of a full archive page
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
BUILD_VERSION = "6"  # bump when the output format changes, so every feed is rebuilt


def feed_folder(slug: str) -> str:
    """Where a feed lives: "tags" for an entity tag ("org:isis"), "topics" for a topic
    (topic slugs have no colon)."""
    return "tags" if ":" in slug else "topics"


def feed_path(slug: str, kind: str) -> str:
    return f"{feed_folder(slug)}/{slug}.{kind}"


def home_page(base_url: str, slug: str) -> str:
    """The page a feed is the feed of: its topic's entry on the index page; for an entity,
    the index itself, which lists topics only (entities are many, and their feeds are
    built when first asked for)."""
    return f"{base_url}/#{slug}" if feed_folder(slug) == "topics" else f"{base_url}/"


def stylesheet_path(language: str) -> str:
    return f"style/{language}.xsl"


def archive_path(slug: str, page: int) -> str:
    return f"topics/{slug}/archive/{page}.atom"


@dataclass(frozen=True)
class Syndication:
    """How a topic is shaped for one partner: summaries only, tagged article links.

    `prefix` is where the feed is served ("partner/" for the header-authenticated URL),
    so its self link never holds a token.
    """

    summary_only: bool = False
    link_params: tuple[tuple[str, str], ...] = ()
    prefix: str = ""


FULL = Syndication()


def tagged_link(url: str | None, params: tuple[tuple[str, str], ...]) -> str | None:
    """`url` with `params` added to its query; parameters it already has are kept."""
    if not url or not params:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {key for key, _ in query}
    query += [(key, value) for key, value in params if key not in present]
    return urlunsplit(parts._replace(query=urlencode(query)))


class _FeedExtension(BaseExtension):
    """What the feed root needs beyond feedgen:

    - dc: declared, for the per-item dc:language and dc:creator;
    - the browser view's <?xml-stylesheet?> before the root (feed readers ignore it);
    - links with the rels feedgen refuses: WebSub's hub, RFC 5005's prev-archive,
      next-archive and current (in RSS as atom:link);
    - RFC 5005's <fh:archive/> on an archive page.
    """

    def __init__(self) -> None:
        self.stylesheet: str | None = None
        self.links: dict[str, str] = {}  # rel -> href
        self.archive = False

    def extend_ns(self) -> dict[str, str]:
        return {"dc": DC_NS, "fh": FH_NS} if self.archive else {"dc": DC_NS}

    def _with_stylesheet(self, root):
        root.addprevious(etree.ProcessingInstruction(
            "xml-stylesheet", f'type="text/xsl" href="{html.escape(self.stylesheet)}"'))
        return root

    def extend_atom(self, feed):
        for rel, href in self.links.items():
            etree.SubElement(feed, "link", rel=rel, href=href)
        if self.archive:
            etree.SubElement(feed, f"{{{FH_NS}}}archive")
        return self._with_stylesheet(feed)

    def extend_rss(self, feed):
        for rel, href in self.links.items():
            etree.SubElement(feed.find("channel"), f"{{{ATOM_NS}}}link", rel=rel, href=href)
        return self._with_stylesheet(feed)


class EntryExtras(BaseEntryExtension):
    """What feedgen 1.0 cannot say by itself, added through its extension API.

    - the entry's own language when it differs from the feed's (Atom xml:lang, RSS
      dc:language), never on the channel;
    - Atom links with rel, type and hreflang (feedgen drops them: its issue #135), and the
      RSS item <link>, so no link goes through FeedEntry.link();
    - the RSS author as dc:creator, since RSS <author> must be an e-mail address;
    - enclosures: every one as an Atom rel="enclosure" link, the first as the RSS
      <enclosure> (RSS allows one);
    - the origin's feed in an entry's Atom <source>: rel="self" on its link, its URL as id
      (the only id we know of it) and the entry's own updated time.
    """

    def __init__(self) -> None:
        self.language: str | None = None
        self.url: str | None = None
        self.link_language: str | None = None
        self.creator: str | None = None
        self.enclosures: tuple[Enclosure, ...] = ()
        self.source_updated: datetime | None = None

    def extend_atom(self, entry):
        for source in entry.iterfind("source"):
            self._complete_source(source)
        if self.language:
            entry.set(XML_LANG, self.language)
        if self.url:
            etree.SubElement(entry, "link", rel="alternate", type="text/html",
                             hreflang=self.link_language, href=self.url)
        for enclosure in self.enclosures:
            link = etree.SubElement(entry, "link", rel="enclosure", href=enclosure.url,
                                    type=enclosure.media_type)
            if enclosure.length > 0:
                link.set("length", str(enclosure.length))
        return entry

    def _complete_source(self, source) -> None:
        """feedgen's Atom <source> has a title and a link: the feed's id and date too."""
        link = source.find("link")
        link.set("rel", "self")
        etree.SubElement(source, "id").text = link.get("href")
        etree.SubElement(source, "updated").text = self.source_updated.isoformat()

    def extend_rss(self, item):
        if self.url:
            etree.SubElement(item, "link").text = self.url
        if self.enclosures:
            first = self.enclosures[0]
            etree.SubElement(item, "enclosure", url=first.url, length=str(first.length),
                             type=first.media_type)
        if self.creator:
            etree.SubElement(item, f"{{{DC_NS}}}creator").text = self.creator
        if self.language:
            etree.SubElement(item, f"{{{DC_NS}}}language").text = self.language
        return item


def directed_xhtml(fragment: str, language: str) -> str:
    """A stored body (already XHTML, see feeds.clean.sanitize_html) inside <div dir lang>.

    The same string serves Atom type="xhtml" (inside feedgen's required wrapper div) and
    RSS, where it is escaped HTML; `dir` is an attribute because readers strip `style`.
    """
    return f'<div dir="{direction(language)}" lang="{language}">{fragment}</div>'


def _paragraph(text: str) -> str:
    return f"<p>{html.escape(text, quote=False)}</p>"


# "Also reported by", in the entry's language (English when it has none here).
REPORTED_BY = {
    "ar": ("نشرته أيضًا", "، ", "و{} غيرها"),
    "fa": ("همچنین در", "، ", "و {} رسانهٔ دیگر"),
    "ur": ("یہ خبر ان میں بھی", "، ", "اور {} مزید"),
    "he": ("דווח גם ב", ", ", "ועוד {}"),
    "fr": ("Également publié par", ", ", "et {} autres"),
    "en": ("Also reported by", ", ", "and {} more"),
}
MAX_CREDITS = 8


def credits_html(credits: Sequence[Credit], language: str) -> str:
    """Other outlets (`Article.other_outlets`) as one paragraph of links.

    Each name carries its own `dir`, so a Latin outlet name keeps its order inside an
    Arabic sentence (and the reverse).
    """
    words, separator, more = REPORTED_BY.get(language.split("-")[0], REPORTED_BY["en"])
    links = [_credit_link(c) for c in credits[:MAX_CREDITS]]
    if len(credits) > MAX_CREDITS:
        links.append(html.escape(more.format(len(credits) - MAX_CREDITS)))
    return f'<p class="nashra-also">{html.escape(words)}: {separator.join(links)}</p>'


def _credit_link(credit: Credit) -> str:
    name = html.escape(credit.name)
    side = first_strong(credit.name) or "ltr"
    if not credit.url:
        return f'<span dir="{side}">{name}</span>'
    return f'<a href="{html.escape(credit.url)}" dir="{side}">{name}</a>'


def fingerprint(*parts: object) -> str:
    data = json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


MIN_MAX_AGE, MAX_MAX_AGE = 60, 3600
RECENT_GAPS = 10


def max_age(articles: Sequence[Article]) -> int:
    """How long a topic feed may be cached: a tenth of the usual gap between its newest
    items, within 1 min .. 1 h, so busy topics stay fresh and quiet ones cost few requests.
    """
    times = sorted((a.published for a in articles), reverse=True)[:RECENT_GAPS + 1]
    if len(times) < 2:
        return MAX_MAX_AGE
    gap = statistics.median((a - b).total_seconds() for a, b in pairwise(times))
    return int(min(MAX_MAX_AGE, max(MIN_MAX_AGE, gap / 10)))


def topic_fingerprint(settings: Settings, topic: Topic, articles: Sequence[Article]) -> str:
    """What a topic's feeds are built from: when it is unchanged, so are their bytes. The
    labels of the entries' categories are in it, so a topic title or gazetteer name edited
    rebuilds the feeds that show it."""
    categories = category_labels(settings, topic.language)
    return fingerprint(
        BUILD_VERSION, settings.base_url, settings.site_titles, settings.language,
        settings.websub_hub, [topic.slug, topic.language, topic.titles, topic.descriptions],
        [[a.id, a.updated, a.content_hash, a.topics, _credits(a.origin, *a.reported_by)]
         for a in articles],
        {tag: categories[tag] for a in articles for tag in a.topics if tag in categories},
    )


def _credits(*credits: Credit | None) -> list:
    return [[c.name, c.feed_url, c.url] for c in credits if c is not None]


def build_topic(
    settings: Settings, topic: Topic, articles: Sequence[Article], empty_updated: datetime,
    built_from: str | None = None, syndication: Syndication = FULL,
    archive: str | None = None, entries: Entries | None = None,
) -> list[Document]:
    """The RSS, Atom and JSON documents of `topic`, newest first; same inputs, same bytes.

    `built_from` is `topic_fingerprint` of the same inputs, when the caller has it already;
    a partner's `syndication` is part of it. `archive` is the newest archive page's URL.
    `entries` are the build's, shared with the other feeds it writes.
    """
    updated = max((a.updated for a in articles), default=empty_updated)
    generator = _feed_generator(settings, topic, updated)
    if syndication == FULL:  # partner feeds are private: no hub can fetch them
        links = {"hub": settings.websub_hub, "prev-archive": archive}
        generator.nashra.links = {rel: href for rel, href in links.items() if href}
    entries = entries or Entries()
    entries.add(generator, settings, topic, articles, syndication)
    built_from = built_from or topic_fingerprint(settings, topic, articles)
    if syndication != FULL:
        built_from = fingerprint(built_from, syndication)
    bodies = {}
    for kind in ("rss", "atom"):
        _set_links(generator, settings, topic, syndication.prefix + feed_path(topic.slug, kind),
                   kind)
        bodies[kind] = (generator.rss_str(pretty=True) if kind == "rss"
                        else generator.atom_str(pretty=True))
    bodies["json"] = json_feed(settings, topic, entries.json_items(articles, syndication),
                               syndication)
    return [Document(syndication.prefix + feed_path(topic.slug, kind), MEDIA_TYPES[kind], body,
                     etag(body), updated, built_from, max_age(articles))
            for kind, body in bodies.items()]


def _feed_generator(settings: Settings, topic: Topic, updated: datetime) -> FeedGenerator:
    language = topic.language
    generator = FeedGenerator()
    generator.register_extension("nashra", _FeedExtension, EntryExtras)
    generator.nashra.stylesheet = f"{settings.base_url}/{stylesheet_path(language)}"
    generator.id(f"{settings.base_url}/{feed_folder(topic.slug)}/{topic.slug}")
    generator.title(label_for(f"{topic.title} - {settings.site_title}", language))
    generator.subtitle(label_for(topic.description, language))
    generator.language(language)
    generator.author({"name": label_for(settings.site_title, settings.language)})
    generator.generator("Nashra", version=__version__)
    generator.updated(updated)
    generator.lastBuildDate(updated)
    return generator


def _set_links(generator: FeedGenerator, settings: Settings, topic: Topic, path: str,
               kind: str) -> None:
    # feedgen takes the RSS channel <link> from the last link() call, so alternate goes last.
    generator.link(href=f"{settings.base_url}/{path}", rel="self",
                   type=MEDIA_TYPES[kind].split(";")[0], replace=True)
    generator.link(href=home_page(settings.base_url, topic.slug), rel="alternate",
                   type="text/html")


class SharedEntry(FeedEntry):
    """An entry that several feeds of one build show (an article in three topics, or in a
    topic feed and an archive page): feedgen writes its RSS item and Atom entry once, and
    every later feed gets a copy, since lxml moves an element it appends. Writing an entry
    costs 6x what copying it does."""

    def __init__(self) -> None:
        super().__init__()
        self._written: dict[tuple[str, bool], etree._Element] = {}

    def atom_entry(self, extensions: bool = True) -> etree._Element:
        return self._shared("atom", super().atom_entry, extensions)

    def rss_entry(self, extensions: bool = True) -> etree._Element:
        return self._shared("rss", super().rss_entry, extensions)

    def _shared(self, kind: str, write, extensions: bool) -> etree._Element:
        written = self._written.get((kind, extensions))
        if written is None:
            written = self._written[kind, extensions] = write(extensions)
            return written
        return copy.deepcopy(written)


class Entries:
    """The entries of one build, each made once: by article, feed language and shape."""

    def __init__(self) -> None:
        self._made: dict[tuple[Article, str, Syndication], SharedEntry] = {}
        self._items: dict[tuple[Article, Syndication], dict] = {}  # JSON Feed's

    def add(self, generator: FeedGenerator, settings: Settings, topic: Topic,
            articles: Sequence[Article], syndication: Syndication) -> None:
        categories = None  # labels of every tag in the topic's language, when first needed
        for article in articles:
            key = (article, topic.language, syndication)
            entry = self._made.get(key)
            if entry is None:
                categories = categories or category_labels(settings, topic.language)
                entry = self._made[key] = _entry(settings.base_url, categories, topic, article,
                                                 syndication)
            generator.add_entry(entry, order="append")  # its extension is registered already

    def json_items(self, articles: Sequence[Article], syndication: Syndication) -> list[dict]:
        items = self._items
        for article in articles:
            if (article, syndication) not in items:
                items[article, syndication] = _json_item(article, syndication)
        return [items[article, syndication] for article in articles]


def category_labels(settings: Settings, language: str) -> dict[str, str]:
    """tag -> its label in `language`: every topic, and every entity of the gazetteer."""
    return {**entity_labels(language),
            **{t.slug: t.titles.get(language, t.title) for t in settings.topics}}


def _entry(base_url: str, categories: dict[str, str], topic: Topic, article: Article,
           syndication: Syndication) -> SharedEntry:
    """One entry; `categories` label every tag in `topic`'s language."""
    language = article.language
    entry = SharedEntry()
    entry.register_extension("nashra", EntryExtras)
    entry.id(f"urn:uuid:{article.id}")
    entry.title(label_for(article.title, language))
    entry.published(article.published)
    entry.updated(article.updated)
    entry.content(directed_xhtml(_body(article, syndication), language), type="xhtml")
    if article.summary:
        entry.summary(directed_xhtml(_paragraph(article.summary), language), type="xhtml")
    author = label_for(article.author, language) if article.author else None
    if author:
        entry.author({"name": author})
    for tag in article.topics:
        if tag in categories:
            entry.category(term=tag, scheme=f"{base_url}/{feed_folder(tag)}/",
                           label=label_for(categories[tag], topic.language))
    if article.origin is not None and article.origin.feed_url:
        entry.source(url=article.origin.feed_url, title=label_for(article.origin.name, language))
    extras: EntryExtras = entry.nashra
    extras.language = language if language != topic.language else None
    extras.url = tagged_link(article.url, syndication.link_params)
    extras.link_language = language
    extras.creator = author
    extras.enclosures = article.enclosures
    extras.source_updated = article.updated
    return entry


def build_archive_page(settings: Settings, topic: Topic, articles: Sequence[Article],
                       page: int, full: bool, empty_updated: datetime,
                       entries: Entries | None = None) -> Document:
    """Archive page `page` of `topic` (RFC 5005), Atom; a `full` one never changes.

    Pages count from the oldest stories; every page links the one before and after it
    (a full page's next always exists, if only as the open page) and the current feed.
    """
    updated = max((a.updated for a in articles), default=empty_updated)
    generator = _feed_generator(settings, topic, updated)
    base, path = settings.base_url, archive_path(topic.slug, page)
    generator.id(f"{base}/{path}")
    links = {"current": f"{base}/{feed_path(topic.slug, 'atom')}"}
    if page > 1:
        links["prev-archive"] = f"{base}/{archive_path(topic.slug, page - 1)}"
    if full:
        links["next-archive"] = f"{base}/{archive_path(topic.slug, page + 1)}"
    generator.nashra.links, generator.nashra.archive = links, True
    (entries or Entries()).add(generator, settings, topic, articles, FULL)
    _set_links(generator, settings, topic, path, "atom")
    body = generator.atom_str(pretty=True)
    tag = etag(body)  # the body's hash: what the page is built from, hashed once
    return Document(path, MEDIA_TYPES["atom"], body, tag, updated,
                    fingerprint(BUILD_VERSION, path, tag), IMMUTABLE_AGE if full else MIN_MAX_AGE)


def _body(article: Article, syndication: Syndication) -> str:
    """The entry's content: its text and other outlets, or (summary only) its summary,
    which Atom needs as content all the same when the entry has no link.
    """
    if syndication.summary_only:
        return _paragraph(article.summary)
    body = article.content_html
    if article.other_outlets:
        body += credits_html(article.other_outlets, article.language)
    return body


def json_feed(settings: Settings, topic: Topic, items: list[dict],
              syndication: Syndication = FULL) -> bytes:
    """The topic as JSON Feed 1.1 (its `items` from Entries.json_items), with the same
    labels and <div dir lang> bodies as RSS/Atom."""
    language, base = topic.language, settings.base_url
    feed = {
        "version": JSON_FEED_VERSION,
        "title": label_for(f"{topic.title} - {settings.site_title}", language),
        "home_page_url": home_page(base, topic.slug),
        "feed_url": f"{base}/{syndication.prefix}{feed_path(topic.slug, 'json')}",
        "description": label_for(topic.description, language),
        "language": language,
        "authors": [{"name": label_for(settings.site_title, settings.language)}],
        "items": items,
    }
    if settings.websub_hub and syndication == FULL:
        feed["hubs"] = [{"type": "WebSub", "url": settings.websub_hub}]
    # Compact: json's C encoder writes it; indenting falls back to the pure-Python one (7x).
    return json.dumps(feed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json_item(article: Article, syndication: Syndication) -> dict:
    language = article.language
    item = {"id": f"urn:uuid:{article.id}", "title": label_for(article.title, language),
            "content_html": directed_xhtml(_body(article, syndication), language),
            "date_published": article.published.isoformat(),
            "date_modified": article.updated.isoformat(), "language": language,
            "tags": list(article.topics)}
    if article.url:
        item["url"] = tagged_link(article.url, syndication.link_params)
    if article.summary:
        item["summary"] = article.summary
    if article.author:
        item["authors"] = [{"name": label_for(article.author, language)}]
    if article.enclosures:
        item["attachments"] = [
            {"url": e.url, "mime_type": e.media_type, **({"size_in_bytes": e.length}
                                                         if e.length > 0 else {})}
            for e in article.enclosures]
    return item


def build_opml(settings: Settings, updated: datetime) -> Document:
    """An OPML 2.0 list of every topic feed, to subscribe to all of them at once."""
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = label_for(settings.site_title, settings.language)
    ET.SubElement(head, "dateModified").text = updated.strftime("%a, %d %b %Y %H:%M:%S GMT")
    body = ET.SubElement(opml, "body")
    for topic in settings.topics:
        ET.SubElement(body, "outline", type="rss", language=topic.language,
                      text=label_for(topic.title, topic.language),
                      title=label_for(topic.title, topic.language),
                      xmlUrl=f"{settings.base_url}/{feed_path(topic.slug, 'atom')}",
                      htmlUrl=home_page(settings.base_url, topic.slug))
    ET.indent(opml)
    data = ET.tostring(opml, encoding="utf-8", xml_declaration=True) + b"\n"
    return Document(OPML_PATH, MEDIA_TYPES["opml"], data, etag(data), updated,
                    fingerprint(BUILD_VERSION, data.decode("utf-8")))


def sources_opml(settings: Settings, sources: Sequence[Source]) -> str:
    """The feed sources as an OPML 2.0 subscription list (`nashra sources export`)."""
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = f"{settings.site_title}: sources"
    body = ET.SubElement(opml, "body")
    for source in sources:
        outline = ET.SubElement(body, "outline", type="rss", text=source.title or source.name,
                                title=source.title or source.name, xmlUrl=source.url)
        if source.language:
            outline.set("language", source.language)
    ET.indent(opml)
    return ET.tostring(opml, encoding="unicode", xml_declaration=True) + "\n"


# The index page's own words, in the site's language (English when it has none here).
INDEX_WORDS = {
    "ar": {"articles": "عدد المقالات", "subscribe_all": "الاشتراك في كل المواضيع"},
    "fa": {"articles": "تعداد مطالب", "subscribe_all": "اشتراک همه موضوع‌ها"},
    "ur": {"articles": "مضامین", "subscribe_all": "تمام موضوعات کی رکنیت"},
    "he": {"articles": "כתבות", "subscribe_all": "הרשמה לכל הנושאים"},
    "fr": {"articles": "Articles", "subscribe_all": "S'abonner à tous les sujets"},
    "en": {"articles": "Articles", "subscribe_all": "Subscribe to every topic"},
}


def build_index(settings: Settings, counts: dict[str, int], updated: datetime) -> Document:
    """The home page: every topic with its feeds, laid out in the site's language and direction."""
    language, esc = settings.language, html.escape
    words = INDEX_WORDS.get(language.split("-")[0], INDEX_WORDS["en"])
    alternates, items = [], []
    for topic in settings.topics:
        for kind in FEED_KINDS:
            alternates.append(
                f'<link rel="alternate" type="{MEDIA_TYPES[kind].split(";")[0]}" '
                f'title="{esc(topic.title)} ({FORMAT_NAMES[kind]})" '
                f'href="{esc(settings.base_url)}/{feed_path(topic.slug, kind)}">')
        items.append(
            f'<li id="{esc(topic.slug)}" lang="{esc(topic.language)}" '
            f'dir="{direction(topic.language)}"><h2>{esc(topic.title)}</h2>'
            f"<p>{esc(topic.description)}</p>"
            f'<p>{esc(words["articles"])}: <span class="count">{counts.get(topic.slug, 0)}'
            f'</span> · <a href="/{feed_path(topic.slug, "rss")}">RSS</a> '
            f'· <a href="/{feed_path(topic.slug, "atom")}">Atom</a> '
            f'· <a href="/{feed_path(topic.slug, "json")}">JSON</a></p></li>')
    page = _INDEX_TEMPLATE.format(
        lang=esc(language), dir=direction(language), title=esc(settings.site_title),
        description=esc(settings.site_description), alternates="\n".join(alternates),
        items="\n".join(items), opml=OPML_PATH, subscribe_all=esc(words["subscribe_all"]))
    data = page.encode("utf-8")
    return Document(INDEX_PATH, MEDIA_TYPES["html"], data, etag(data), updated,
                    fingerprint(BUILD_VERSION, page))


# The browser view's note, in the feed's language (English when it has none here).
FEED_PAGE_WORDS = {
    "ar": "هذه خلاصة أخبار: انسخ عنوانها في قارئ الخلاصات للاشتراك فيها.",
    "fa": "این یک خوراک خبری است: نشانی آن را در خوراک‌خوان خود وارد کنید.",
    "ur": "یہ خبروں کی فیڈ ہے: رکنیت کے لیے اس کا پتا اپنے فیڈ ریڈر میں ڈالیں۔",
    "he": "זהו פיד חדשות: העתיקו את כתובתו לקורא הפידים כדי להירשם.",
    "fr": "Ceci est un flux d'actualités : copiez son adresse dans votre lecteur de flux.",
    "en": "This is a news feed: copy its address into your feed reader to subscribe.",
}


def build_stylesheet(settings: Settings, language: str, updated: datetime) -> Document:
    """The XSLT that shows an RSS or Atom feed in `language` as a page in its direction.

    One per topic language, so direction is decided here (feeds.text) and not in XSLT.
    """
    words = FEED_PAGE_WORDS.get(language.split("-")[0], FEED_PAGE_WORDS["en"])
    xsl = string.Template(_FEED_XSL).substitute(
        lang=html.escape(language), dir=direction(language), note=html.escape(words),
        home=html.escape(settings.base_url + "/"), site=html.escape(settings.site_title))
    data = xsl.encode("utf-8")
    return Document(stylesheet_path(language), MEDIA_TYPES["xsl"], data, etag(data), updated,
                    fingerprint(BUILD_VERSION, xsl), MAX_MAX_AGE)


_FEED_XSL = """<?xml version="1.0" encoding="utf-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom" exclude-result-prefixes="atom">
<xsl:output method="html" encoding="utf-8" doctype-system="about:legacy-compat"/>
<xsl:template match="/">
<html lang="$lang" dir="$dir">
<head>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title><xsl:value-of select="rss/channel/title | atom:feed/atom:title"/></title>
<style>
body { font-family: system-ui, "Noto Naskh Arabic", sans-serif; max-width: 46rem;
       margin: 2rem auto; padding: 0 1rem; line-height: 1.7; }
.note { background: #f4f4f4; padding: .5rem 1rem; }
ul { list-style: none; padding: 0; }
li { border-bottom: 1px solid #ddd; padding: .5rem 0; }
time { color: #666; font-size: .9rem; display: block; }
</style>
</head>
<body>
<p class="note">$note <a href="$home">$site</a></p>
<h1><xsl:value-of select="rss/channel/title | atom:feed/atom:title"/></h1>
<p><xsl:value-of select="rss/channel/description | atom:feed/atom:subtitle"/></p>
<ul>
<xsl:for-each select="rss/channel/item">
<li dir="auto"><xsl:call-template name="item">
<xsl:with-param name="title" select="title"/><xsl:with-param name="link" select="link"/>
<xsl:with-param name="date" select="pubDate"/></xsl:call-template></li>
</xsl:for-each>
<xsl:for-each select="atom:feed/atom:entry">
<li dir="auto"><xsl:call-template name="item">
<xsl:with-param name="title" select="atom:title"/>
<xsl:with-param name="link" select="atom:link[@rel='alternate']/@href"/>
<xsl:with-param name="date" select="atom:published"/></xsl:call-template></li>
</xsl:for-each>
</ul>
</body>
</html>
</xsl:template>
<xsl:template name="item">
<xsl:param name="title"/><xsl:param name="link"/><xsl:param name="date"/>
<xsl:choose>
<xsl:when test="$$link"><a href="{$$link}"><xsl:value-of select="$$title"/></a></xsl:when>
<xsl:otherwise><xsl:value-of select="$$title"/></xsl:otherwise>
</xsl:choose>
<time><xsl:value-of select="$$date"/></time>
</xsl:template>
</xsl:stylesheet>
"""

_INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="{lang}" dir="{dir}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{alternates}
<style>
body {{ font-family: system-ui, "Noto Naskh Arabic", sans-serif; max-width: 46rem;
       margin: 2rem auto; padding: 0 1rem; line-height: 1.7; }}
ul {{ list-style: none; padding: 0; }}
li {{ border-bottom: 1px solid #ddd; padding: .5rem 0; }}
h2 {{ margin: 0; font-size: 1.2rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{description}</p>
<ul>
{items}
</ul>
<p><a href="/{opml}">{subscribe_all} (OPML)</a></p>
</body>
</html>
"""
