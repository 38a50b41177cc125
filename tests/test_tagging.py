"""feeds.tagging: rules over Arabic-aware terms, gazetteer entities, scores and explain."""

import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.clean import clean_article
from feeds.config import load_settings
from feeds.model import Article, EntityRef, Rule, Topic
from feeds.seedfiles import SeedProblem, scan_folder
from feeds.tagging import TITLE_WEIGHT, Entity, Tagger, _gazetteer, gazetteer

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
WHEN = datetime(2025, 5, 8, tzinfo=UTC)


def _topic(slug, *terms, min_score=1, rule=None):
    return Topic(slug=slug, language="ar", titles={"ar": slug}, descriptions={"ar": slug},
                 terms=terms, min_score=min_score, rule=rule)


def _article(title="خبر", body="نص", topics=()):
    return Article(source="test", key=title + body, title=title, content_html=f"<p>{body}</p>",
                   summary="", language="ar", published=WHEN, updated=WHEN, topics=topics)


def _score(term, body, title="خبر"):
    """The score of a one-term topic on an article, with no gazetteer."""
    found = Tagger((_topic("t", term),), entities={}).scores(_article(title, body))
    return found["t"].score if "t" in found else 0


def _scan_articles(folder):
    items = list(scan_folder(folder, {}, 2_000_000).articles())
    assert not [item for item in items if isinstance(item, SeedProblem)]
    return items


# --- the shipped seed with the default topics and gazetteer -------------------------------


@pytest.fixture(scope="module")
def seed_tags():
    (article,) = _scan_articles(SEEDS)
    return Tagger(load_settings(None).topics).tag(clean_article(article)).topics


@pytest.mark.parametrize("tag", [
    "security", "terrorism", "morocco", "person:abdellatif-hammouchi", "place:vienna",
    "org:un", "org:isis", "org:al-qaeda", "org:interpol",
])
def test_shipped_seed_is_tagged(seed_tags, tag):
    assert tag in seed_tags


@pytest.mark.parametrize("slug", ["economy", "sports"])
def test_shipped_seed_is_not_tagged(seed_tags, slug):
    assert slug not in seed_tags


# --- normalization, clitics, suffixes ----------------------------------------------------


@pytest.mark.parametrize(
    ("term", "word"),
    [
        ("الأمن", "الأمن"),
        ("الأمن", "والأمن"),
        ("المغرب", "بالمغرب"),
        ("المغرب", "وبالمغرب"),
        ("الإرهاب", "للإرهاب"),
        ("الإرهاب", "فللإرهاب"),
        ("الإرهاب", "الإرهابية"),
        ("الإرهاب", "الإرهابيين"),
        ("إرهابي", "والإرهابيون"),
        ("الإرهاب", "الإِرْهَاب"),  # tashkeel
        ("الإرهاب", "الإرهـــاب"),  # tatweel
        ("خلية", "خليه"),  # ta marbuta
        ("مستشفى", "مستشفي"),  # alef maqsura
        ("sécurité", "SECURITE"),  # accents and case
        ("terrorist", "terrorists"),
    ],
)
def test_term_matches_folded_clitic_and_suffixed_forms(term, word):
    assert _score(term, f"تحدث المسؤول عن {word} اليوم") == 1


@pytest.mark.parametrize(
    ("term", "text"),
    [
        ("الأمن", "وصل القطار في اليوم الثامن"),
        ("فاس", "اعتقال مسؤول فاسد"),
        ("ISIS", "the crisis deepens"),
        ("police", "a policeman spoke"),
        ("UN", "un homme est arrivé"),
    ],
    ids=["amn-in-thamin", "fas-in-fasid", "isis-in-crisis", "police-in-policeman",
         "un-in-lowercase"],
)
def test_term_does_not_match_inside_an_unrelated_word(term, text):
    assert _score(term, text) == 0


def test_a_term_in_capitals_matches_only_in_capitals():
    assert _score("UN", "le Conseil de sécurité de l'UN a voté") == 1
    assert _score("UN", "un vote") == 0


# --- phrases -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "text", "score"),
    [
        ("مراقبة التراب الوطني", "مدير ومراقبة التراب الوطني", 1),
        ("مراقبة التراب الوطني", "مراقبة التراب", 0),
        ("خلية إرهابية", "تفكيك خلية إرهابية", 1),
        ("خلية إرهابية", "أعضاء الخلية الإرهابية", 1),  # definite: ال on every word
        ("خلية إرهابية", "أعضاء للخلية الإرهابية", 1),
        ("خلية إرهابية", "خلية نائمة إرهابية", 0),  # a word in between
        ("الأمم المتحدة", "تقرير للأمم المتحدة", 1),
        ("Nations unies", "les Nations Unies ont", 1),
    ],
)
def test_phrases_match_across_clitics_and_definiteness(phrase, text, score):
    assert _score(phrase, text) == score


