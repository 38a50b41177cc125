"""Tagging throughput: the rule engine (50 topics, 2,000 gazetteer entities) on 300-word
Arabic articles, beside bare Aho-Corasick over the same folded texts, one core.

Articles are real news from ../shared/corpus (the ANT multi-source set: each title with
300 words of running text), or, without the corpus, text from the shipped seed's words.
Topics: the 6 shipped ones plus 44 generated ones, each with 12 topical words (found in
0.5-5% of the articles), 3 words from elsewhere, a nested `all` of two words, a `none` of
two and 3 entities. The gazetteer: the shipped one, padded with generated names to 2,000.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import ahocorasick
from corpus import TextMaker, load_words, pin_to_one_core

from feeds.clean import plain_text
from feeds.config import load_settings
from feeds.dedupe import normalize_text
from feeds.model import Article, EntityRef, Rule, Topic
from feeds.tagging import Entity, Tagger, gazetteer

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
CORPUS = (Path(__file__).resolve().parents[2] / "shared" / "corpus" / "articles"
          / "ant-multisource-2018-02-27_03-12" / "articles.jsonl")
ARABIC = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
# Common news words that are not in the seed, so generated topics also hold terms that
# rarely or never match, as real topic lists do.
OTHER_WORDS = ("الانتخابات", "البرلمان", "الحكومة", "الصحة", "التعليم", "الفلاحة", "السياحة",
               "الطاقة", "المناخ", "الجفاف", "الماء", "السكن", "النقل", "الطيران", "الموانئ",
               "الثقافة", "السينما", "المهرجان", "الجامعة", "الطلبة", "النقابة", "الإضراب",
               "الأسعار", "الضرائب", "الديون", "البنوك", "الفوسفاط", "المعادن", "الصيد البحري",
               "الهجرة السرية", "حقوق الإنسان", "حرية الصحافة", "العدالة", "المحكمة", "السجن")


def topics(count: int, vocabulary: list[str], entity_tags: list[str], rng: random.Random
           ) -> tuple[Topic, ...]:
    """The shipped topics, then generated ones up to `count`."""
    shipped = load_settings(None).topics
    made = []
    for n in range(count - len(shipped)):
        terms = rng.sample(vocabulary, 12) + rng.sample(OTHER_WORDS, 3)
        nested = Rule("all", tuple(rng.sample(vocabulary, 2)))
        veto = Rule("none", tuple(rng.sample(OTHER_WORDS, 2)))
        entities = tuple(EntityRef(t) for t in rng.sample(entity_tags, 3))
        rule = Rule("all", (Rule("any", (*terms, nested, *entities)), veto))
        made.append(Topic(slug=f"topic-{n}", language="ar", titles={"ar": f"موضوع {n}"},
                          descriptions={"ar": "موضوع"}, rule=rule, min_score=3))
    return shipped + tuple(made)


def topical_words(texts: list[tuple[str, str]]) -> list[str]:
    """Folded words of more than 3 letters found in 0.5% to 5% of the texts."""
    counts = Counter(w for t, b in texts for w in set(normalize_text(f"{t} {b}").split())
                     if len(w) > 3 and w.isalpha())
    low, high = len(texts) * 0.005, len(texts) * 0.05
    return sorted(w for w, n in counts.items() if low <= n <= high)


def sources(rng: random.Random) -> tuple[list[tuple[str, str]], str]:
    """(title, text) pairs: the real corpus when present, else seed-vocabulary text."""
    if CORPUS.is_file():
        rows = [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines()]
        return [(r["title"], r["text"]) for r in rows], f"real articles from {CORPUS.parent.name}"
    maker = TextMaker(load_words(), rng)
    return ([(maker.title(), " ".join(maker.paragraphs(300))) for _ in range(2000)],
            "generated from the shipped seed's words (no ../shared/corpus)")


def entities(count: int, rng: random.Random) -> dict[str, Entity]:
    """The shipped gazetteer, padded with generated names (two words, Arabic and Latin)."""
    found = dict(gazetteer())
    while len(found) < count:
        n = len(found)
        arabic = " ".join("".join(rng.choices(ARABIC, k=rng.randint(3, 7))) for _ in range(2))
        latin = f"Name{n} Family{n}"
        found[f"person:made-{n}"] = Entity(f"person:made-{n}", arabic, (arabic, latin))
    return found


def articles(count: int, words: int, texts: list[tuple[str, str]]) -> list[Article]:
    """Each title with the next `words` words of running text, in paragraphs of 100."""
    stream = [w for _, text in texts for w in text.split()]
    made = []
    for n in range(count):
        start = n * words % (len(stream) - words)
        body = stream[start:start + words]
        html = "".join(f"<p>{' '.join(body[i:i + 100])}</p>" for i in range(0, words, 100))
        made.append(Article(source="bench", key=str(n), title=texts[n % len(texts)][0],
                            content_html=html, summary="", language="ar", published=WHEN,
                            updated=WHEN))
    return made


def bare_automaton(tagger: Tagger) -> ahocorasick.Automaton:
    """Every term and alias, folded, as one plain key each: no clitic forms, no checks."""
    automaton = ahocorasick.Automaton()
    for term, _ in tagger.matcher.patterns:
        key = normalize_text(term)
        if key:
            automaton.add_word(f" {key}", key)
    automaton.make_automaton()
    return automaton


def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    source_texts, origin = sources(rng)
    entity_table = entities(args.entities, rng)
    topic_list = topics(args.topics, topical_words(source_texts), sorted(entity_table), rng)
    tracemalloc.start()
    start = time.process_time()
    tagger = Tagger(topic_list, entity_table)
    built = time.process_time() - start
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    bare = bare_automaton(tagger)
    docs = articles(args.articles, args.words, source_texts)
    texts = [(a.title, plain_text(a.content_html)) for a in docs]
    folded = [f" {normalize_text(t)}   {normalize_text(b)} " for t, b in texts]
    forms = len(tagger.matcher._automaton)
    pinned = "not pinned" if args.no_pin else pin_to_one_core()
    print(f"{pinned}; {len(topic_list)} topics, {len(entity_table)} entities, "
          f"{len(tagger.matcher.patterns)} terms and aliases, {forms:,} clitic forms; {origin}")
    print(f"tagger built in {built:.2f} s, {memory / 1e6:.0f} MB traced (CLDR names included)")

    timings: dict[str, float] = {}

    def timed(name: str, job) -> None:
        start = time.process_time()
        job()
        timings[name] = min(timings.get(name, float("inf")), time.process_time() - start)

    for _ in range(args.repeat):
        timed("bare", lambda: [sum(1 for _ in bare.iter(text)) for text in folded])
        timed("fold", lambda: [(normalize_text(t), normalize_text(b)) for t, b in texts])
        timed("rules", lambda: [tagger.tags(a) for a in docs])
    tags = sum(len(tagger.tags(a)) for a in docs) / len(docs)

    def line(label: str, name: str) -> None:
        seconds = timings[name]
        print(f"  {label:52} {len(docs) / seconds:8,.0f} articles/s "
              f"({seconds / len(docs) * 1e6:4.0f} µs)")

    print(f"{len(docs)} articles of {args.words} words (+ a title), best of {args.repeat}:")
    line("BASELINE bare Aho-Corasick over the folded texts", "bare")
    line("folding alone (feeds.dedupe.normalize_text)", "fold")
    line("rule engine: Tagger.tags (text, fold, match, rules)", "rules")
    print(f"  ratio rule engine / (fold + bare): "
          f"{timings['rules'] / (timings['fold'] + timings['bare']):.2f}x, / bare alone: "
          f"{timings['rules'] / timings['bare']:.2f}x; {tags:.1f} tags per article")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--topics", type=int, default=50)
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026, help="random seed of the corpus")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
