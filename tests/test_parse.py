"""feeds.parse: feed bytes -> Articles, on small RSS 2.0, Atom 1.0 and RSS 1.0 documents."""

import gzip
import xml.sax
from datetime import UTC, datetime, timedelta

import feedparser.api
import pytest
from conftest import feedparser_both_ways

from feeds.clean import clean_article
from feeds.model import Enclosure
from feeds.parse import ParsedFeed, parse_feed, update_hint

FEED_URL = "https://news.example.org/feeds/main.xml"
NOW = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
TITLE = "المغرب يعزز دوره العالمي في مكافحة الإرهاب"
BODY = "قادت المديرية العامة للأمن الوطني وفدا أمنيا إلى فيينا للمشاركة في اجتماع إقليمي."


def parse(body: str | bytes, **kwargs) -> ParsedFeed:
    data = body.encode("utf-8") if isinstance(body, str) else body
    kwargs.setdefault("now", NOW)
    return parse_feed(data, FEED_URL, "example", **kwargs)


def rss(items: str, channel: str = "<language>ar</language>") -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">
<channel><title>نشرة المثال</title><link>https://news.example.org/</link>
<description>أخبار</description>{channel}
{items}
</channel></rss>"""


def item(guid: str = "urn:news:1", title: str = TITLE, extra: str = "") -> str:
    return (f"<item><title>{title}</title><guid isPermaLink=\"false\">{guid}</guid>"
            f"<description>{BODY}</description>"
            f"<pubDate>Sat, 10 May 2025 09:30:00 +0100</pubDate>{extra}</item>")


# --- RSS 2.0 ----------------------------------------------------------------------------

RSS_FULL = rss(
    """<item>
  <title>خبر &lt;b&gt;عاجل&lt;/b&gt;</title>
  <link>/2025/05/hammouchi-vienna.html</link>
  <guid isPermaLink="false">urn:news:42</guid>
  <description>&lt;p&gt;ملخص قصير&lt;/p&gt;</description>
  <content:encoded><![CDATA[<p>نص المقال الكامل.</p><p>فقرة ثانية أطول من الملخص.</p>]]>
  </content:encoded>
  <pubDate>Sat, 10 May 2025 09:30:00 +0100</pubDate>
  <dc:creator>سعيد الإدريسي</dc:creator>
  <category>أمن</category><category>دولي</category><category>أمن</category>
  <enclosure url="/media/report.mp3" type="audio/mpeg" length="12345"/>
