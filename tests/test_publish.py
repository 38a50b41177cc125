"""Published feeds read back the way readers read them: feedparser, and lxml for the markup."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import datetime
from email.utils import parsedate_to_datetime

import feedparser
import lxml.html
import pytest
from conftest import SEED_TITLE, T0, hours
from lxml import etree

from feeds.clean import clean_article
from feeds.model import Enclosure, Topic
from feeds.pipeline import build_documents, build_tag, ingest_seeds
from feeds.publish import build_topic
from feeds.tagging import entity_labels
from storage import Storage

ATOM = "{http://www.w3.org/2005/Atom}"
XHTML = "{http://www.w3.org/1999/xhtml}"
DC = "{http://purl.org/dc/elements/1.1/}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
RLM = "\u200f"
NEEDS_RLM = ["BCIJ يفكك خلية إرهابية", "«داعش» تتبنى"]
NO_RLM = ["2025: عام الأمن", "المغرب يعزز"]
ENGLISH_TITLE = "Police dismantle a smuggling ring"
RFC822 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
                    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                    r"\d{2}:\d{2}:\d{2} (GMT|UT|Z|[+-]\d{4})$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@pytest.fixture
def docs(settings, storage, seeds_dir, make_article):
    """path -> bytes after ingesting the shipped seed (dated 2025) and crafted articles."""
    seed = next(seeds_dir.glob("*.txt"))
    stamp = (T0 - hours(48)).timestamp()
    os.utime(seed, (stamp, stamp))
    ingest_seeds(settings, storage)
    crafted = [make_article(f"rlm{i}", title=t, published=T0 + hours(i))
               for i, t in enumerate(NEEDS_RLM + NO_RLM)]
    crafted.append(make_article("en", title=ENGLISH_TITLE, language="en",
                                content_html="<p>Police in Rabat seized drugs.</p>",
                                published=T0 + hours(10)))
    storage.save_articles(crafted)
    build_documents(settings, storage)
    return {d.path: d.body for d in storage.documents()}


def rss(docs) -> etree._Element:
    return etree.fromstring(docs["topics/security.rss"]).find("channel")


def atom(docs) -> etree._Element:
    return etree.fromstring(docs["topics/security.atom"])


def rss_item(docs, title: str) -> etree._Element:
    return next(i for i in rss(docs).iter("item") if i.findtext("title").lstrip(RLM) == title)


def atom_entry(docs, title: str) -> etree._Element:
    return next(e for e in atom(docs).iter(f"{ATOM}entry")
                if e.findtext(f"{ATOM}title").lstrip(RLM) == title)


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_security_feed_parses_without_errors(docs, kind):
    parsed = feedparser.parse(docs[f"topics/security.{kind}"])

    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert SEED_TITLE in {e.title for e in parsed.entries}


def test_feed_language_is_arabic_in_both_formats(docs):
    assert rss(docs).findtext("language") == "ar"
    assert atom(docs).get(XML_LANG) == "ar"


def test_channel_never_has_both_language_and_dc_language(docs):
    channel = rss(docs)
    assert channel.find("language") is not None
    assert channel.find(f"{DC}language") is None


def test_atom_content_is_xhtml_wrapped_in_an_rtl_div(docs):
    content = atom_entry(docs, SEED_TITLE).find(f"{ATOM}content")
    wrapper = content[0]
    ours = wrapper[0]

    assert content.get("type") == "xhtml"
    assert wrapper.tag == f"{XHTML}div" and not wrapper.attrib
    assert (ours.tag, ours.get("dir"), ours.get("lang")) == (f"{XHTML}div", "rtl", "ar")


def test_rss_content_is_wrapped_in_an_rtl_div(docs):
    item = rss_item(docs, SEED_TITLE)
    for html in (item.findtext("description"),
                 item.findtext("{http://purl.org/rss/1.0/modules/content/}encoded")):
        if html is not None:
            root = lxml.html.fragment_fromstring(html)
            assert (root.tag, root.get("dir"), root.get("lang")) == ("div", "rtl", "ar")


def test_entry_ids_are_stable_across_rebuilds_and_edits(settings, storage, docs, make_article):
    def ids(documents):
        return ([i.findtext("guid") for i in rss(documents).iter("item")],
                [e.findtext(f"{ATOM}id") for e in atom(documents).iter(f"{ATOM}entry")])

    before = ids(docs)
    storage.save_articles([make_article("rlm0", title=NEEDS_RLM[0], content_hash="edited",
                                        content_html="<p>نص معدل عن الأمن.</p>")])
    fresh = Storage(settings.storage_url)
    try:
        rebuilt = {d.path: d.body for d in build_documents(settings, fresh, force=True)}
    finally:
        fresh.close()

    assert ids(rebuilt) == before
    assert f"urn:uuid:{make_article('rlm0').id}" in before[0]
    assert len(set(before[0])) == len(before[0])


def test_self_and_alternate_links(docs, settings):
    base = settings.base_url
    channel, feed = rss(docs), atom(docs)
    rss_links = {link.get("rel"): link.get("href") for link in channel.findall(f"{ATOM}link")}
    atom_links = {link.get("rel"): link.get("href") for link in feed.findall(f"{ATOM}link")}

    assert rss_links["self"] == f"{base}/topics/security.rss"
    assert atom_links["self"] == f"{base}/topics/security.atom"
    assert atom_links["alternate"].startswith(base)
    assert channel.findtext("link") == atom_links["alternate"]


def test_categories_are_the_articles_topics_and_entities(docs, storage, settings):
    (seed,) = [a for a in storage.articles("security") if a.title == SEED_TITLE]
    labels = entity_labels("ar") | {t.slug: t.title for t in settings.topics}
    base = settings.base_url

    categories = atom_entry(docs, SEED_TITLE).findall(f"{ATOM}category")
    rss_labels = {c.text.lstrip(RLM) for c in rss_item(docs, SEED_TITLE).findall("category")}

    assert {c.get("term") for c in categories} == set(seed.topics)
    assert {"org:isis", "place:vienna", "person:abdellatif-hammouchi"} <= set(seed.topics)
    for category in categories:
        term = category.get("term")
        folder = "tags" if ":" in term else "topics"
        assert category.get("scheme") == f"{base}/{folder}/"
        assert category.get("label").lstrip(RLM) == labels[term]
    assert {"داعش", "فيينا", "عبد اللطيف حموشي", "أمن"} <= rss_labels


@pytest.mark.parametrize(("language", "united_nations", "morocco"), [
    ("ar", "الأمم المتحدة", "المغرب"),
    ("fr", "Organisation des Nations unies", "Maroc"),
    ("en", "United Nations", "Morocco"),
])
def test_entity_categories_are_labelled_in_the_topics_language(settings, make_article, language,
                                                               united_nations, morocco):
    topic = Topic(slug="world", language=language, titles={language: "world"},
                  descriptions={language: "world"})
    story = make_article("un", topics=("world", "org:un", "place:morocco"))

    feeds = {d.path: d.body for d in build_topic(replace(settings, topics=(topic,)), topic,
                                                 [story], T0)}

    atom_labels = {c.get("term"): c.get("label").lstrip(RLM) for c in etree.fromstring(
        feeds["topics/world.atom"]).iter(f"{ATOM}category")}
    rss_labels = {c.text.lstrip(RLM) for c in etree.fromstring(
        feeds["topics/world.rss"]).iter("category")}
    assert atom_labels == {"world": "world", "org:un": united_nations, "place:morocco": morocco}
    assert rss_labels == {"world", united_nations, morocco}


def test_a_renamed_entity_rebuilds_the_feeds_that_label_it(settings, storage, monkeypatch):
    ingest_seeds(settings, storage)
    build_documents(settings, storage)
    renamed = {**entity_labels("ar"), "org:isis": "تنظيم الدولة"}
    monkeypatch.setattr("feeds.publish.entity_labels", lambda language: renamed)

    rebuilt = {d.path: d.body for d in build_documents(settings, storage)}

    assert {"topics/security.atom", "topics/terrorism.atom"} <= set(rebuilt)
    assert "topics/sports.atom" not in rebuilt  # no entry of it is about ISIS
    assert 'label="تنظيم الدولة"' in rebuilt["topics/security.atom"].decode()


def test_an_entity_feed_is_built_on_request(settings, storage, seeds_dir):
    ingest_seeds(settings, storage)

    documents = {d.path: d for d in build_tag(settings, storage, "org:isis")}
    feed = feedparser.parse(documents["tags/org:isis.atom"].body)
    rss_feed = feedparser.parse(documents["tags/org:isis.rss"].body)

    assert set(documents) == {f"tags/org:isis.{kind}" for kind in ("rss", "atom", "json")}
    assert feed.bozo == 0 and rss_feed.bozo == 0
    assert feed.feed.title.startswith("داعش")
    assert feed.feed.links[0].href == f"{settings.base_url}/tags/org:isis.atom"
    assert [e.title for e in feed.entries] == [SEED_TITLE]
    assert build_tag(settings, storage, "org:no-such-group") is None


def test_feed_updated_is_the_newest_entry_not_now(docs):
    newest = T0 + hours(10)
    channel, feed = rss(docs), atom(docs)

    assert parsedate_to_datetime(channel.findtext("lastBuildDate")) == newest
    assert datetime.fromisoformat(feed.findtext(f"{ATOM}updated")) == newest
    entry_updates = [datetime.fromisoformat(e.findtext(f"{ATOM}updated"))
                     for e in feed.iter(f"{ATOM}entry")]
    assert max(entry_updates) == newest


def test_rss_dates_are_rfc822_in_english_and_atom_dates_rfc3339(docs):
    channel, feed = rss(docs), atom(docs)
    rss_dates = [channel.findtext("lastBuildDate"),
                 *(i.findtext("pubDate") for i in channel.iter("item"))]
    atom_dates = [d.text for d in feed.iter(f"{ATOM}updated", f"{ATOM}published")]

    assert rss_dates and all(RFC822.match(d) for d in rss_dates), rss_dates
    assert atom_dates and all(RFC3339.match(d) for d in atom_dates), atom_dates


def test_items_are_newest_first_and_at_most_items_per_feed(settings, storage, make_article):
    settings = replace(settings, items_per_feed=3)
    storage.save_articles([make_article(str(i), published=T0 + hours(i)) for i in range(5)])
    build_documents(settings, storage)
    docs = {d.path: d.body for d in storage.documents()}

    for kind in ("rss", "atom"):
        entries = feedparser.parse(docs[f"topics/security.{kind}"]).entries
        assert [e.title for e in entries] == [f"خبر أمني رقم {i}" for i in (4, 3, 2)], kind


@pytest.mark.parametrize("title", NEEDS_RLM)
def test_titles_opening_ltr_or_neutral_get_a_leading_rlm(docs, title):
    assert rss_item(docs, title).findtext("title") == RLM + title
    assert atom_entry(docs, title).findtext(f"{ATOM}title") == RLM + title


@pytest.mark.parametrize("title", NO_RLM)
def test_titles_opening_arabic_or_digits_then_arabic_get_no_rlm(docs, title):
    assert rss_item(docs, title).findtext("title") == title
    assert atom_entry(docs, title).findtext(f"{ATOM}title") == title


def test_no_embedding_or_override_controls_anywhere(docs):
    for path, body in docs.items():
        assert not re.search("[\u202a-\u202e]", body.decode("utf-8")), path


def test_an_english_entry_in_the_arabic_feed_is_marked_english(docs):
    entry, item = atom_entry(docs, ENGLISH_TITLE), rss_item(docs, ENGLISH_TITLE)

    assert entry.get(XML_LANG) == "en"
    assert item.findtext(f"{DC}language") == "en"
    assert entry.find(f"{ATOM}content")[0][0].get("dir") == "ltr"
    assert lxml.html.fragment_fromstring(item.findtext("description")).get("dir") == "ltr"
    assert atom_entry(docs, SEED_TITLE).get(XML_LANG) in (None, "ar")


def test_control_characters_are_cleaned_and_the_feeds_still_parse(settings, storage,
                                                                  make_article):
    dirty = make_article("dirty", title="عنوان\x01 فيه\x85 تحكم\ufffe\u202e",
                         content_html="<p>نص\x01 الخبر\x85 عن الأمن\ufffe</p>")
    storage.save_articles([clean_article(dirty, "ar")])
    build_documents(settings, storage)
    docs = {d.path: d.body for d in storage.documents()}

    for kind in ("rss", "atom"):
        parsed = feedparser.parse(docs[f"topics/security.{kind}"])
        assert parsed.bozo == 0, (kind, parsed.get("bozo_exception"))
        assert [e.title for e in parsed.entries] == ["عنوان فيه تحكم"]


def test_atom_feed_names_an_author(docs):
    feed = atom(docs)
    names = [n.text for n in feed.findall(f"{ATOM}author/{ATOM}name")]
    entries = list(feed.iter(f"{ATOM}entry"))

    assert (names and names[0].strip()) or all(e.find(f"{ATOM}author") is not None
                                               for e in entries)
    assert feedparser.parse(docs["topics/security.atom"]).feed.get("author")


def test_opml_lists_every_topic_feed(docs, settings):
    outlines = etree.fromstring(docs["topics.opml"]).iter("outline")
    urls = {o.get("xmlUrl") for o in outlines}

    for topic in settings.topics:
        assert urls & {f"{settings.base_url}/topics/{topic.slug}.{kind}"
                       for kind in ("rss", "atom")}, topic.slug


def test_enclosures_are_published_in_both_formats(settings, storage, make_article):
    audio = Enclosure("https://example.org/a.mp3", "audio/mpeg", 1234)
    image = Enclosure("https://example.org/b.jpg", "image/jpeg", 0)
    storage.save_articles([make_article("podcast", enclosures=(audio, image))])
    build_documents(settings, storage)
    docs = {d.path: d.body for d in storage.documents()}

    rss_entry = feedparser.parse(docs["topics/security.rss"]).entries[0]
    atom_entry = feedparser.parse(docs["topics/security.atom"]).entries[0]

    assert [(e.href, e.type, e.length) for e in rss_entry.enclosures] == [
        ("https://example.org/a.mp3", "audio/mpeg", "1234")]  # RSS allows one
    assert [(e.href, e.type) for e in atom_entry.enclosures] == [
        ("https://example.org/a.mp3", "audio/mpeg"), ("https://example.org/b.jpg", "image/jpeg")]
