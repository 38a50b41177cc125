"""Topic classification on labelled real Arabic news: the issue's baseline beside Nashra's
model (feeds/learn.py), the rules and both, macro-F1, per category P/R/F1 and confusions.

Measures, each for the baseline and for Nashra's model (its label is the most probable),
the latter as fitted ("ours") and adapted to the label mix of the scored articles' sources
(their labels unused, as `nashra train` and `retag` adapt to stored articles: "adapted"):
  (a) 5-fold stratified cross-validation on the ANT multi-source set (5 outlets, 6 labels);
  (b) across outlets: train on four outlets of that set, score the fifth, for each;
  (c) train on the ANT v1.1 sample in ../shared (2,000 JawharaFM articles, 9 labels) and
      score on the rest of ANT v1.1 (the other 8,161 articles), read from a copy of
      github.com/antcorpus/antcorpus.data given with --ant-v11 DIR (skipped without it).
Every model is fitted on the training part only, with fixed settings; nothing is tuned
on a part that is scored.

Baseline: TfidfVectorizer words 1-2 + characters 2-5 (scikit-learn defaults otherwise)
and LinearSVC(). Its character counts come from feeds.learn.CharNgrams on the text
lowercased and with runs of white space made one, which is CountVectorizer(analyzer=
"char")'s preprocessing: the same counts (checked on 300 articles each run), 8 times
faster, so the run takes minutes rather than a quarter of an hour.

Rules: the shipped topics decide two corpus labels, sports -> sport, economy -> economy.
The others are not comparable: "international" is diplomacy, not world news; security,
terrorism and morocco have no corpus label. For these two labels the rules, the model
(probability >= 0.5, as decide = "model" tags) and both (rule or model, decide = "both")
are scored as yes/no per article, on the parts scored in (b) and (c).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC

from feeds import learn
from feeds.config import load_settings
from feeds.model import Article
from feeds.tagging import Tagger

ARTICLES = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "articles"
MULTISOURCE = ARTICLES / "ant-multisource-2018-02-27_03-12" / "articles.jsonl"
JAWHARA = ARTICLES / "ant-v1.1-jawharafm-labeled" / "articles.jsonl"
RULE_LABELS = {"sports": "sport", "economy": "economy"}  # shipped topic -> corpus label
OVERLAPS = (("internationalNews", "middleEast"), ("localNews", "society", "politic"))
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def read_ant_v11(folder: Path, leave_out: set[str]) -> list[dict]:
    """The <DOC> files of ANT v1.1 (<category>/*.txt) but those whose DOCNO is left out."""
    found = []
    for path in sorted(folder.glob("*/*.txt")):
        doc = path.read_text("utf-8")
        field = {tag: m.group(1).strip() for tag in ("DOCNO", "CAT", "TITLE", "TEXT")
                 if (m := re.search(f"<{tag}>(.*?)</{tag}>", doc, re.S))}
        if field.get("DOCNO") not in leave_out and field.get("TEXT"):
            found.append({"docno": field["DOCNO"], "cat": field["CAT"],
                          "title": field.get("TITLE", ""), "text": field["TEXT"]})
    return found


# --- the two models -------------------------------------------------------------------------


def _sklearn_char_text(texts: list[str]) -> list[str]:
    return [re.sub(r"\s\s+", " ", text.lower()) for text in texts]


def baseline() -> object:
    chars = make_pipeline(FunctionTransformer(_sklearn_char_text),
                          learn.CharNgrams((2, 5), min_df=1), TfidfTransformer())
    return make_pipeline(FeatureUnion([("words", TfidfVectorizer(ngram_range=(1, 2))),
                                       ("chars", chars)]), LinearSVC())


def check_baseline_counts(texts: list[str]) -> None:
    """CharNgrams on sklearn's preprocessing counts what CountVectorizer(char) counts."""
    ours = make_pipeline(FunctionTransformer(_sklearn_char_text),
                         learn.CharNgrams((2, 5), min_df=1)).fit_transform(texts)
    theirs = CountVectorizer(analyzer="char", ngram_range=(2, 5)).fit_transform(texts)
    same = ours.shape == theirs.shape and all(
        np.array_equal(np.sort(ours[i].data), np.sort(theirs[i].data)) for i in range(len(texts)))
    if not same:
        raise SystemExit("CharNgrams does not count as CountVectorizer(analyzer='char'): "
                         "the baseline would not be the issue's")


class Ours:
    """feeds.learn's model, predicting each article's most probable label; `adapted`, after
    adapting to the scored articles' sources, as `nashra train` and `retag` adapt it to the
    stored articles of each source (their labels are not used)."""

    def __init__(self, adapted: bool):
        self.adapted = adapted

    def fit(self, items: list[dict]) -> Ours:
        self.model = learn.fit(examples(items))
        return self

    def probabilities(self, items: list[dict]) -> np.ndarray:
        scored = examples(items)
        if self.adapted:
            self.model.adapt(scored)
        return self.model.probabilities(scored)

    def predict(self, items: list[dict]) -> np.ndarray:
        return np.array(self.model.labels)[self.probabilities(items).argmax(axis=1)]


def examples(items: list[dict]) -> list[learn.Example]:
    """Each item as an example, its outlet the source (ANT v1.1 is all JawharaFM)."""
    return [learn.example(i["title"], i["text"], (i["cat"],), i.get("docno", ""),
                          i.get("outlet", "JawharaFM")) for i in items]


def text(item: dict) -> str:
    return f"{item['title']}\n{item['text']}"


KINDS = ("baseline", "ours", "adapted")


def fitted(train: list[dict]) -> dict[str, object]:
    """kind -> the model fitted on `train` (ours once: adapting changes only its copy's
    mix of labels)."""
    ours = Ours(adapted=False).fit(train)
    adapted = Ours(adapted=True)
    adapted.model = copy.copy(ours.model)
    return {"baseline": baseline().fit([text(i) for i in train], [i["cat"] for i in train]),
            "ours": ours, "adapted": adapted}


def predict(kind: str, model, items: list[dict]) -> np.ndarray:
    return model.predict(items if kind != "baseline" else [text(i) for i in items])


# --- reports ----------------------------------------------------------------------------------


def macro(truth, predicted) -> float:
    return f1_score(truth, predicted, average="macro", zero_division=0)


def per_category(title: str, truth, predicted) -> None:
    labels = sorted(set(truth))
    p, r, f, n = precision_recall_fscore_support(truth, predicted, labels=labels,
                                                 zero_division=0)
    print(f"  {title}: macro-F1 {macro(truth, predicted):.3f}")
    for row in zip(labels, p, r, f, n, strict=True):
        print("    {:<18} P {:.3f}  R {:.3f}  F1 {:.3f}  ({} articles)".format(*row))


def confusion(truth, predicted, group: tuple[str, ...]) -> None:
    columns = [*group, "other"]
    named = [p if p in group else "other" for p in predicted]
    inside = [i for i, t in enumerate(truth) if t in group]
    matrix = confusion_matrix([truth[i] for i in inside], [named[i] for i in inside],
                              labels=columns)
    print(f"    true \\ predicted  {'  '.join(f'{c:>17}' for c in columns)}")
    for label, row in zip(group, matrix, strict=False):
        print(f"    {label:<17}  {'  '.join(f'{v:>17}' for v in row)}")


def yes_no(title: str, truth, rules: dict[str, np.ndarray], model: Ours,
           items: list[dict]) -> None:
    """Rules, model (probability >= 0.5) and both, for each label a shipped rule decides."""
    probabilities = model.probabilities(items)
    print(f"  {title}: rules, model and both as yes/no per label")
    for label, by_rule in rules.items():
        column = list(model.model.labels).index(label)
        by_model = probabilities[:, column] >= 0.5
        actual = np.array([t == label for t in truth])
        for name, said in (("rules", by_rule), ("model", by_model), ("both", by_rule | by_model)):
            p, r, f, _ = precision_recall_fscore_support(actual, said, average="binary",
                                                         zero_division=0)
            print(f"    {label:<8} {name:<6} P {p:.3f}  R {r:.3f}  F1 {f:.3f}")


def rule_verdicts(tagger: Tagger, items: list[dict]) -> dict[str, np.ndarray]:
    tags = [set(tagger.tags(Article(id=str(n), source="bench", key=str(n), title=i["title"],
                                    content_html=i["text"], summary="", language="ar",
                                    published=WHEN, updated=WHEN)))
            for n, i in enumerate(items)]
    return {label: np.array([slug in t for t in tags]) for slug, label in RULE_LABELS.items()}


# --- the measures -------------------------------------------------------------------------------


def cross_validation(items: list[dict]) -> None:
    truth = np.array([i["cat"] for i in items])
    predicted = {kind: np.empty(len(items), dtype=object) for kind in KINDS}
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(items, truth):
        for kind, model in fitted([items[i] for i in train]).items():
            predicted[kind][test] = predict(kind, model, [items[i] for i in test])
    for kind in KINDS:
        print(f"(a) 5-fold CV, multi-source   {kind:<8} macro-F1 "
              f"{macro(truth, predicted[kind]):.3f}", flush=True)


def across_outlets(items: list[dict], tagger: Tagger) -> None:
    outlets = sorted({i["outlet"] for i in items})
    for gap in learn.label_gaps(examples(items)):  # as `nashra train` notes them
        print(f"(b) {gap}")
    pooled: dict[str, list] = {kind: [] for kind in KINDS}
    truth, rules, held_out_models = [], {label: [] for label in RULE_LABELS.values()}, []
    for outlet in outlets:
        train = [i for i in items if i["outlet"] != outlet]
        test = [i for i in items if i["outlet"] == outlet]
        truth += [i["cat"] for i in test]
        line = []
        models = fitted(train)
        for kind, model in models.items():
            predicted = predict(kind, model, test)
            pooled[kind] += list(predicted)
            line.append(f"{kind} {macro([i['cat'] for i in test], predicted):.3f}")
        held_out_models.append((models["adapted"], test))
        print(f"(b) held-out outlet {outlet:<10} macro-F1 {'  '.join(line)}", flush=True)
        for label, said in rule_verdicts(tagger, test).items():
            rules[label].append(said)
    for kind in KINDS:
        per_category(f"(b) {kind}, the 5 held-out outlets pooled", truth, pooled[kind])
        confusion(truth, pooled[kind], OVERLAPS[0])
    _pooled_yes_no(truth, rules, held_out_models)


def _pooled_yes_no(truth, rules, held_out_models) -> None:
    """Rules, model and both over the held-out outlets, each scored by its own model."""
    print("  (b) rules, model (probability >= 0.5) and both, yes/no per label, pooled")
    for label, parts in rules.items():
        by_rule = np.concatenate(parts)
        by_model = np.concatenate([
            model.probabilities(test)[:, list(model.model.labels).index(label)] >= 0.5
            for model, test in held_out_models])
        actual = np.array([t == label for t in truth])
        for name, said in (("rules", by_rule), ("model", by_model), ("both", by_rule | by_model)):
            p, r, f, _ = precision_recall_fscore_support(actual, said, average="binary",
                                                         zero_division=0)
            print(f"    {label:<8} {name:<6} P {p:.3f}  R {r:.3f}  F1 {f:.3f}")


def sample_to_rest(sample: list[dict], rest: list[dict], tagger: Tagger) -> None:
    truth = [i["cat"] for i in rest]
    models = fitted(sample)
    for kind, model in models.items():
        predicted = predict(kind, model, rest)
        print(f"(c) ANT v1.1 sample -> rest   {kind:<8} macro-F1 {macro(truth, predicted):.3f}",
              flush=True)
        per_category(f"(c) {kind}", truth, predicted)
        confusion(truth, predicted, OVERLAPS[1])
    yes_no("(c)", truth, rule_verdicts(tagger, rest), models["adapted"], rest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ant-v11", type=Path, metavar="DIR",
                        help="a copy of github.com/antcorpus/antcorpus.data, for measure (c)")
    args = parser.parse_args()
    if not MULTISOURCE.is_file() or not JAWHARA.is_file():
        print(f"skipped: the labelled corpus is not at {ARTICLES} (see the shared corpus "
              "README)")
        return
    started = time.perf_counter()
    multisource, sample = read_jsonl(MULTISOURCE), read_jsonl(JAWHARA)
    check_baseline_counts([text(i) for i in multisource[::7]])
    tagger = Tagger(load_settings().topics)
    print(f"multi-source {len(multisource)} articles, ANT v1.1 sample {len(sample)}")
    cross_validation(multisource)
    across_outlets(multisource, tagger)
    if args.ant_v11 is None or not args.ant_v11.is_dir():
        print("(c) skipped: give --ant-v11 DIR, a copy of github.com/antcorpus/antcorpus.data")
    else:
        rest = read_ant_v11(args.ant_v11, {i["docno"] for i in sample})
        print(f"ANT v1.1 rest {len(rest)} articles")
        sample_to_rest(sample, rest, tagger)
    print(f"{time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