</item>""",
    channel="<language>ar-MA</language><ttl>30</ttl>",
)


def test_rss_fields_are_mapped():
    feed = parse(RSS_FULL, content_type="application/rss+xml; charset=utf-8")
    assert (feed.title, feed.link, feed.language) == ("نشرة المثال", "https://news.example.org/",
                                                      "ar-MA")
    assert (feed.version, feed.bozo, feed.problems, feed.update_hint) == ("rss20", None, [], 1800)
    [article] = feed.articles
    assert article.source == "example"
    assert article.key == "urn:news:42"
    assert article.title == "خبر عاجل"
    assert article.url == "https://news.example.org/2025/05/hammouchi-vienna.html"
    assert article.content_html == "<p>نص المقال الكامل.</p><p>فقرة ثانية أطول من الملخص.</p>"
    assert article.summary == "<p>ملخص قصير</p>"
    assert article.language == "ar-MA"
    assert article.published == article.updated == datetime(2025, 5, 10, 8, 30, tzinfo=UTC)
    assert not article.date_estimated
    assert article.author == "سعيد الإدريسي"
    assert article.categories == ("أمن", "دولي")
    assert article.enclosures == (
        Enclosure("https://news.example.org/media/report.mp3", "audio/mpeg", 12345),)
    assert len(article.content_hash) == 32


def test_summary_is_empty_when_it_is_the_content():
    [article] = parse(rss(item())).articles
    assert article.content_html == BODY
    assert article.summary == ""


def test_feed_author_stands_in_for_a_missing_entry_author():
    channel = "<managingEditor>desk@example.org (مكتب الأخبار)</managingEditor>"
    [article] = parse(rss(item(), channel=channel)).articles
    assert article.author == "مكتب الأخبار"


def test_content_hash_changes_when_the_entry_is_edited_and_only_then():
    first = parse(rss(item())).articles[0]
    again = parse(rss(item()), now=NOW + timedelta(hours=3)).articles[0]
    edited = parse(rss(item(title=TITLE + " (محدث)"))).articles[0]
    assert first.content_hash == again.content_hash
    assert first.content_hash != edited.content_hash
    assert first.key == edited.key


# --- keys ---------------------------------------------------------------------------------


def test_key_falls_back_to_the_link_then_to_a_hash_of_the_text():
    with_link = "<item><title>أ</title><link>https://news.example.org/a</link></item>"
    bare = "<item><title>ب</title><description>نص</description></item>"
    first = parse(rss(with_link + bare)).articles
    second = parse(rss(with_link + bare), now=NOW + timedelta(days=1)).articles
    assert first[0].key == "https://news.example.org/a"
    assert first[1].key.startswith("blake2b:")
    assert [a.key for a in first] == [a.key for a in second]
    assert [a.id for a in first] == [a.id for a in second]


def test_overlong_ids_and_titles_are_bounded():
    huge_guid = "urn:body:" + "نص " * 600
    huge_title = "عنوان " * 100
    first = parse(rss(item(huge_guid, huge_title))).articles[0]
    again = parse(rss(item(huge_guid, huge_title))).articles[0]
    assert first.key == again.key and first.key.startswith("blake2b:")
    assert len(first.title) <= 300 and first.title.endswith("…")


def test_duplicate_guids_keep_the_first_entry_and_say_so():
    items = (item("urn:dup", "الأول", "<link>https://news.example.org/1</link>")
             + item("urn:dup", "الثاني", "<link>https://news.example.org/2</link>")
             + item("urn:other", "الثالث"))
    feed = parse(rss(items))
    assert [a.title for a in feed.articles] == ["الأول", "الثالث"]
    [problem] = feed.problems
    assert "entry 2" in problem and "same id as entry 1" in problem and "urn:dup" in problem


# --- Atom 1.0 -----------------------------------------------------------------------------

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en" xml:base="https://blog.example.net/">
  <title type="html">Middle East &lt;em&gt;desk&lt;/em&gt;</title>
  <id>urn:uuid:feed</id><updated>2025-05-09T00:00:00Z</updated>
  <link href="/" rel="alternate"/>
  <author><name>The Desk</name></author>
  <entry xml:lang="ar" xml:base="ar/2025/">
    <id>tag:blog.example.net,2025:1</id>
    <title>عنوان عربي</title>
    <link rel="alternate" href="story.html"/>
    <link rel="enclosure" href="photo.jpg" type="image/jpeg" length="2048"/>
    <published>2025-05-08T10:00:00+02:00</published>
    <updated>2025-05-09T07:00:00Z</updated>
    <category term="politics" label="سياسة"/>
    <summary>ملخص</summary>
    <content type="html">&lt;p&gt;&lt;a href="more.html"&gt;المزيد&lt;/a&gt;
      &lt;img src="/i/map.png"&gt;&lt;/p&gt;</content>
  </entry>
  <entry>
    <id>tag:blog.example.net,2025:2</id>
    <title type="text">5 &lt; 6 and other truths</title>
    <link href="/en/truths"/>
    <updated>2025-05-07T00:00:00Z</updated>
    <content type="text">Line one &amp; more.

Second paragraph &lt;not a tag&gt;.</content>
  </entry>
</feed>"""


