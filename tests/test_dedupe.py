"""Deduplication: each layer, the index's lifecycle (restart, window, updates), edge cases."""

from __future__ import annotations

import random
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest

from feeds.dedupe import (
    _COMBINING,
    NearDuplicateIndex,
    Signature,
    Thresholds,
    _Text,
    canonical_url,
    containment,
    decide,
    explain,
    normalize_text,
    prepare,
    shingle_hashes,
    signature,
    similarity,
    text_fingerprint,
)
from feeds.text import _fold_characters, fold

T0 = datetime(2026, 11, 1, 8, tzinfo=UTC)
_TEXT = (
    "أعلنت وزارة الداخلية المغربية اليوم عن تفكيك خلية إرهابية تنشط في مدن طنجة وفاس "
    "ومكناس وقال المكتب المركزي للأبحاث القضائية إن العملية جاءت بعد أشهر من التحريات "
    "الدقيقة بتنسيق مع المديرية العامة لمراقبة التراب الوطني وأضاف البلاغ أن المشتبه بهم "
    "كانوا يخططون لتنفيذ هجمات تستهدف منشآت حيوية وشخصيات عامة وقد حجزت المصالح الأمنية "
    "أسلحة بيضاء ومواد كيميائية ووثائق تتضمن تعليمات لصناعة المتفجرات كما أكد المسؤول أن "
    "التحقيقات ما زالت جارية لكشف امتداداتها المحتملة داخل المملكة وخارجها وأشاد خبراء "
    "بالمقاربة الاستباقية التي تعتمدها السلطات منذ سنوات في مكافحة التطرف والجريمة "
    "المنظمة وفي سياق متصل عقد مجلس النواب جلسة لمناقشة مشروع قانون المالية والميزانية "
    "السنوية للقطاعات الاجتماعية والتعليم والصحة والتشغيل والاستثمار في البنية التحتية "
    "والطرق السيارة"
)
VOCABULARY = tuple(_TEXT.split())
NAMES = ("عبد اللطيف حموشي", "الرباط", "المكتب المركزي للأبحاث القضائية")


def article(seed: int, words: int = 250, names: bool = False) -> str:
    """A deterministic Arabic text: random words of the vocabulary, names every 40 words."""
    rng = random.Random(seed)
    out = []
    for i in range(words):
        out.append(rng.choice(VOCABULARY))
        if names and i % 40 == 0:
            out.append(rng.choice(NAMES))
        if i % 17 == 16:
            out[-1] += "."
    return " ".join(out)


def edit(text: str, share: float, seed: int) -> str:
    """`share` of the words replaced, dropped or doubled, as a rewriting desk would."""
    rng = random.Random(seed)
    words = text.split()
    for i in rng.sample(range(len(words)), round(len(words) * share)):
        words[i] = rng.choice(("", "وقال", f"{words[i]} {words[i]}", "الحكومة"))
    return " ".join(w for w in words if w)


# --- URLs -------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", [
    "https://www.hespress.com/politique/12345.html",
    "http://hespress.com/politique/12345.html",
    "HTTPS://WWW.HESPRESS.COM:443/politique/12345.html#comments",
    "https://www.hespress.com/politique/12345.html/",
    "https://www.hespress.com/politique/12345.html?utm_source=rss&utm_medium=feed",
    "https://www.hespress.com/politique/12345.html?fbclid=IwAR0x&gclid=abc&mc_cid=1",
    "https://amp.hespress.com/politique/12345.html",
    "https://www.hespress.com/amp/politique/12345.html",
    "https://www.hespress.com/politique/12345.html/amp/",
    "https://www.hespress.com/politique/12345.html?amp=1",
    "https://www.hespress.com/politique/12345.html?outputType=amp",
])
def test_url_variants_of_one_page_compare_equal(variant: str) -> None:
    assert canonical_url(variant) == "https://hespress.com/politique/12345.html"


