"""Tagging: topic rules and gazetteer entities, matched Arabic-aware in one pass over the text.

Text, terms and entity names are folded the way dedupe folds them (feeds.dedupe.
normalize_text: tashkeel, tatweel, alef/ya/ta marbuta forms, digits, accents, case,
punctuation). A topic is a boolean rule over terms and entities (see feeds.model.Rule);
its score counts the words its matching terms found, TITLE_WEIGHT in the title, 1 in the
body, and the topic is tagged when the rule holds and the score reaches `min_score`.
Every entity found becomes a tag of its own (`person:...`, `place:...`, `org:...`).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from itertools import chain, compress, count
from operator import ge
from typing import TYPE_CHECKING

import ahocorasick

from feeds.clean import plain_text
from feeds.dedupe import normalize_text
from feeds.model import Article, EntityRef, Rule, Topic
from feeds.text import direction, written_direction

if TYPE_CHECKING:
    from feeds.config import Decision
    from feeds.learn import TopicModel

TITLE_WEIGHT = 2
GAZETTEER_FILE = "gazetteer.tsv"
ENTITY_KINDS = ("person", "place", "org")
_TAG = re.compile(rf"(?:{'|'.join(ENTITY_KINDS)}):[a-z0-9][a-z0-9-]{{0,55}}")  # fits 64

# Proclitics, folded: a conjunction (و ف), then a preposition (ب ك ل) or the article ال,
# fused as لل after ل. Topic words may carry any of them; a name keeps its own article:
# "فيينا" takes و/ب/ل... but never ال, "القاعدة" always has ال (so "قاعدة عسكرية" is no match).
_CONJUNCTIONS = ("", "و", "ف")
_BARE = tuple(c + p for c in _CONJUNCTIONS for p in ("", "ب", "ك", "ل"))
_DEFINITE = tuple(c + p for c in _CONJUNCTIONS for p in ("ال", "بال", "كال", "لل"))
_ANY_PREFIX = _BARE + _DEFINITE
# Enclitics and inflections a topic word may end with (ة is folded to ه). Names take none.
WORD_SUFFIXES = frozenset({
    "", "ي", "يه", "يون", "يين", "يات", "ه", "ها", "هم", "هما", "هن", "كم", "كما", "نا",
    "ون", "ين", "ات", "ان", "تان", "تين",
})
_LATIN_WORD_SUFFIXES = frozenset({"", "s"})
_NO_SUFFIX = frozenset({""})
# A term written in capitals (UN, ISIS, DGSN) matches only in capitals: "un" is French.
# Those words are marked in the text before folding, with a letter no text uses.
_ACRONYM = re.compile(r"^[A-Z][A-Z0-9]+$")
_CAPITALS = re.compile(r"[A-Z][A-Z0-9]+")  # \b would cost 4x the scan on Arabic text
_ASCII_WORD = re.compile(r"[A-Za-z0-9]")
_MARK = "\u0800"
_TITLE_END = "\u0801"


def _has_capitals(text: str) -> bool:
    """Whether `text` has a Latin capital: most Arabic articles have none, and dropping
    every other letter in C, then comparing with the lowercase, takes half the time of
    _CAPITALS scanning the text."""
    latin = text.encode("ascii", "ignore")
    return latin != latin.lower()


def _is_arabic(char: str) -> bool:
    return "\u0621" <= char <= "\u064a"


def _has_article(word: str) -> bool:
    return word.startswith("ال") and len(word) > 4 and _is_arabic(word[0])


@cache  # every tagger has the gazetteer's aliases: their forms are made once a process
def forms(term: str, name: bool = False) -> tuple[tuple[str, frozenset[str]], ...]:
    """Each (" " + clitic prefix + folded core, the suffixes allowed after it) of `term`.

    A topic word (`name` False) may carry any prefix, ال included, and WORD_SUFFIXES; an
    indefinite Arabic phrase also matches with ال on its later words ("خلية إرهابية",
    "الخلية الإرهابية"). A name keeps or lacks its article as written and takes no suffix.
    """
    if _ACRONYM.match(term):
        return ((f" {term.lower()}{_MARK}", _NO_SUFFIX),)
    words = normalize_text(term).split()
    if not words:
        return ()
    if not _is_arabic(words[-1][-1]):
        return ((" " + " ".join(words), _NO_SUFFIX if name else _LATIN_WORD_SUFFIXES),)
    definite = _has_article(words[0])
    if definite:
        words[0] = words[0][2:]
    cores = {" ".join(words)}
    if not name and len(words) > 1 and not any(w.startswith("ال") for w in words[1:]):
        cores.add(" ".join([words[0], *("ال" + w for w in words[1:])]))
    prefixes = _ANY_PREFIX if not name else _DEFINITE if definite else _BARE
    suffixes = _NO_SUFFIX if name else WORD_SUFFIXES
    return tuple((f" {prefix}{core}", suffixes) for core in cores for prefix in prefixes)


class Matcher:
    """Finds patterns (terms or names) as whole words in one Aho-Corasick pass.

    The automaton holds " " + prefix + core for every allowed prefix, so a hit starts at
    a word boundary. A form that takes no suffix ends with a space too, so a hit is a
    match; after any other, what follows up to the next space must be an allowed suffix
    ("فاس" does not match "فاسد", "الأمن" matches "والأمنية" and not "الثامن").
    """

    def __init__(self, patterns: Iterable[tuple[str, bool]]):
        self.patterns: list[tuple[str, bool]] = []
        entries: dict[str, list[tuple[int, frozenset[str]]]] = {}
        for pid, (term, name) in enumerate(patterns):
            self.patterns.append((term, name))
            for form, suffixes in forms(term, name):
                if suffixes is _NO_SUFFIX:
                    form += " "
                entries.setdefault(form, []).append((pid, suffixes))
        self._automaton = ahocorasick.Automaton()
        # A pyahocorasick node scans its children in the order they were added: sorting the
        # forms by their letters, the commonest among the forms first, puts the children
        # a text takes most often at the front (tagging took 5-8% less).
        commonest = Counter(chain.from_iterable(entries)).most_common()
        order = {ord(letter): rank for rank, (letter, _) in enumerate(commonest)}
        for form in sorted(entries, key=lambda form: form.translate(order)):
            pids, suffixes = zip(*entries[form], strict=True)
            # The suffixes a form allows follow from its last letter, so its patterns agree.
            assert len(set(suffixes)) == 1, form
            whole = form.endswith(" ")
            self._automaton.add_word(form, (len(form) - 2, pids, None if whole else suffixes[0]))
        self._forms = len(entries)
        if self._forms:
            self._automaton.make_automaton()
        self._acronyms = frozenset(term for term, _ in self.patterns if _ACRONYM.match(term))

    def searchable(self, title: str, body: str) -> tuple[str, int]:
        """The folded text that patterns are searched in, and where its title part ends.

        Words are separated by one space, title and body by more, so no phrase spans them.
        Both are folded in one call, the title marked off by a letter no text uses.
        """
        text = f"{title} {_TITLE_END} {body}"
        if self._acronyms and _has_capitals(text):
            text = _CAPITALS.sub(self._mark, text)
        head, _, rest = normalize_text(text).partition(_TITLE_END)
        return f" {head}  {rest} ", len(head) + 2

    def _mark(self, word: re.Match) -> str:
        """A known acronym that stands alone, marked."""
        text, start, end = word.string, word.start(), word.end()
        alone = not (start and _ASCII_WORD.match(text, start - 1)) and not _ASCII_WORD.match(
            text, end)
        return word[0] + _MARK if alone and word[0] in self._acronyms else word[0]

    def find(self, text: str) -> dict[int, list[int]]:
        """pattern id -> start offsets in `text` (from `searchable`) of the words it matched."""
        hits: defaultdict[int, list[int]] = defaultdict(list)
        for end, (offset, pids, suffixes) in self._automaton.iter(text) if self._forms else ():
            if (suffixes is not None and text[end + 1] != " "  # a suffix: is it allowed?
                    and text[end + 1:text.find(" ", end + 1)] not in suffixes):
                continue
            start = end - offset
            for pid in pids:
                hits[pid].append(start)
        return hits


# --- the gazetteer ---------------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    """A person, place or organization: its tag ("org:isis"), display name, aliases, and
    the alias to show in each language the gazetteer knows it in (language -> alias)."""

    tag: str
    name: str
    aliases: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict, hash=False)

    def label(self, language: str) -> str:
        """Its name for readers of `language` ("fr", "ar-MA"): the alias the gazetteer gives
        for that language (CLDR's name of a country, region or city; a row's `fr=...`).
        Without one, the first alias written in the language's direction: the first Arabic
        name for Arabic, the first Latin one for French or English (a row lists French
        before English, and marks an English name that differs); else the first name."""
        known = self.labels.get(language.split("-")[0].lower())
        wanted = direction(language)
        return known or next((a for a in self.aliases if written_direction(a) == wanted),
                             self.name)


def gazetteer() -> dict[str, Entity]:
    """tag -> Entity: countries, regions and cities from CLDR (Babel), then the shipped
    feeds/data/gazetteer.tsv, whose rows add entities and aliases or drop them."""
    return _gazetteer(resources.files("feeds").joinpath("data", GAZETTEER_FILE).read_text("utf-8"))


@lru_cache(maxsize=8)
def entity_labels(language: str) -> dict[str, str]:
    """tag -> the entity's name for readers of `language`, for feed categories (read only)."""
    return {tag: entity.label(language) for tag, entity in gazetteer().items()}


