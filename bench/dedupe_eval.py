"""The labelled evaluation set for feeds.dedupe: real Arabic articles, republishing edits.

Positives are made from real articles of the ANT multi-source set by the edits real
republishing does (new title, an intro sentence or dateline, a trimmed tail, other
boilerplate lines, only the first paragraphs, ~3% of words changed, diacritics, hamza
and punctuation variation, URL variants). Hard negatives are real pairs: the machine-found
cross-outlet candidates and same-story clusters whose texts are clearly different articles
(exact shingle containment below 0.5 both ways; pairs above are possible agency copies and
left unlabelled), plus same-topic same-day pairs. A few French and English pairs are
generated. Run it to print the set's make-up.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
ANT = CORPUS / "articles" / "ant-multisource-2018-02-27_03-12"
SAME_STORY = CORPUS / "same_story" / "ant_multisource_same_story.jsonl"


@dataclass(frozen=True, slots=True)
class Doc:
    id: str
    url: str
    text: str
    day: str = ""
    cat: str = ""


@dataclass(frozen=True, slots=True)
class Pair:
    a: Doc
    b: Doc
    duplicate: bool
    layer: str  # the layer expected to catch a positive, or the layer a negative tests
    kind: str


def corpus_missing() -> str | None:
    """Why the evaluation cannot run here, or None."""
    if not (ANT / "articles.jsonl").is_file():
        return f"the shared corpus is absent ({ANT / 'articles.jsonl'} not found)"
    return None


def load_articles() -> list[Doc]:
    docs = []
    with open(ANT / "articles.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            text = f"{row['title']}\n{row['text']}".strip()
            docs.append(Doc(row["docno"], row["url"], text, row["time"][:16], row["cat"]))
    return docs


# --- Edits ------------------------------------------------------------------------------

_INTROS = ("الرياض - (واس) - ", "القاهرة - وكالات: ", "دبي - العربية.نت\n",
           "أفادت مصادر إعلامية اليوم بأن ", "(رويترز) - ")
_CHROME = ("اقرأ أيضا:", "تابعونا على تويتر وفيسبوك", "جميع الحقوق محفوظة",
           "شارك هذا المقال", "مقالات ذات صلة", "زر الذهاب إلى الأعلى")
_FILLER = ("وقال", "مصدر", "الحكومة", "اليوم", "أمس", "الرئيس", "في", "على", "بعد",
           "الوزير", "مسؤول", "الأمن", "الخارجية", "الجديد", "العام", "المنطقة")
_TASHKEEL = "\u064e\u064f\u0650\u0651\u0652\u064b"


def body_words(doc: Doc) -> tuple[str, list[str]]:
    title, _, body = doc.text.partition("\n")
    return title, body.split()


def change_words(words: list[str], share: float, rng: random.Random) -> list[str]:
    words = list(words)
    for i in rng.sample(range(len(words)), max(1, round(len(words) * share))):
        roll = rng.random()
        if roll < 0.5:
            words[i] = rng.choice(_FILLER)
        elif roll < 0.75:
            words[i] = ""
        else:
            words[i] = f"{words[i]} {rng.choice(_FILLER)}"
    return [w for w in words if w]


def vary_spelling(text: str, rng: random.Random) -> str:
    """Diacritics, hamza, alef maqsura, tatweel and punctuation varied: the same text."""
    out = []
    for char in text:
        if char in "أإآ" and rng.random() < 0.5:
            char = "ا"
        elif char == "ي" and rng.random() < 0.1:
            char = "ى"
        elif char in "،,." and rng.random() < 0.5:
            char = rng.choice(("،", ",", " .", "؛"))
        out.append(char)
        if "\u0621" <= char <= "\u064a" and rng.random() < 0.15:
            out.append(rng.choice(_TASHKEEL))
        elif char == "ل" and rng.random() < 0.05:
            out.append("\u0640")
    return re.sub(" ", lambda _: "  " if rng.random() < 0.05 else " ", "".join(out))


def positives(doc: Doc, rng: random.Random) -> list[Pair]:
    title, words = body_words(doc)
    n = len(words)
    new_title = " ".join(change_words(title.split(), 0.4, rng)) or title
    edits = {
        "spelling": ("text", vary_spelling(doc.text, rng)),
        "new-title+3%": ("near", f"{new_title}\n{' '.join(change_words(words, 0.03, rng))}"),
        "intro": ("near", f"{rng.choice(_INTROS)}{title}\n{' '.join(words)}"),
        "trimmed-tail": ("near", f"{title}\n{' '.join(words[:int(n * rng.uniform(0.7, 0.85))])}"),
        "boilerplate": ("near", f"{rng.choice(_CHROME)}\n{doc.text}\n"
                                f"{chr(10).join(rng.sample(_CHROME, 3))}"),
        "prefix": ("near", f"{title}\n{' '.join(words[:int(n * rng.uniform(0.3, 0.5))])}"),
        "3%-words": ("near", f"{title}\n{' '.join(change_words(words, 0.03, rng))}"),
        "mixed": ("near", vary_spelling(
            f"{rng.choice(_INTROS)}{new_title}\n"
            f"{' '.join(change_words(words[:int(n * 0.9)], 0.03, rng))}", rng)),
    }
    pairs = []
    for kind, (layer, text) in edits.items():
        pairs.append(Pair(doc, Doc(f"{doc.id}~{kind}", f"https://copy.example/{doc.id}/{kind}",
                                   text, doc.day, doc.cat), True, layer, kind))
    for kind, url in url_variants(doc.url, rng).items():
        pairs.append(Pair(doc, Doc(f"{doc.id}~url-{kind}", url, doc.text), True, "url",
                          f"url-{kind}"))
    return pairs


def url_variants(url: str, rng: random.Random) -> dict[str, str]:
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    bare = host.removeprefix("www.")
    return {
        "tracking": f"{url}?utm_source=twitter&utm_medium=social&fbclid=IwAR{rng.randrange(10**8)}",
        "gclid+fragment": f"{url}?gclid={rng.randrange(10**8)}#comments",
        "scheme+host": f"{'https' if scheme == 'http' else 'http'}://{bare.upper()}:"
                       f"{443 if scheme == 'http' else 80}/{path}",
        "amp-path": f"{scheme}://{host}/amp/{path}",
        "amp-param": f"{url}?amp=1&outputType=amp",
        "amp-host": f"{scheme}://amp.{bare}/{path}/",
    }


# --- Negatives --------------------------------------------------------------------------

def shingles(text: str) -> set[tuple[str, ...]]:
    from feeds.dedupe import normalize_text

    words = normalize_text(text).split()
    return {tuple(words[i:i + 3]) for i in range(max(len(words) - 2, 1))}


def exact_containment(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    common = len(sa & sb)
    return max(common / max(len(sa), 1), common / max(len(sb), 1))


def hard_negatives(by_file: dict[str, Doc], by_id: dict[str, Doc]) -> tuple[list[Pair], int]:
    """Real different articles on one story; pairs that may be copies are left out."""
    found: dict[tuple[str, str], str] = {}
    with open(ANT / "near_dup_candidates.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            a = by_file.get(row["file_a"].split("/", 1)[1])
            b = by_file.get(row["file_b"].split("/", 1)[1])
            if a and b and a.id != b.id:
                found[(min(a.id, b.id), max(a.id, b.id))] = "candidates-tsv"
    clusters: dict[int, list[str]] = defaultdict(list)
    for row in same_story_rows():
        by_id.setdefault(row.id, row)
        clusters[int(row.cat)].append(row.id)
    for members in clusters.values():
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                found.setdefault((min(a, b), max(a, b)), "same-story")
    pairs, unlabelled = [], 0
    for (a, b), kind in sorted(found.items()):
        if exact_containment(by_id[a].text, by_id[b].text) >= 0.5:
            unlabelled += 1
            continue
        pairs.append(Pair(by_id[a], by_id[b], False, "near", kind))
    return pairs, unlabelled


def same_story_rows() -> list[Doc]:
    """The same-story clusters' articles, the cluster number in `cat`."""
    if not SAME_STORY.is_file():
        return []
    rows = []
    with open(SAME_STORY, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            text = f"{row['title']}\n{row['text']}".strip()
            rows.append(Doc(row["docno"], row["url"], text, row["time"][:16], str(row["cluster"])))
    return rows


def same_day_negatives(docs: list[Doc], count: int, rng: random.Random) -> list[Pair]:
    groups: dict[tuple[str, str], list[Doc]] = defaultdict(list)
    for doc in docs:
        groups[(doc.day, doc.cat)].append(doc)
    usable = [g for g in groups.values() if len(g) >= 2]
    pairs = []
    while len(pairs) < count:
        a, b = rng.sample(rng.choice(usable), 2)
        if exact_containment(a.text, b.text) < 0.5:
            pairs.append(Pair(a, b, False, "near", "same-topic-day"))
    return pairs


def url_negatives(docs: list[Doc], count: int, rng: random.Random) -> list[Pair]:
    """Different articles of one outlet: URLs that differ only in the path or the query."""
    pairs = []
    for _ in range(count):
        a, b = rng.sample(docs, 2)
        pairs.append(Pair(a, b, False, "url", "url-other-article"))
    base = "https://www.example.com/news"
    for i in range(count // 4):
        a = Doc(f"q{i}a", f"{base}?id={1000 + i}&utm_source=x", "a")
        b = Doc(f"q{i}b", f"{base}?id={2000 + i}", "b")
        pairs.append(Pair(a, b, False, "url", "url-query-id"))
    return pairs


# --- French and English -----------------------------------------------------------------

LATIN_TEXTS = (
    "Le président Emmanuel Macron a reçu mercredi à l'Élysée le roi Mohammed VI pour un "
    "dîner d'État. Les deux chefs d'État ont évoqué la coopération économique, la sécurité "
    "au Sahel et les échanges universitaires entre la France et le Maroc. Selon l'Élysée, "
    "plusieurs accords seront signés jeudi à Rabat, notamment dans l'énergie et le "
    "ferroviaire, avant une conférence de presse commune au palais royal.",
    "Le président Emmanuel Macron a annoncé mercredi une réforme des retraites qui sera "
    "présentée au Conseil des ministres le mois prochain. Le gouvernement prévoit un report "
    "progressif de l'âge légal et une hausse des pensions minimales, a précisé la première "
    "ministre devant l'Assemblée nationale, où l'opposition réclame un référendum.",
    "The United Nations Security Council met on Tuesday in New York to discuss the "
    "humanitarian situation in Gaza. The Secretary-General urged all parties to allow aid "
    "convoys through the Rafah crossing and warned that hospitals were running out of fuel. "
    "Several members called for an immediate ceasefire, while others asked for the release "
    "of hostages held since the attack.",
    "The United Nations Security Council on Tuesday extended the mandate of its peacekeeping "
    "mission in Lebanon for another year. The resolution, adopted unanimously in New York, "
    "asks the force to report every four months on the situation along the Blue Line and "
    "on violations of the ceasefire by either side.",
)


def latin_pairs(rng: random.Random) -> list[Pair]:
    from feeds.dedupe import normalize_text

    pairs = []
    for i, text in enumerate(LATIN_TEXTS):
        doc = Doc(f"latin{i}", f"https://news.example/{i}", text)
        plain = Doc(f"latin{i}~plain", "", normalize_text(text).upper())
        edited = " ".join(change_words(text.split(), 0.03, rng))
        pairs += [
            Pair(doc, plain, True, "text", "latin-case-accents"),
            Pair(doc, Doc(f"latin{i}~3%", "", edited), True, "near", "latin-3%-words"),
            Pair(doc, Doc(f"latin{i}~prefix", "", " ".join(text.split()[:45])), True, "near",
                 "latin-prefix"),
        ]
    for i in (0, 2):
        a = Doc(f"latin{i}", "", LATIN_TEXTS[i])
        b = Doc(f"latin{i + 1}", "", LATIN_TEXTS[i + 1])
        pairs.append(Pair(a, b, False, "near", "latin-shared-names"))
    return pairs


def build(seed: int = 7, originals: int = 250) -> tuple[list[Doc], list[Pair], dict]:
    """(background articles, labelled pairs, notes) for the evaluation."""
    rng = random.Random(seed)
    docs = load_articles()
    by_id = {d.id: d for d in docs}
    by_file = {}
    with open(ANT / "articles.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            by_file[row["file"].split("/", 1)[-1]] = by_id[row["docno"]]
    long_docs = [d for d in docs if len(d.text.split()) >= 150]
    pairs: list[Pair] = []
    for doc in rng.sample(long_docs, min(originals, len(long_docs))):
        pairs += positives(doc, rng)
    negatives, unlabelled = hard_negatives(by_file, by_id)
    docs += [d for d in same_story_rows() if d.id not in {x.id for x in docs}]
    pairs += negatives
    pairs += same_day_negatives(docs, 400, rng)
    pairs += url_negatives(docs, 200, rng)
    pairs += latin_pairs(rng)
    return docs, pairs, {"unlabelled_possible_copies": unlabelled}


if __name__ == "__main__":
    reason = corpus_missing()
    if reason:
        print(f"skipped: {reason}")
        raise SystemExit(0)
    _docs, _pairs, notes = build()
    counts: dict[tuple[str, bool], int] = defaultdict(int)
    for pair in _pairs:
        counts[(pair.kind, pair.duplicate)] += 1
    for (kind, dup), n in sorted(counts.items()):
        print(f"{'+' if dup else '-'} {kind:24} {n}")
    print(notes)