def test_url_keeps_what_addresses_the_article() -> None:
    a = canonical_url("https://news.example/story?id=17&utm_campaign=x")
    b = canonical_url("https://news.example/story?id=18")
    assert a == "https://news.example/story?id=17"
    assert a != b
    assert canonical_url("https://x.example/a?b=2&a=1") == canonical_url("https://x.example/a?a=1&b=2")
    assert canonical_url("http://example.com:8080/a") == "https://example.com:8080/a"
    arabic = "https://www.alarabiya.net/ar/2018/02/27/المغني-إد-شيران.html"
    encoded = "https://alarabiya.net/ar/2018/02/27/%D8%A7%D9%84%D9%85%D8%BA%D9%86%D9%8A-" \
              "%D8%A5%D8%AF-%D8%B4%D9%8A%D8%B1%D8%A7%D9%86.html?utm_source=twitter"
    assert canonical_url(arabic) == canonical_url(encoded)
    # "amp" inside a word is not an AMP marker
    assert canonical_url("https://x.example/campaign/lamp") == "https://x.example/campaign/lamp"


# --- Text -------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b"), [
    ("الأخبار العاجلة", "الاخبار العاجله"),  # hamza on alef, ta marbuta
    ("مُصْطَفَى", "مصطفي"),  # tashkeel, alef maqsura
    ("إعلان آخر", "اعلان اخر"),
    ("الســـلام", "السلام"),  # tatweel
    ("عام ٢٠٢٦ و۱۴", "عام 2026 و14"),  # Arabic-Indic and Persian digits
    ("قال: «نعم»، ثم؟", "قال نعم ثم"),  # Arabic and Latin punctuation
    ("ﻻ", "لا"),  # presentation form (NFKC)
    ("L'Élysée a DÉCIDÉ", "l elysee a decide"),  # French case and accents
    ("The U.S.  President", "the u s president"),
])
def test_normalize_text_folds_spelling_variants(a: str, b: str) -> None:
    assert normalize_text(a) == normalize_text(b)
    assert text_fingerprint(a) == text_fingerprint(b)


def test_fold_by_table_is_the_plain_fold_for_every_character_and_mixed_text() -> None:
    """feeds.text.fold's table, made for dedupe's speed; test_text.py has fold's own cases."""
    rng = random.Random(7)
    pool = [chr(c) for c in range(0x20, 0x700)] + [*"ΣσςİIi\u0307ﻻ﷽ﷺ𝐀😀\u00a0\ud800"]
    texts = [chr(c) for c in range(0x10000)] + [
        "".join(rng.choices(pool, k=rng.randint(0, 40))) for _ in range(5000)]
    for text in texts:
        assert fold(text) == _fold_characters(unicodedata.normalize("NFKC", text)), repr(text)


def test_fingerprint_differs_for_different_words() -> None:
    assert text_fingerprint("قال الوزير") != text_fingerprint("قال الرئيس")
    assert text_fingerprint("  ،. ") == ""


def test_exact_text_layer_names_the_first_copy() -> None:
    text = article(1)
    varied = "«" + text.replace("أ", "ا").replace(" ", "  ") + "»"
    kept = prepare("https://a.example/1", text)
    verdict = decide(prepare("https://b.example/9", varied), fingerprints={kept.fingerprint: "A"})
    assert verdict == decide(prepare(None, varied), fingerprints={kept.fingerprint: "A"})
    assert (verdict.duplicate_of, verdict.layer) == ("A", "text")


# --- Near-duplicates --------------------------------------------------------------------

def test_signature_round_trips_through_compact_bytes() -> None:
    sig = signature(article(2))
    data = sig.to_bytes()
    assert len(data) == 260
    assert Signature.from_bytes(data) == sig
    assert signature(article(2)) == sig  # stable hashing: same text, same bytes


def test_shingles_hash_the_same_wherever_they_are_in_a_text_of_any_length() -> None:
    short = normalize_text(article(3, words=40))
    long = normalize_text(" ".join(["كلمة"] * 20_000 + [short]))  # past 64K characters
    assert set(shingle_hashes(short).tolist()) <= set(shingle_hashes(long).tolist())


def test_three_percent_edits_are_near_duplicates() -> None:
    original, copy = article(3), edit(article(3), 0.03, seed=1)
    index = NearDuplicateIndex()
    index.add("A", T0, signature(original))
    verdict = decide(prepare(None, "عنوان جديد\n" + copy), index)
    assert (verdict.duplicate_of, verdict.layer) == ("A", "near")
    assert verdict.similarity > 0.6