def test_a_phrase_does_not_span_the_title_and_the_body():
    assert _score("خلية إرهابية", title="تفكيك خلية", body="إرهابية في طنجة") == 0


# --- boolean rules -----------------------------------------------------------------------

TERROR = Rule("all", (
    Rule("any", ("الإرهاب", Rule("all", ("خلية", "تفكيك")))),
    Rule("none", ("حرب النجوم",)),
))


@pytest.mark.parametrize(
    ("body", "tagged"),
    [
        ("حديث عن الإرهاب", True),  # any: the first part
        ("تفكيك خلية في طنجة", True),  # any: the nested all
        ("خلية نحل في طنجة", False),  # all: only one of two
        ("الإرهاب في فيلم حرب النجوم", False),  # none vetoes
        ("خبر عادي", False),
    ],
)
def test_rules_combine_any_all_none_and_nesting(body, tagged):
    tagger = Tagger((_topic("terror", rule=TERROR),), entities={})
    assert tagger.tag(_article(body=body)).topics == (("terror",) if tagged else ())


def test_an_all_rule_scores_the_words_of_every_part():
    tagger = Tagger((_topic("t", rule=Rule("all", ("خلية", "تفكيك"))),), entities={})
    assert tagger.scores(_article("تفكيك خلية", "الخلية"))["t"].score == 5


def test_a_word_counts_once_however_many_terms_it_holds():
    tagger = Tagger((_topic("t", "الإرهاب", "إرهابية"),), entities={})
    assert tagger.scores(_article(body="الإرهابية"))["t"].score == 1



# Random rules checked against the rule semantics written plainly: one-word Latin terms, so
# where a term matches is where the word is, and words count as the rules say.
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


def _random_rule(rng, depth=0):
    parts = tuple(_random_rule(rng, depth + 1) if depth < 2 and rng.random() < 0.3
                  else rng.choice(WORDS) for _ in range(rng.randint(0, 4)))
    return Rule(rng.choice(("any", "all", "none")), parts)


def _counting(rule, places):
    """The places (title or body, word index) of the words that count, or None when
    `rule` does not hold."""
    if isinstance(rule, str):
        return places.get(rule) or None
    found = [_counting(part, places) for part in rule.parts]
    held = [words for words in found if words is not None]
    if rule.op == "none":
        return None if held else set()
    if rule.op == "all" and (not found or len(held) < len(found)):
        return None
    return set().union(*held) if held else None


def _triggers(rule):
    if isinstance(rule, str):
        return {rule}
    return set() if rule.op == "none" else set().union(*map(_triggers, rule.parts))


def test_random_rules_score_and_tag_as_their_semantics_say():
    rng = random.Random(2026)
    for _ in range(300):
        topics = tuple(_topic(f"t{n}", rule=_random_rule(rng), min_score=rng.randint(1, 4))
                       for n in range(4))
        title, body = (" ".join(rng.choices((*WORDS, "zulu"), k=k)) for k in (3, 12))
        places = {}
        for part, text in (("title", title), ("body", body)):
            for index, word in enumerate(text.split()):
                places.setdefault(word, set()).add((part, index))
        expected, tagged = {}, []
        for topic in topics:
            words = _counting(topic.rule, places)
            score = sum(TITLE_WEIGHT if part == "title" else 1 for part, _ in words or ())
            if _triggers(topic.rule) & places.keys():
                expected[topic.slug] = (words is not None, score)
            if words is not None and score >= topic.min_score:
                tagged.append(topic.slug)
        tagger = Tagger(topics, entities={})
        article = _article(title, body)
        assert {slug: (found.held, found.score) for slug, found in
                tagger.scores(article).items()} == expected, (topics, title, body)
        assert tagger.tags(article) == tuple(tagged), (topics, title, body)

# --- title weighting and min_score -----------------------------------------------------