def test_atom_links_resolve_against_xml_base_and_entry_language_wins():
    feed = parse(ATOM, content_type="application/atom+xml")
    assert (feed.version, feed.language, feed.title) == ("atom10", "en", "Middle East desk")
    assert feed.link == "https://blog.example.net/"
    arabic, english = feed.articles
    assert arabic.url == "https://blog.example.net/ar/2025/story.html"
    assert 'href="https://blog.example.net/ar/2025/more.html"' in arabic.content_html
    assert 'src="https://blog.example.net/i/map.png"' in arabic.content_html
    assert arabic.enclosures == (
        Enclosure("https://blog.example.net/ar/2025/photo.jpg", "image/jpeg", 2048),)
    assert arabic.language == "ar"
    assert english.language == "en"
    assert arabic.published == datetime(2025, 5, 8, 8, 0, tzinfo=UTC)
    assert arabic.updated == datetime(2025, 5, 9, 7, 0, tzinfo=UTC)
    assert arabic.summary == "<p>ملخص</p>"  # Atom type="text" summary, as HTML
    assert arabic.categories == ("سياسة",)
    assert arabic.author == english.author == "The Desk"
    assert english.url == "https://blog.example.net/en/truths"


def test_atom_plain_text_stays_text():
    english = parse(ATOM).articles[1]
    assert english.title == "5 < 6 and other truths"
    assert english.content_html == ("<p>Line one &amp; more.</p>\n"
                                    "<p>Second paragraph &lt;not a tag&gt;.</p>")
    assert english.summary == ""  # feedparser copies content into a missing summary
    assert english.published == english.updated == datetime(2025, 5, 7, tzinfo=UTC)
    cleaned = clean_article(english)
    assert cleaned.title == "5 < 6 and other truths"
    assert "&lt;not a tag&gt;" in cleaned.content_html


def test_rss_item_language_beats_the_channel_language():
    items = item("urn:1") + item("urn:2", extra="<dc:language>fa</dc:language>")
    feed = parse(rss(items, channel="<language>en</language>"))
    assert [a.language for a in feed.articles] == ["en", "fa"]


# --- RSS 1.0 ------------------------------------------------------------------------------

RDF = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/"
         xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">
  <channel rdf:about="https://news.example.org/rdf">
    <title>RDF news</title><link>https://news.example.org/</link><description>d</description>
    <dc:language>ar</dc:language>
    <sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>
    <items><rdf:Seq><rdf:li rdf:resource="https://news.example.org/a"/></rdf:Seq></items>
  </channel>
  <item rdf:about="https://news.example.org/a">
    <title>خبر من الأرشيف</title><link>https://news.example.org/a</link>
    <description>نص الخبر</description>
    <dc:date>2025-05-01T10:00:00+01:00</dc:date><dc:creator>علي</dc:creator>
    <dc:subject>اقتصاد</dc:subject>
  </item>