def test_prefix_or_summary_is_contained() -> None:
    original = article(4, words=400)
    lead = " ".join(original.split()[:150])
    a, b = signature(lead), signature(original)
    assert similarity(a, b) < 0.6  # symmetric similarity alone would miss it
    assert containment(a, b) > 0.8 > containment(b, a)
    index = NearDuplicateIndex()
    index.add("A", T0, b)
    verdict = index.best_match(a)
    assert verdict.duplicate_of == "A" and verdict.containment > 0.8
    # and the other way: the full text arriving after its summary
    index = NearDuplicateIndex()
    index.add("S", T0, a)
    assert index.best_match(b).duplicate_of == "S"


def test_different_articles_sharing_names_are_not_duplicates() -> None:
    index = NearDuplicateIndex()
    index.add("A", T0, signature(article(5, names=True)))
    verdict = decide(prepare(None, article(6, names=True)), index)
    assert verdict.duplicate_of is None
    facts = explain(article(5, names=True), article(6, names=True))
    assert not facts["near_duplicate"] and facts["similarity"] < 0.3


def test_short_texts_need_stronger_evidence() -> None:
    short = "أعلنت وزارة الداخلية المغربية تفكيك خلية إرهابية في طنجة وفاس ومكناس اليوم"
    # 8 of 12 shingles shared: a Jaccard of 0.67, 3 standard errors of 64 minima from 0.85
    other = "وأعلنت وزارة الداخلية المغربية تفكيك خلية إرهابية في طنجة وفاس ومكناس أمس"
    facts = explain(short, other)
    assert 0.5 <= facts["similarity"] < Thresholds().short_similarity
    assert not facts["near_duplicate"]  # a long text this close would be a duplicate
    assert Thresholds().accepts(facts["similarity"], 0.9, 300, 300)
    assert explain(short, short + ".")["near_duplicate"]


def test_french_and_english_near_duplicates() -> None:
    text = ("Le président a reçu mercredi à l'Élysée le roi du Maroc pour un dîner d'État. "
            "Les deux chefs d'État ont évoqué la coopération économique, la sécurité au Sahel "
            "et les échanges universitaires entre les deux pays. Plusieurs accords seront "
            "signés jeudi à Rabat, notamment dans l'énergie et le ferroviaire, avant une "
            "conférence de presse commune au palais royal en fin de journée.")
    copy = text.upper().replace("É", "E").replace("mercredi", "MERCREDI SOIR")
    assert explain(text, copy)["near_duplicate"]
    other = ("Le président a annoncé mercredi à l'Élysée une réforme des retraites présentée "
             "au Conseil des ministres le mois prochain, avec un report progressif de l'âge "
             "légal et une hausse des pensions minimales selon la première ministre.")
    assert not explain(text, other)["near_duplicate"]


# --- The index's lifecycle --------------------------------------------------------------

def filled_index(count: int = 60) -> tuple[NearDuplicateIndex, list[tuple[str, datetime, bytes]]]:
    index = NearDuplicateIndex(window=timedelta(days=14), merge_every=16)  # merged and pending
    rows = []
    for i in range(count):
        sig = signature(article(100 + i))
        published = T0 + timedelta(hours=6 * i)
        index.add(f"id{i}", published, sig)
        rows.append((f"id{i}", published, sig.to_bytes()))
    return index, rows


def test_rebuild_from_signature_bytes_gives_the_same_answers() -> None:
    index, rows = filled_index()
    rebuilt = NearDuplicateIndex.from_signatures(reversed(rows), window=timedelta(days=14))
    assert len(rebuilt) == len(index) and not rebuilt._pending and index._pending
    for i in range(0, 60, 7):
        query = signature(edit(article(100 + i), 0.05, seed=i))
        assert rebuilt.candidates(query) == index.candidates(query)
        assert rebuilt.best_match(query) == index.best_match(query)
        assert index.best_match(query).duplicate_of == f"id{i}"