@pytest.mark.parametrize(
    ("title", "body", "score"),
    [
        ("المغرب يستضيف قمة", "نص", 2),
        ("خبر", "زيارة إلى المغرب", 1),
        ("خبر", "المغرب والمغرب", 2),
        ("المغرب يستضيف قمة", "وزار الوفد المغرب", 3),
        ("المغرب والمغرب", "المغرب", 5),
    ],
)
def test_title_matches_weigh_two_and_body_matches_one(title, body, score):
    assert _score("المغرب", body, title) == score


@pytest.mark.parametrize(
    ("title", "body", "tagged"),
    [
        ("المغرب يستضيف قمة", "نص", True),  # score 2
        ("خبر", "زيارة إلى المغرب", False),  # score 1
        ("خبر", "المغرب والمغرب", True),  # score 2
    ],
)
def test_min_score_decides(title, body, tagged):
    tagger = Tagger((_topic("morocco", "المغرب", min_score=2),), entities={})
    assert tagger.tag(_article(title, body)).topics == (("morocco",) if tagged else ())


def test_topics_named_by_the_article_are_kept():
    tagger = Tagger((_topic("sports", "مباراة", min_score=3), _topic("morocco", "المغرب")),
                    entities={})
    tagged = tagger.tag(_article("خبر", "المغرب", topics=("sports",)))
    assert tagged.topics == ("sports", "morocco")


def test_front_matter_topics_survive_tagging(tmp_path):
    (tmp_path / "a.txt").write_text(
        "---\ntopics: [sports]\n---\nخبر عادي\n\nنص بلا كلمات مفتاحية.\n", "utf-8"
    )
    (article,) = _scan_articles(tmp_path)
    tagged = Tagger(load_settings(None).topics).tag(clean_article(article))
    assert tagged.topics == ("sports",)


# --- entities ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "text"),
    [
        ("org:isis", "هجوم تبناه تنظيم داعش"),
        ("org:isis", "عناصر من الدولة الإسلامية"),
        ("org:isis", "بيان لتنظيم الدولة"),
        ("org:isis", "ISIS claimed the attack"),
        ("org:isis", "une cellule liée à Daech"),
        ("org:un", "تقرير الأمم المتحدة"),
        ("org:un", "a UN report"),
        ("org:un", "un rapport de l'ONU"),
        ("org:al-qaeda", "تنظيم القاعدة"),
        ("org:al-qaeda", "a cell of al-Qaeda"),
        ("org:interpol", "تقرير للإنتربول"),
        ("org:interpol", "selon Interpol"),
        ("org:dgst", "La DGST a annoncé"),
        ("org:dgsn", "المديرية العامة للأمن الوطني"),
        ("person:abdellatif-hammouchi", "استقبل عبد اللطيف حموشي"),
        ("person:abdellatif-hammouchi", "Abdellatif Hammouchi a reçu"),
        ("place:vienna", "وصل إلى فيينا"),
        ("place:vienna", "arrivé à Vienne"),
        ("place:vienna", "arrived in Vienna"),
        ("place:morocco", "عاد إلى المغرب"),
        ("place:morocco", "retour au Maroc"),
        ("place:rabat", "من الرباط"),
    ],
)
def test_entity_aliases_match_across_scripts_and_spellings(tag, text):
    assert tag in Tagger(()).tags(_article(body=text))


@pytest.mark.parametrize(
    ("tag", "text"),
    [
        ("org:al-qaeda", "بناء قاعدة عسكرية"),  # a name keeps its own article
        ("place:morocco", "الصادرات المغربية"),  # names take no suffixes
        ("org:un", "un rapport"),
        ("place:mali", "دعم مالي للمشروع"),  # "مالي" alone is dropped from the gazetteer
        ("place:el-aaiun", "مستشفى طب العيون"),
        ("place:dili", "صحيفة ديلي ميل"),
    ],
)
def test_entity_names_do_not_match_other_words(tag, text):
    assert tag not in Tagger(()).tags(_article(body=text))


def test_an_entity_inside_a_rule_brings_all_its_aliases():
    rule = Rule("any", (EntityRef("org:isis"), "إرهابي"))
    tagger = Tagger((_topic("terrorism", rule=rule, min_score=2),))
    tagged = tagger.tag(_article("Daech revendique", "une attaque"))
    assert tagged.topics[0] == "terrorism"
    assert "org:isis" in tagged.topics


def test_entity_tags_follow_the_topics_sorted():
    entities = {"place:b": Entity("place:b", "ب", ("فيينا",)),
                "org:a": Entity("org:a", "أ", ("الإنتربول",))}
    tagger = Tagger((_topic("t", "تقرير"),), entities=entities)
    assert tagger.tags(_article(body="تقرير للإنتربول في فيينا")) == ("t", "org:a", "place:b")