</rdf:RDF>"""


def test_rss10_fields_are_mapped():
    feed = parse(RDF)
    assert (feed.version, feed.language, feed.update_hint) == ("rss10", "ar", 86400 / 4)
    [article] = feed.articles
    assert article.key == "https://news.example.org/a"
    assert article.published == article.updated == datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
    assert (article.title, article.author, article.categories) == ("خبر من الأرشيف", "علي",
                                                                   ("اقتصاد",))
    assert article.language == "ar"


# --- dates --------------------------------------------------------------------------------


def test_missing_dates_are_first_seen_time_and_flagged():
    undated = f"<item><title>{TITLE}</title><guid>urn:x</guid><description>نص</description></item>"
    [article] = parse(rss(undated)).articles
    assert article.published == article.updated == NOW
    assert article.date_estimated


def test_future_dates_are_clamped_to_now_and_reported():
    future = "<pubDate>Sat, 10 May 2031 09:30:00 +0000</pubDate>"
    tomorrow = "<pubDate>Sun, 11 May 2025 09:30:00 +0000</pubDate>"
    items = (f"<item><title>أ</title><guid>1</guid>{future}</item>"
             f"<item><title>ب</title><guid>2</guid>{tomorrow}</item>")
    feed = parse(rss(items))
    clamped, near = feed.articles
    assert clamped.published == clamped.updated == NOW and clamped.date_estimated
    assert near.published == datetime(2025, 5, 11, 9, 30, tzinfo=UTC) and not near.date_estimated
    [problem] = feed.problems
    assert problem.startswith("entry 1:") and "2031" in problem and "future" in problem


def test_placeholder_dates_count_as_missing():
    hugo = "<item><title>عن المدونة</title><guid>/about/</guid>" \
           "<pubDate>Mon, 01 Jan 0001 00:00:00 +0000</pubDate></item>"
    [article] = parse(rss(hugo)).articles
    assert article.published == NOW and article.date_estimated


def test_updated_is_never_before_published():
    atom = """<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>f</id>
      <entry><id>e</id><title>t</title><published>2025-05-09T00:00:00Z</published>
      <updated>2025-05-01T00:00:00Z</updated></entry></feed>"""
    [article] = parse(atom).articles
    assert article.updated == article.published == datetime(2025, 5, 9, tzinfo=UTC)


# --- titles -------------------------------------------------------------------------------


def test_untitled_entry_takes_the_first_words_of_its_text():
    words = "كلمة " * 14
    items = (f"<item><guid>1</guid><description>&lt;p&gt;{words}&lt;/p&gt;</description></item>"
             "<item><guid>2</guid><description>نص قصير</description></item>"
             "<item><guid>3</guid><title> </title></item>")
    feed = parse(rss(items))
    long, short = feed.articles
    assert long.title == " ".join(["كلمة"] * 10) + "…"
    assert short.title == "نص قصير"
    [problem] = feed.problems
    assert problem.startswith("entry 3 skipped") and "no title" in problem


# --- update hints -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "seconds"),
    [
        ("<ttl>60</ttl>", 3600),
        ("<sy:updatePeriod>hourly</sy:updatePeriod>", 3600),
        ("<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>",
         1800),
        ("<sy:updateFrequency>2</sy:updateFrequency>", 43200),  # the period defaults to daily
        ("<sy:updatePeriod>weekly</sy:updatePeriod>", 7 * 86400),
        ("<ttl>15</ttl><sy:updatePeriod>hourly</sy:updatePeriod>", 3600),  # the longer wins
        ("<ttl>soon</ttl>", None),
        ("<ttl>0</ttl><sy:updatePeriod>fortnightly</sy:updatePeriod>", None),
        ("", None),
    ],
)
def test_update_hint(channel, seconds):
    assert parse(rss(item(), channel=channel)).update_hint == seconds


def test_update_hint_ignores_nonsense_numbers():
    assert update_hint({"ttl": "inf"}) is None
    assert update_hint({"ttl": "-5"}) is None
    assert update_hint({"sy_updateperiod": "daily", "sy_updatefrequency": "0"}) is None


# --- broken and non-feeds -----------------------------------------------------------------


def test_bozo_feed_with_entries_is_still_read():
    broken = rss(item("urn:1", "أخبار & تقارير") + item("urn:2", "الثاني"))
    feed = parse(broken)
    assert feed.version == "rss20"
    assert [a.key for a in feed.articles] == ["urn:1", "urn:2"]
    assert feed.bozo.startswith("not well-formed XML (line")


def test_html_page_is_not_a_feed():
    page = b"""<!DOCTYPE html><html><head><title>Home</title></head>
    <body><p>Welcome</p><a href="/feed.xml">RSS</a></body></html>"""
    feed = parse(page, content_type="text/html; charset=utf-8")
    assert (feed.articles, feed.version) == ([], "")
    assert feed.bozo == "not an RSS or Atom feed (looks like HTML); check the URL"
    assert feed.problems == [feed.bozo]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty document"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', "looks like JSON"),
        (b"<?xml version='1.0'?><sitemap><url>x</url></sitemap>", "root is <sitemap>"),
    ],
)
def test_other_non_feeds_say_what_they_are(body, words):
    feed = parse(body)
    assert feed.articles == [] and words in feed.bozo and "check the URL" in feed.bozo


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\xff\xfe garbage \x00",
        b"<rss",
        b"<rss version='2.0'><channel><item><title>x",
        "<rss version='2.0'><channel><item><guid>1</guid><pubDate>31 Feb 99999</pubDate>"
        "<enclosure url='javascript:alert(1)' length='-1'/><title>ت</title></item>"
        "</channel></rss>".encode(),
        b"\x1f\x8b\x08\x00broken gzip",
        b"\xef\xbb\xbf   ",
        b"<feed xmlns='http://www.w3.org/2005/Atom'><entry><title type='image/png'>"
        b"AAAA</title><content type='application/octet-stream'>AAAA</content></entry>"
        b"</feed>",
    ],
)
def test_never_raises_on_bad_input(body):
    feed = parse(body)
    assert isinstance(feed, ParsedFeed)
    for article in feed.articles:
        clean_article(article)


# --- XSS: raw here, gone after clean_article ---------------------------------------------

XSS_ITEM = """<item>
  <title>&lt;img src=x onerror=alert(1)&gt;خبر &lt;script&gt;alert(2)&lt;/script&gt;عاجل</title>
  <guid>urn:xss</guid>
  <link>https://news.example.org/xss</link>
  <description><![CDATA[<p onclick="steal()">نص</p><script>alert(3)</script>
    <img src="https://news.example.org/a.png" onerror="steal()">
    <a href="javascript:alert(4)">رابط</a><iframe src="https://evil.example/"></iframe>]]></description>