@lru_cache(maxsize=4)
def _gazetteer(table: str) -> dict[str, Entity]:
    """CLDR's rows, then the table's, applied in order: a later row's label wins."""
    names: dict[str, list[str]] = {}
    labels: dict[str, dict[str, str]] = {}
    for tag, aliases in (*_cldr_places(), *_rows(table)):
        known, shown = names.setdefault(tag, []), labels.setdefault(tag, {})
        for alias in aliases:
            _apply(alias, known, shown)
    return {tag: Entity(tag, aliases[0], tuple(aliases), labels[tag])
            for tag, aliases in names.items() if aliases}


# An alias shown in one language: "fr=Nations unies" (a language code, "=", the alias).
_LABEL = re.compile(r"([a-z]{2,3})=(.+)")


def _apply(alias: str, known: list[str], shown: dict[str, str]) -> None:
    """One alias of a row: "-" drops the entity, "-name" an alias (and the label it was),
    "fr=name" adds an alias shown in French feeds, "name" an alias."""
    if alias == "-":
        known.clear()
        shown.clear()
    elif alias.startswith("-"):
        known[:] = [a for a in known if a != alias[1:]]
        for language in [lang for lang, name in shown.items() if name == alias[1:]]:
            del shown[language]
    else:
        if labelled := _LABEL.fullmatch(alias):
            language, alias = labelled.groups()
            shown[language] = alias
        if alias not in known:
            known.append(alias)


