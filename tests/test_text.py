"""feeds.text: RTL labels, XML-safe text, language tags and detection, Arabic folding."""

import unicodedata

import pytest

from feeds.text import (
    RLM,
    canonical_language,
    detect_language,
    direction,
    fold,
    is_rtl_language,
    label_for,
    rtl_label,
    written_direction,
    xml_safe,
)

EMBEDDING_CONTROLS = {chr(c) for c in range(0x202A, 0x202F)}

# --- rtl_label / label_for -------------------------------------------------------------

NEEDS_RLM = [
    "BCIJ يفكك خلية إرهابية",
    "CNN: انفجار في العاصمة",
    "iPhone جديد في الأسواق المغربية",
    "«داعش» يتبنى الهجوم",
    "- خبر عاجل",
]
ALREADY_RTL = [
    "المغرب يعزز دوره العالمي في مكافحة الإرهاب",
    "2025: عام الأمن السيبراني",
    "10 قتلى في هجوم",
    "٢٠٢٥: عام جديد",
]


@pytest.mark.parametrize("title", NEEDS_RLM)
def test_rtl_label_prefixes_rlm_when_title_opens_latin_or_with_punctuation(title):
    assert rtl_label(title) == RLM + title


@pytest.mark.parametrize("title", ALREADY_RTL)
def test_rtl_label_leaves_titles_opening_rtl_unchanged(title):
    assert rtl_label(title) == title


@pytest.mark.parametrize("title", NEEDS_RLM)
def test_label_for_rtl_language_prefixes_rlm(title):
    assert label_for(title, "ar") == RLM + title


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("title", NEEDS_RLM + ALREADY_RTL)
def test_label_for_ltr_language_never_adds_rlm(title, language):
    assert label_for(title, language) == title


@pytest.mark.parametrize("language", ["ar", "fa", "he", "en"])
@pytest.mark.parametrize("title", NEEDS_RLM + ALREADY_RTL)
def test_labels_never_contain_embedding_or_override_controls(title, language):
    assert not EMBEDDING_CONTROLS & set(label_for(title, language))


# --- xml_safe ---------------------------------------------------------------------------

FORBIDDEN = [
    "\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1f",  # XML 1.0
    "\x80", "\x85", "\x9f",  # C1 controls
    "\ufdd0", "\ufdef", "\ufffe", "\uffff", "\U0001fffe", "\U0001ffff", "\U0010ffff",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",  # embeddings and overrides
]
KEPT = ["\t", "\n", "\r", "\u200c", "\u200d", "\u200f", "\u061c"]


@pytest.mark.parametrize("char", FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_xml_safe_removes_forbidden_characters(char):
    assert xml_safe(f"خبر{char}عاجل") == "خبرعاجل"


@pytest.mark.parametrize("char", KEPT, ids=lambda c: f"U+{ord(c):04X}")
def test_xml_safe_keeps_whitespace_joiners_and_rtl_marks(char):
    assert xml_safe(f"خبر{char}عاجل") == f"خبر{char}عاجل"


@pytest.mark.parametrize(
    ("decomposed", "composed"),
    [("e\u0301te\u0301", "\u00e9t\u00e9"), ("\u0627\u0653", "\u0622")],
)
def test_xml_safe_output_is_nfc(decomposed, composed):
    assert xml_safe(decomposed) == composed


@pytest.mark.parametrize("removed", ["\x00", "\u202b", "\ufffe"], ids=repr)
def test_xml_safe_output_is_nfc_after_removing_a_character_between_base_and_mark(removed):
    result = xml_safe(f"e{removed}\u0301")
    assert result == "\u00e9"
    assert unicodedata.is_normalized("NFC", result)


# --- language tags ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "canonical"),
    [("ar", "ar"), ("AR-ma", "ar-MA"), ("ckb", "ku-Arab"), ("iw", "he"), ("fa-IR", "fa-IR")],
)
def test_canonical_language(tag, canonical):
    assert canonical_language(tag) == canonical


@pytest.mark.parametrize(
    "tag", ["ar", "fa", "ur", "he", "ps", "sd", "ug", "yi", "dv", "ku-Arab", "ckb", "ar-MA"]
)
def test_rtl_languages(tag):
    assert is_rtl_language(tag) is True
    assert direction(tag) == "rtl"


@pytest.mark.parametrize("tag", ["en", "fr", "ku", "ku-Latn"])
def test_ltr_languages(tag):
    assert is_rtl_language(tag) is False
    assert direction(tag) == "ltr"


# --- detect_language --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("قادت المديرية العامة للأمن الوطني وفدا أمنيا رفيع المستوى إلى العاصمة النمساوية "
         "فيينا للمشاركة في اجتماع إقليمي حول مكافحة الإرهاب.", "ar"),
        ("این یک متن فارسی است که درباره اخبار ایران و جهان نوشته شده است و "
         "خوانندگان می‌توانند آن را بخوانند.", "fa"),
        ("یہ ایک اردو متن ہے جو پاکستان کی خبروں کے بارے میں لکھا گیا ہے اور "
         "قارئین اسے پڑھ سکتے ہیں۔", "ur"),
        ("זהו טקסט בעברית על החדשות בישראל ובעולם, והקוראים יכולים לקרוא אותו.", "he"),
        ("Le ministre a annoncé mardi de nouvelles mesures pour renforcer la sécurité "
         "dans les grandes villes du pays.", "fr"),
        ("The minister announced new measures on Tuesday to strengthen security in the "
         "country's largest cities.", "en"),
    ],
)
def test_detect_language(text, language):
    assert detect_language(text) == language


@pytest.mark.parametrize("default", ["und", "ar"])
@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_detect_language_of_empty_text_is_the_default(text, default):
    assert detect_language(text, default) == default


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BCIJ تفكك خلية إرهابية في طنجة", "rtl"),  # a Latin word first, Arabic mostly
        ("Tangier: الأمن", "ltr"),
        ("זהו טקסט בעברית", "rtl"),
        ("Привет, мир", "ltr"),
        ("2026-11-29 !!", None),
        ("", None),
        ("\ud800 عربي", "rtl"),  # a lone surrogate does not break the count
    ],
)
def test_written_direction_counts_strong_characters(text, expected):
    assert written_direction(text) == expected


def test_written_direction_reads_only_the_opening():
    assert written_direction("abc " * 100 + "عربي " * 200) == "ltr"


# --- fold -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("مُحَمَّدٌ", "محمد"),  # tashkeel
        ("مـــصر", "مصر"),  # tatweel
        ("أ إ آ ٱ", "ا ا ا ا"),  # alef variants
        ("مستشفى", "مستشفي"),  # alef maqsura
        ("مدرسة", "مدرسه"),  # ta marbuta
        ("٠١٢٣٤٥٦٧٨٩", "0123456789"),  # Arabic-Indic digits
        ("۰۱۲۳۴۵۶۷۸۹", "0123456789"),  # Persian digits
        ("BCIJ Police", "bcij police"),  # Latin lowercased
        ("الإرهابيّة", "الارهابيه"),
    ],
)
def test_fold(text, folded):
    assert fold(text) == folded