# --- the gazetteer -----------------------------------------------------------------------


def test_gazetteer_tags_fit_the_topic_column_and_have_aliases():
    entities = gazetteer()
    assert len(entities) > 800
    for tag, entity in entities.items():
        assert re.fullmatch(r"(person|place|org):[a-z0-9][a-z0-9-]*", tag) and len(tag) <= 64
        assert entity.aliases and entity.name == entity.aliases[0]


def test_gazetteer_has_countries_and_capitals_in_three_languages():
    entities = gazetteer()
    assert {"المغرب", "Maroc", "Morocco"} <= set(entities["place:morocco"].aliases)
    assert {"فيينا", "Vienne", "Vienna"} <= set(entities["place:vienna"].aliases)
    assert {"الرباط", "Rabat"} <= set(entities["place:rabat"].aliases)


@pytest.mark.parametrize(("tag", "arabic", "french", "english"), [
    ("org:un", "الأمم المتحدة", "Organisation des Nations unies", "United Nations"),
    ("place:morocco", "المغرب", "Maroc", "Morocco"),  # CLDR: a country
    ("place:vienna", "فيينا", "Vienne", "Vienna"),  # CLDR: a time-zone city
    ("place:malta", "مالطا", "Malte", "Malta"),  # a city named as its country: the country's
    ("place:tangier", "طنجة", "Tanger", "Tangier"),  # the row marks the English name
    ("place:algiers", "الجزائر العاصمة", "Alger", "Algiers"),  # CLDR's الجزائر dropped
    ("org:isis", "داعش", "Daech", "ISIS"),
    ("person:abdellatif-hammouchi", "عبد اللطيف حموشي", "Abdellatif Hammouchi",
     "Abdellatif Hammouchi"),  # no marks: the first name in each script
])
def test_entity_labels_are_names_in_the_feeds_language(tag, arabic, french, english):
    entity = gazetteer()[tag]
    assert [entity.label(language) for language in ("ar", "fr", "en")] == [arabic, french,
                                                                          english]
    assert entity.label("fr-CA") == french


def test_a_rows_mark_replaces_cldrs_label_and_a_dropped_alias_takes_its_label_along():
    entities = _gazetteer("place:vienna\tfr=Wien | -Vienna\norg:x\tإكس | X | en=Ex\n")
    vienna, x = entities["place:vienna"], entities["org:x"]

    assert [vienna.label(language) for language in ("ar", "fr", "en")] == [
        "فيينا", "Wien", "Vienne"]  # English: the first Latin alias left
    assert "Wien" in vienna.aliases and "Vienna" not in vienna.aliases
    assert [x.label(language) for language in ("ar", "fr", "en")] == ["إكس", "X", "Ex"]
    assert x.aliases == ("إكس", "X", "Ex")


def test_a_malformed_label_mark_names_its_line():
    with pytest.raises(ValueError, match=r"gazetteer.tsv line 2: .*fr=alias shown in French"):
        _gazetteer("org:x\tإكس\norg:y\tواي | en =Y\n")


def test_gazetteer_rows_drop_cldr_names_that_are_common_words():
    entities = gazetteer()
    assert "place:christmas" not in entities
    assert "مالي" not in entities["place:mali"].aliases
    assert "الجزائر" not in entities["place:algiers"].aliases


# --- explain -----------------------------------------------------------------------------


def test_explain_shows_rule_parts_words_places_and_scores():
    tagger = Tagger((_topic("terror", rule=TERROR, min_score=3),))
    lines = tagger.explain(_article("تفكيك خلية إرهابية", "قالت الأمم المتحدة إن الإرهاب يتراجع"))
    text = "\n".join(lines)
    assert "terror: tagged - rule holds, score 7, min_score 3" in text
    assert "'الإرهاب': title: ارهابيه; body: الارهاب" in text
    assert "'خلية': title: خليه" in text
    assert "none: holds" in text
    assert "org:un (الأمم المتحدة): body: الامم المتحده" in text


def test_explain_says_why_a_topic_is_not_tagged():
    tagger = Tagger((_topic("terror", rule=TERROR, min_score=3),), entities={})
    text = "\n".join(tagger.explain(_article("فيلم حرب النجوم", "عن الإرهاب")))
    assert "terror: not tagged - rule does not hold, score 0" in text
    assert "'حرب النجوم': title: حرب النجوم" in text