def test_window_expiry_bounds_the_index() -> None:
    index, _ = filled_index()
    gone = index.expire(T0 + timedelta(days=20))
    assert gone == 24 and len(index) == 36  # published in the first 6 days left
    assert index.best_match(signature(article(100))).duplicate_of is None
    assert index.best_match(signature(article(159))).duplicate_of == "id59"
    slots = len(index._ids)
    for i in range(24):  # freed slots are reused: memory stays flat
        index.add(f"new{i}", T0 + timedelta(days=21), signature(article(500 + i)))
    assert len(index._ids) == slots
    capped = NearDuplicateIndex(max_articles=5)
    for i in range(8):
        capped.add(f"c{i}", T0 + timedelta(hours=i), signature(article(200 + i)))
    assert len(capped) == 5 and "c0" not in capped and "c7" in capped


def test_an_edit_by_its_own_source_is_an_update_not_a_duplicate() -> None:
    index = NearDuplicateIndex()
    first = article(7)
    index.add("A", T0, signature(first))
    edited = prepare("https://a.example/7", edit(first, 0.03, seed=2))
    assert decide(edited, index, article_id="A").duplicate_of is None
    assert decide(edited, index, article_id="B").duplicate_of == "A"
    index.add("A", T0, edited.signature)  # replaced, not added twice
    assert len(index) == 1 and index.candidates(edited.signature) == ["A"]
    index.add("A", T0, signature(article(8)))
    assert index.best_match(edited.signature).duplicate_of is None
    assert index.remove("A") and not index.remove("A") and len(index) == 0
    assert index.candidates(edited.signature) == []


def test_url_layer_comes_first_and_skips_its_own_id() -> None:
    kept = "https://www.example.com/a/1"
    urls = {canonical_url(kept): "A"}
    incoming = prepare("http://example.com/a/1/?utm_source=x", "نص مختلف تماما")
    assert decide(incoming, urls=urls) == decide(incoming, urls=urls, article_id="B")
    assert decide(incoming, urls=urls).layer == "url"
    assert decide(incoming, urls=urls, article_id="A").duplicate_of is None


def test_empty_text_is_never_a_near_duplicate() -> None:
    index = NearDuplicateIndex()
    index.add("E", T0, signature(""))
    assert len(index) == 0
    assert decide(prepare(None, " . "), index) .duplicate_of is None


def test_corpus_pairs_when_the_shared_corpus_is_present() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import dedupe_eval

    reason = dedupe_eval.corpus_missing()
    if reason:
        pytest.skip(reason)
    docs = dedupe_eval.load_articles()[:40]
    rng = random.Random(3)
    index = NearDuplicateIndex()
    for doc in docs:
        index.add(doc.id, T0, signature(doc.text))
    found = []
    for doc in docs[:20]:
        if len(doc.text.split()) >= 150:
            found += [index.best_match(signature(pair.b.text)).duplicate_of == doc.id
                      for pair in dedupe_eval.positives(doc, rng) if pair.layer == "near"]
    assert len(found) >= 20 and sum(found) >= 0.95 * len(found)  # the target recall


def _the_long_way(text: str) -> tuple[str, bytes] | str:
    """normalize and shingles by their definition: fold, Latin letters unaccented, words
    found on the folded text (what _Text did before its one-table path)."""
    try:
        folded = fold(text)
        if any(0xC0 <= ord(c) < 0x280 for c in folded):
            folded = _COMBINING.sub("", unicodedata.normalize("NFKD", folded))
        words = _Text(folded, folded=True)
        return words.normal(), words.shingles().tobytes()
    except ValueError as exc:
        return type(exc).__name__


def _the_table_path(text: str) -> tuple[str, bytes] | str:
    try:
        words = _Text(text)
        return words.normal(), words.shingles().tobytes()
    except ValueError as exc:
        return type(exc).__name__


def test_every_bmp_character_normalizes_as_the_long_way_does():
    """Stored fingerprints and signatures depend on it: the one-table path of _Text must
    give what folding, unaccenting and finding words one after the other give."""
    differ = [hex(code) for code in range(0x10000)
              if _the_table_path(text := f" {chr(code)}\u0640 كلمةa{chr(code)}b c")
              != _the_long_way(text)]
    assert differ == []