</item>"""


def test_xss_is_passed_raw_by_parse_and_removed_by_clean():
    [article] = parse(rss(XSS_ITEM)).articles
    assert "<script>alert(3)</script>" in article.content_html
    assert 'onerror="steal()"' in article.content_html
    assert "javascript:alert(4)" in article.content_html
    assert article.title == "خبر عاجل"  # titles are plain text already

    cleaned = clean_article(article)
    for payload in ("<script", "alert(", "onerror", "onclick", "javascript:", "<iframe"):
        assert payload not in cleaned.content_html
        assert payload not in cleaned.title
        assert payload not in cleaned.summary
    assert cleaned.title == "خبر عاجل"
    assert 'src="https://news.example.org/a.png"' in cleaned.content_html


def test_non_web_links_and_enclosures_are_dropped():
    bad = ("<item><title>ت</title><guid>1</guid><link>javascript:alert(1)</link>"
           "<enclosure url='data:audio/mpeg;base64,AAAA' type='audio/mpeg' length='4'/></item>")
    feed = parse(rss(bad))
    [article] = feed.articles
    assert article.url is None and article.enclosures == ()
    assert "javascript:alert(1)" in feed.problems[0] and "dropped" in feed.problems[0]


# --- character encodings ------------------------------------------------------------------


def arabic_windows_1256(declaration: str) -> bytes:
    items = item("urn:1") + item("urn:2", "الأمن الوطني يفكك خلية إرهابية")
    return rss(items).replace('<?xml version="1.0" encoding="utf-8"?>', declaration) \
        .encode("windows-1256")


@pytest.mark.parametrize(
    ("declaration", "content_type"),
    [
        ('<?xml version="1.0" encoding="utf-8"?>', "application/rss+xml"),
        ('<?xml version="1.0" encoding="utf-8"?>', None),
        ('<?xml version="1.0"?>', None),
        ("", "text/xml"),
        ('<?xml version="1.0"?>', "application/xml; charset=utf-8"),
    ],
)
def test_windows_1256_arabic_declared_wrongly_reads_as_arabic(declaration, content_type):
    feed = parse(arabic_windows_1256(declaration), content_type=content_type)
    assert [a.title for a in feed.articles] == [TITLE, "الأمن الوطني يفكك خلية إرهابية"]
    assert feed.articles[0].content_html == BODY
    assert feed.title == "نشرة المثال"
    assert "windows-1256" in feed.bozo


def test_windows_1256_declared_correctly_needs_no_guess():
    feed = parse(arabic_windows_1256('<?xml version="1.0" encoding="windows-1256"?>'))
    assert feed.articles[0].title == TITLE and feed.bozo is None


def test_latin1_text_is_not_mistaken_for_arabic():
    latin = ("<?xml version='1.0'?><rss version='2.0'><channel><title>Notícias</title>"
             "<item><title>Ação rápida em São Paulo</title><guid>1</guid>"
             "<description>Começa hoje a votação na Câmara; análise às três.</description>"
             "</item></channel></rss>").encode("iso-8859-1")
    feed = parse(latin)
    assert feed.articles[0].title == "Ação rápida em São Paulo"
    assert "windows-1252" in feed.bozo


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-16"])
def test_utf16_without_declaration_is_read(codec):
    feed = parse(rss(item()).split("?>", 1)[1].encode(codec))
    assert feed.articles[0].title == TITLE


def test_utf16_with_declaration_is_read():
    body = rss(item()).replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")
    assert parse(body).articles[0].title == TITLE


def test_whitespace_before_the_xml_declaration_is_forgiven():
    feed = parse("\n\n   " + rss(item()))
    assert feed.bozo is None and feed.articles[0].title == TITLE


def test_unlabelled_gzip_body_is_inflated():
    feed = parse(gzip.compress(rss(item()).encode("utf-8")))
    assert feed.articles[0].title == TITLE


# --- enclosures ---------------------------------------------------------------------------


def test_enclosures_media_images_and_thumbnails():
    extra = """<enclosure url="https://cdn.example.org/a.mp3" type="audio/mpeg" length="n/a"/>
      <enclosure url="/pod/b.m4a" length="77"/>
      <media:content url="https://cdn.example.org/photo.webp" medium="image" fileSize="900"/>
      <media:content url="https://cdn.example.org/clip.mp4" type="video/mp4"/>
      <media:content url="https://cdn.example.org/a.mp3" type="audio/mpeg"/>
      <media:thumbnail url="https://cdn.example.org/thumb.png"/>
      <media:thumbnail url="https://cdn.example.org/photo.webp"/>"""
    [article] = parse(rss(item(extra=extra))).articles
    assert article.enclosures == (
        Enclosure("https://cdn.example.org/a.mp3", "audio/mpeg", 0),
        Enclosure("https://news.example.org/pod/b.m4a", "audio/mp4", 77),
        Enclosure("https://cdn.example.org/photo.webp", "image/webp", 900),
        Enclosure("https://cdn.example.org/thumb.png", "image/png", 0),
    )


def test_feedparser_reads_with_expat_buffering_text_and_gets_the_same_result():
    pieces = []
    handler = xml.sax.handler.ContentHandler()
    handler.characters = pieces.append
    xml.sax.parseString(b"<a>x&amp;y\n&lt;z</a>", handler)  # the stock parser
    parser = xml.sax.make_parser(feedparser.api.PREFERRED_XML_PARSERS)
    parser.setContentHandler(handler)
    parser.feed(b"<a>x&amp;y\n&lt;z</a>")
    parser.close()
    assert pieces == ["x", "&", "y", "\n", "<", "z", "x&y\n<z"]  # ours: one run, one piece
    escaped = "&lt;p dir=&quot;rtl&quot;&gt;" + "&amp;".join([BODY] * 40) + "&lt;/p&gt;\n"
    body = rss(item(extra=f"<content:encoded>{escaped * 3}</content:encoded>")).encode()
    stock, buffered = feedparser_both_ways(body)
    assert stock == buffered
    assert stock[0]["entries"][0]["content"][0]["value"].count("&") == 3 * 39