def _rows(table: str) -> Iterable[tuple[str, list[str]]]:
    """(tag, names) of each row: TAG <tab> name | alias | fr=shown alias | -dropped alias."""
    for number, line in enumerate(table.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        row = line.split("\t")
        aliases = [a.strip() for a in row[-1].split("|") if a.strip()]
        if len(row) != 2 or not _TAG.fullmatch(row[0].strip()) or any(
                "=" in a and not _LABEL.fullmatch(a) for a in aliases):
            raise ValueError(f"{GAZETTEER_FILE} line {number}: write KIND:ID <tab> name | alias"
                             f" | fr=alias shown in French, KIND one of"
                             f" {', '.join(ENTITY_KINDS)}, ID lowercase letters, digits and"
                             f" dashes; got {line!r}")
        yield row[0].strip(), aliases


# CLDR territories that are no country or region (UN, EU are organizations in the TSV).
_NOT_PLACES = {"UN", "EU", "EZ", "QO", "XA", "XB", "ZZ", "001"}


@lru_cache(maxsize=1)
def _cldr_places() -> tuple[tuple[str, list[str]], ...]:
    """Countries, regions and time-zone cities named in Arabic, French and English (CLDR),
    each name the label in its language. A city named as its country (place:malta) adds
    its spellings unlabelled: the country's names are CLDR's own, the city's English one
    is the time zone's unaccented id (Curacao)."""
    from babel import Locale

    ar, fr, en = (Locale(code) for code in ("ar", "fr", "en"))
    places = {}
    for code, english in en.territories.items():
        if code not in _NOT_PLACES and code in ar.territories:
            places[f"place:{_slug(english)}"] = _in_languages(
                (ar.territories[code], fr.territories[code], english))
    cities = []
    for zone, names in ar.time_zones.items():
        parts = zone.split("/")
        if "city" in names and len(parts) == 2 and parts[0] not in ("Etc", "Antarctica"):
            english = parts[1].replace("_", " ")
            french = fr.time_zones.get(zone, {}).get("city", english)
            tag = f"place:{_slug(english)}"
            cities.append((tag, _in_languages((names["city"], french, english),
                                              labelled=tag not in places)))
    return (*places.items(), *cities)


def _in_languages(names: tuple[str, str, str], labelled: bool = True) -> list[str]:
    """Arabic, French and English names as a row's aliases, each (when `labelled`) the
    label in its language."""
    return [f"{language}={name}" if labelled else name
            for language, name in zip(("ar", "fr", "en"), names, strict=True)]


def _slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", normalize_text(text)))


# --- topics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicScore:
    """How one topic fared on one article."""

    slug: str
    held: bool  # the rule holds
    score: int
    min_score: int

    @property
    def tagged(self) -> bool:
        return self.held and self.score >= self.min_score


# A rule over pattern ids: a set of ids (any of them found) or (op, parts).
Compiled = frozenset[int] | tuple[str, tuple["Compiled", ...]]


def _triggering(node: Compiled) -> Iterator[int]:
    """The ids whose finding may make `node` hold: all but those under a `none`."""
    if isinstance(node, frozenset):
        yield from node
    elif node[0] != "none":
        for part in node[1]:
            yield from _triggering(part)


# A compiled rule as a function of the ids found: the ids whose words count, or None when
# it does not hold.
Test = Callable[[set[int]], "set[int] | None"]


def _test(node: Compiled) -> Test:
    """`node` as a Test. Walking the tree for each topic of each article cost more than all
    the rest of the rules, so each node becomes a closure that calls only its nested rules
    and tests its own sets of ids in C. Words count under `any` and `all`, not under
    `none`; `all` of no part does not hold, `none` of no part does."""
    if isinstance(node, frozenset):
        return lambda found: found & node or None
    op, parts = node
    leaves = [part for part in parts if isinstance(part, frozenset)]
    nested = [_test(part) for part in parts if not isinstance(part, frozenset)]
    # Under `any` and `none`, Tagger._compile made the leaves one set.
    merged = frozenset().union(*leaves)

    def none_of(found: set[int]) -> set[int] | None:
        if found.isdisjoint(merged) and (not nested or all(t(found) is None for t in nested)):
            return set()
        return None

    def all_of(found: set[int]) -> set[int] | None:
        counting: set[int] = set()
        for leaf in leaves:
            if not (ids := found & leaf):
                return None
            counting |= ids
        for t in nested:
            if (ids := t(found)) is None:
                return None
            counting |= ids
        return counting if parts else None

    def any_of(found: set[int]) -> set[int] | None:
        counting = found & merged
        held = bool(counting)
        for t in nested:
            if (ids := t(found)) is not None:
                held = True
                counting |= ids
        return counting if held else None
    return {"none": none_of, "all": all_of, "any": any_of}[op]


class Tagger:
    """Tags articles with the topics whose rules hold and score enough, and the entities found.

    One Matcher holds every term of every rule and every alias of the gazetteer; a topic's
    rule is evaluated only when one of its terms or entities was found. With a `model`
    (feeds.learn.TopicModel), the topics it decides are then settled by it.
    """

    def __init__(self, topics: tuple[Topic, ...], entities: dict[str, Entity] | None = None,
                 model: TopicModel | None = None):
        self.topics = topics
        self.model = model
        self.entities = gazetteer() if entities is None else entities
        self._pids: dict[tuple[str, bool], int] = {}
        self._entity_pids = {tag: [self._pid(a, True) for a in e.aliases]
                             for tag, e in self.entities.items()}
        self._alias_tag = {pid: tag for tag, pids in self._entity_pids.items() for pid in pids}
        rules = [self._compile(topic.rule) for topic in topics]
        self._tests = [_test(rule) for rule in rules]
        self._index = {topic.slug: index for index, topic in enumerate(topics)}
        triggers: list[set[int]] = [set() for _ in self._pids]  # pattern id -> topics it may tag
        for index, rule in enumerate(rules):
            for pid in _triggering(rule):
                triggers[pid].add(index)
        self._triggers = [tuple(sorted(indexes)) for indexes in triggers]
        # The bound a topic's words must reach to be evaluated: found at all, and with
        # `prune`, its min_score.
        self._floors = {False: [1] * len(topics),
                        True: [max(1, topic.min_score) for topic in topics]}
        self.matcher = Matcher(self._pids)

    def _pid(self, term: str, name: bool) -> int:
        return self._pids.setdefault((term, name), len(self._pids))

    def _compile(self, node: str | EntityRef | Rule) -> Compiled:
        """`node` over pattern ids; the terms and entities directly under an `any` or a `none`
        become one set of ids, as any of them will do (or undo)."""
        if isinstance(node, str):
            return frozenset({self._pid(node, False)})
        if isinstance(node, EntityRef):
            return frozenset(self._entity_pids[node.tag])
        parts = [self._compile(part) for part in node.parts]
        if node.op != "all":  # any (or none) of several leaves: one leaf of all their ids
            leaves = [p for p in parts if isinstance(p, frozenset)]
            parts = [p for p in parts if not isinstance(p, frozenset)]
            if leaves:
                parts.insert(0, frozenset().union(*leaves))
            if len(parts) == 1 and node.op == "any":
                return parts[0]
        return node.op, tuple(parts)

    def find(self, article: Article) -> tuple[str, int, dict[int, list[int]]]:
        """The searchable text, where its title ends, and pattern id -> word offsets."""
        text, title_end = self.matcher.searchable(article.title, plain_text(article.content_html))
        return text, title_end, self.matcher.find(text)

    def _evaluated(self, hits: dict[int, list[int]], title_end: int, prune: bool = False
                   ) -> list[tuple[int, set[int] | None, int]]:
        """(topic index, the words that count or None, score) of each topic a hit may tag.

        With `prune`, topics that could not reach their min_score even if every word found
        counted (in the title, at that) are left out: most topics a hit touches.
        """
        bounds = [0] * len(self.topics)  # a list: adding to a defaultdict took 2.5x longer
        for pid, words in hits.items():
            for index in self._triggers[pid]:  # words are in text order: [0] is the earliest
                bounds[index] += len(words) * (TITLE_WEIGHT if words[0] < title_end else 1)
        found = set(hits)
        evaluated = []
        for index in compress(count(), map(ge, bounds, self._floors[prune])):  # in C
            counting = self._tests[index](found)
            if counting is None:
                evaluated.append((index, None, 0))
                continue
            words = set().union(*[hits[pid] for pid in counting])
            title_words = (len([start for start in words if start < title_end])
                           if words and min(words) < title_end else 0)  # mostly none
            evaluated.append((index, words, len(words) + (TITLE_WEIGHT - 1) * title_words))
        return evaluated

    def scores(self, article: Article) -> dict[str, TopicScore]:
        """slug -> TopicScore of every topic one of whose terms or entities occurs."""
        _, title_end, hits = self.find(article)
        return self._scores(hits, title_end)

    def _scores(self, hits: dict[int, list[int]], title_end: int) -> dict[str, TopicScore]:
        return {self.topics[i].slug: TopicScore(self.topics[i].slug, words is not None, score,
                                                self.topics[i].min_score)
                for i, words, score in self._evaluated(hits, title_end)}

    def tags(self, article: Article) -> tuple[str, ...]:
        """Topics (in config order, those the article named itself kept) then entity tags."""
        if self.model is not None:
            return self.tags_of([article])[0]
        topics, entities = self._found(article)
        return self._in_order(topics, article) + entities

    def tags_of(self, articles: Sequence[Article]) -> list[tuple[str, ...]]:
        """`tags` of each article; a model deciding topics reads them all at once."""
        found = [self._found(article) for article in articles]
        chosen = [topics for topics, _ in found]
        if self.model is not None:
            decided = self.model.decide(articles, [{self.topics[i].slug for i in topics}
                                                   for topics in chosen])
            chosen = [{self._index[slug] for slug in slugs} for slugs in decided]
        return [self._in_order(topics, article) + entities
                for article, topics, (_, entities) in zip(articles, chosen, found, strict=True)]

    def _found(self, article: Article) -> tuple[set[int], tuple[str, ...]]:
        """The topics (indexes) whose rules `article` meets, and its entity tags."""
        _, title_end, hits = self.find(article)
        topics = {i for i, words, score in self._evaluated(hits, title_end, prune=True)
                  if words is not None and score >= self.topics[i].min_score}
        entities = {self._alias_tag[pid] for pid in self._alias_tag.keys() & hits.keys()}
        return topics, tuple(sorted(entities))

    def _in_order(self, topics: set[int], article: Article) -> tuple[str, ...]:
        """The slugs of `topics`, the article's own configured topics added, in config order."""
        topics.update(self._index[slug] for slug in article.topics if slug in self._index)
        return tuple(self.topics[i].slug for i in sorted(topics))

    def tag(self, article: Article) -> Article:
        """`article` with its tags: its own topics, those its text earns, its entities."""
        return article.with_topics(self.tags(article))

    def tag_all(self, articles: Sequence[Article]) -> list[Article]:
        """`tag` of each article, read together (see `tags_of`)."""
        return [a.with_topics(tags) for a, tags in zip(articles, self.tags_of(articles),
                                                       strict=True)]

    # -- explain ----------------------------------------------------------------------------

    def explain(self, article: Article) -> list[str]:
        """Lines saying, per topic, which rule parts matched which words, and the score; for
        a topic the model decides, its probability and threshold and what tagged it (the
        same verdict as `tags`); then each entity found and where."""
        text, title_end, hits = self.find(article)
        scores = self._scores(hits, title_end)
        decisions = self.model.decisions if self.model is not None else {}
        probabilities = self.model.label_probabilities(article) if decisions else {}
        lines = [self.model.adaptation(article.source)] if decisions else []
        lines.append(f"topics (score: {TITLE_WEIGHT} per word found in the title, 1 in the body)")
        for topic in self.topics:
            found = scores.get(topic.slug, TopicScore(topic.slug, False, 0, topic.min_score))
            how = decisions.get(topic.slug)
            by = (how.deciders(probabilities[how.label], found.tagged) if how
                  else ("rule",) * found.tagged)
            lines.append(f"  {topic.slug}: {_verdict(by, how, topic.slug in article.topics)}"
                         f" - rule {'holds' if found.held else 'does not hold'}, "
                         f"score {found.score}, min_score {found.min_score}")
            if how:
                lines.append(f"    {_model_line(how, probabilities[how.label])}")
            lines += self._explain_rule(topic.rule, hits, (text, title_end), "    ")
        entity_pids: dict[str, list[int]] = {}
        for pid in sorted(hits):
            if pid in self._alias_tag:
                entity_pids.setdefault(self._alias_tag[pid], []).append(pid)
        lines.append(f"entities ({len(entity_pids)})")
        for tag in sorted(entity_pids):
            where = self._where(entity_pids[tag], hits, (text, title_end))
            lines.append(f"  {tag} ({self.entities[tag].name}): {where}")
        return lines

    def _explain_rule(self, rule: Rule, hits: dict[int, list[int]], text: tuple[str, int],
                      indent: str) -> list[str]:
        held = _test(self._compile(rule))(set(hits)) is not None
        lines = [f"{indent}{rule.op}: {'holds' if held else 'does not hold'}"]
        missing = 0
        for part in rule.parts:
            if isinstance(part, Rule):
                lines += self._explain_rule(part, hits, text, indent + "  ")
                continue
            pids = ([self._pids[part, False]] if isinstance(part, str)
                    else self._entity_pids[part.tag])
            if not any(pid in hits for pid in pids):
                missing += 1
                continue
            label = repr(part) if isinstance(part, str) else f"entity {part.tag}"
            lines.append(f"{indent}  {label}: {self._where(pids, hits, text)}")
        if missing:
            lines.append(f"{indent}  ({missing} other part{'s' if missing > 1 else ''} "
                         "not found)")
        return lines

    def _where(self, pids: list[int], hits: dict[int, list[int]], text: tuple[str, int]) -> str:
        """"title: word; body: word x3, other" for the words these patterns matched."""
        folded, title_end = text
        places: dict[str, dict[str, int]] = {"title": {}, "body": {}}
        for pid in pids:
            size = len(self.matcher.patterns[pid][0].split())
            for start in hits.get(pid, ()):
                words = " ".join(folded[start:].split(" ", size)[:size]).replace(_MARK, "")
                counts = places["title" if start < title_end else "body"]
                counts[words] = counts.get(words, 0) + 1
        return "; ".join(
            f"{place}: " + ", ".join(w + (f" x{n}" if n > 1 else "") for w, n in counts.items())
            for place, counts in places.items() if counts)


def _verdict(by: tuple[str, ...], how: Decision | None, named: bool) -> str:
    """"tagged", "not tagged", and for a topic the model decides what tagged it."""
    if named:
        return "tagged (named by its source)"
    if not by:
        return "not tagged"
    return "tagged by " + " and ".join(f"the {who}" for who in by) if how else "tagged"


def _model_line(how: Decision, probability: float) -> str:
    """The model's part in a verdict: its probability, the threshold, how they combine."""
    reaches = ">=" if probability >= how.threshold else "<"
    rule = "the rule or the model" if how.decide == "both" else "the model alone"
    return (f"model: probability {probability:.3f} for label {how.label!r} {reaches} "
            f'threshold {how.threshold:g} (decide = "{how.decide}": {rule})')
