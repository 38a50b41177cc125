"""feeds.clean: HTML sanitizing, site-chrome removal, and clean_article."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from feeds.clean import (
    clean_article,
    is_chrome,
    repeated_edge_lines,
    sanitize_html,
    strip_chrome,
)
from feeds.model import Article

SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_d93c5d4a86fd5825.txt"
SEED_CHROME = [
    "اظهر المزيد",
    "مقالات ذات صلة",
    "اترك تعليقاً",
    "لن يتم نشر عنوان بريدك الإلكتروني. الحقول الإلزامية مشار إليها بـ *",
    "زر الذهاب إلى الأعلى",
]
LATIN_CHROME = [
    "Lire aussi",
    "Leave a Reply",
    "Your email address will not be published. Required fields are marked *",
    "Back to top",
    "© 2024 Example. All rights reserved.",
]
BODY_MENTIONING_CHROME = "اقرأ المزيد عن خطة الحكومة في تقريرنا المفصل حول الميزانية الجديدة."
PARAGRAPH_1 = "قادت المديرية العامة للأمن الوطني وفدا أمنيا إلى فيينا."
PARAGRAPH_2 = "وشارك الوفد في اجتماع إقليمي حول مكافحة الإرهاب."

# --- sanitize_html ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("<p>خبر<script>alert(1)</script> عاجل</p>", "<p>خبر عاجل</p>"),
        ("<style>p { color: red }</style><p>خبر</p>", "<p>خبر</p>"),
        ('<img src="https://example.org/a.png" onerror="steal()">',
         '<img src="https://example.org/a.png"/>'),
        ('<p onclick="steal()">خبر</p>', "<p>خبر</p>"),
        ('<iframe src="https://example.org/ad"></iframe><p>خبر</p>', "<p>خبر</p>"),
        ('<form action="/login"><input name="q"></form><p>خبر</p>', "<p>خبر</p>"),
    ],
)
def test_sanitize_html_drops_dangerous_markup(dirty, clean):
    assert sanitize_html(dirty) == clean


def test_sanitize_html_output_is_well_formed_xhtml():
    cleaned = sanitize_html("نص<br>سطر &amp; <img src='https://example.org/a.png'><p>فقرة&nbsp;أخرى")

    etree.fromstring(f"<div>{cleaned}</div>")  # raises if not well-formed XML
    assert "<br/>" in cleaned and "&nbsp;" not in cleaned and cleaned.startswith("نص")


@pytest.mark.parametrize(
    "dirty",
    [
        '<a href="javascript:alert(1)">رابط</a>',
        '<a href="data:text/html,<script>alert(1)</script>">رابط</a>',
        '<img src="data:image/png;base64,iVBORw0KGgo=">',
    ],
)
def test_sanitize_html_drops_javascript_and_data_urls(dirty):
    result = sanitize_html(dirty)
    assert "javascript:" not in result
    assert "data:" not in result


@pytest.mark.parametrize(
    "markup",
    [
        "<p>خبر</p>",
        "<h2>عنوان فرعي</h2>",
        '<img src="https://example.org/a.png"/>',
        '<p dir="rtl" lang="ar">نص عربي</p>',
    ],
)
def test_sanitize_html_keeps_structure_images_and_direction(markup):
    assert sanitize_html(markup) == markup


def test_sanitize_html_keeps_https_links():
    result = sanitize_html('<a href="https://example.org/news/1">الخبر</a>')
    assert 'href="https://example.org/news/1"' in result
    assert ">الخبر</a>" in result


# --- is_chrome / strip_chrome -----------------------------------------------------------


@pytest.mark.parametrize("line", SEED_CHROME + LATIN_CHROME)
def test_listed_phrases_are_chrome(line):
    assert is_chrome(line) is True


@pytest.mark.parametrize("line", [BODY_MENTIONING_CHROME, PARAGRAPH_1, "Read more about the plan "
                                  "the government presented to parliament on Tuesday."])
def test_body_lines_mentioning_a_phrase_are_not_chrome(line):
    assert is_chrome(line) is False


def test_strip_chrome_removes_the_shipped_seed_trailing_lines():
    lines = [line.strip() for line in SEED.read_text("utf-8").splitlines()]
    stripped = strip_chrome(lines)
    assert stripped[-1].startswith("زيارة عبد اللطيف حموشي")
    assert not set(SEED_CHROME) & set(stripped)
    assert stripped == lines[: len(stripped)]


def test_strip_chrome_removes_leading_and_trailing_chrome_only():
    lines = ["Lire aussi", "", PARAGRAPH_1, "", "مقالات ذات صلة", "", PARAGRAPH_2, "",
             *SEED_CHROME, *LATIN_CHROME]
    assert strip_chrome(lines) == [PARAGRAPH_1, "", "مقالات ذات صلة", "", PARAGRAPH_2]


@pytest.mark.parametrize(
    "lines",
    [
        [PARAGRAPH_1, BODY_MENTIONING_CHROME, PARAGRAPH_2],
        [PARAGRAPH_1, PARAGRAPH_2, BODY_MENTIONING_CHROME],
        [BODY_MENTIONING_CHROME, PARAGRAPH_1],
    ],
    ids=["middle", "end", "start"],
)
def test_strip_chrome_keeps_body_line_that_mentions_a_phrase(lines):
    assert strip_chrome(lines) == lines


# --- repeated_edge_lines ----------------------------------------------------------------

SITE_FOOTER = "تابعوا آخر الأخبار على موقعنا"
RARE_LINE = "تعرفوا على عروض شريكنا الجديد"
HEADLINES = ["الحكومة تصادق على مشروع القانون", "ارتفاع أسعار الوقود في الأسواق",
             "المنتخب يفوز في مباراة ودية", "أمطار غزيرة تضرب شمال البلاد",
             "افتتاح معرض الكتاب بالعاصمة", "انطلاق الموسم الفلاحي الجديد"]


def _site_documents():
    documents = []
    for index, headline in enumerate(HEADLINES):
        lines = [headline, "", f"{headline} حسب ما أفاد به مصدر مطلع."]
        if index < 2:
            lines += ["", RARE_LINE]
        if index < 5:
            lines += ["", SITE_FOOTER]
        documents.append(lines)
    return documents


def test_repeated_edge_lines_learns_a_footer_most_documents_end_with():
    documents = _site_documents()
    learned = repeated_edge_lines(documents)
    assert is_chrome(SITE_FOOTER, learned) is True
    assert strip_chrome(documents[0], learned) == [*documents[0][:3], "", RARE_LINE]


def test_repeated_edge_lines_ignores_a_line_only_two_documents_share():
    learned = repeated_edge_lines(_site_documents())
    assert is_chrome(RARE_LINE, learned) is False
    assert is_chrome(RARE_LINE) is False


def test_a_learned_footer_is_not_chrome_without_the_site_lines():
    assert is_chrome(SITE_FOOTER) is False


# --- clean_article ----------------------------------------------------------------------

WHEN = datetime(2025, 5, 8, 10, 30, 15, 987654, tzinfo=UTC)
LONG_BODY = " ".join(
    ["قاد المدير العام للأمن الوطني وفدا أمنيا رفيع المستوى إلى العاصمة النمساوية فيينا."] * 12
)


def _article(**changes):
    fields = dict(source="test", key="k", title="خبر عاجل", content_html=f"<p>{LONG_BODY}</p>",
                  summary="", language="ar", published=WHEN, updated=WHEN)
    return Article(**{**fields, **changes})


def test_clean_article_removes_control_characters_from_title_and_body():
    article = _article(title="خبر\x00 \u202bعاجل\x85", content_html="<p>نص\x0b عربي\u202e</p>")
    cleaned = clean_article(article)
    assert cleaned.title == "خبر عاجل"
    assert cleaned.content_html == "<p>نص عربي</p>"


def test_clean_article_sanitizes_html():
    article = _article(content_html='<p onclick="x()">نص</p><script>alert(1)</script>')
    assert clean_article(article).content_html == "<p>نص</p>"


@pytest.mark.parametrize(
    ("body", "language"),
    [
        (LONG_BODY, "ar"),
        ("Le ministre de l'Intérieur a annoncé mardi de nouvelles mesures de sécurité "
         "pour les grandes villes du pays.", "fr"),
    ],
)
def test_clean_article_detects_language_when_empty(body, language):
    assert clean_article(_article(language="", content_html=f"<p>{body}</p>")).language == language


@pytest.mark.parametrize(
    ("declared", "body", "language"),
    [
        ("en", LONG_BODY, "ar"),  # a wrong declaration: the letters are right to left
        ("fa", LONG_BODY, "fa"),  # same direction: the publisher's finer choice stands
        ("ar", "The minister announced new measures on Tuesday to strengthen security "
               "in the country's largest cities.", "en"),
        ("ar", "2026 - 11 - 29", "ar"),  # no letters: nothing contradicts the declaration
    ],
)
def test_clean_article_checks_a_declared_language_against_the_letters(declared, body, language):
    article = _article(language=declared, title="", content_html=f"<p>{body}</p>")
    assert clean_article(article).language == language


def test_clean_article_keeps_a_given_language_in_canonical_form():
    assert clean_article(_article(language="AR-ma")).language == "ar-MA"


def test_clean_article_fills_summary_from_body_text():
    summary = clean_article(_article()).summary
    assert 0 < len(summary) <= 280
    assert summary.startswith("قاد المدير العام للأمن الوطني")
    assert "<" not in summary


def test_clean_article_summary_of_short_body_is_the_whole_text():
    assert clean_article(_article(content_html="<p>نص</p> <p>قصير</p>")).summary == "نص قصير"


def test_clean_article_truncates_datetimes_to_whole_seconds():
    cleaned = clean_article(_article())
    assert cleaned.published == datetime(2025, 5, 8, 10, 30, 15, tzinfo=UTC)
    assert cleaned.updated == datetime(2025, 5, 8, 10, 30, 15, tzinfo=UTC)
