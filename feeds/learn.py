"""Learning topics from examples: a TF-IDF + linear classifier that editors train.

`nashra train` fits it on labelled articles (a JSONL file, or stored articles whose
source or front matter named their topics), reports cross-validated precision, recall and
F1 per label, and saves it beside the config. Topics with `decide = "model"` or `"both"`
are then decided by its probability (feeds.tagging.Tagger asks `TopicModel.decide`).

Features are computed on the text lowercased, not folded: words and word pairs after a
light Arabic stemmer (light_stem), and character 2-5-grams, each TF-IDF; a logistic
regression per label, classes weighted. Trained on four news outlets and scored on a fifth
(bench/bench_classify.py), this beat folded text, the title counted twice and sublinear term
frequency, which had fitted the training outlets' own wording. The character n-grams are
counted with numpy (CharNgrams): scikit-learn's analyzer builds a Python string per n-gram,
15 ms an article, which tagging at ingest cannot afford.

Sources differ in their mix of topics (one outlet is half Middle East, another two-fifths
sport), and a model carries its training mix into every source. So the model adapts to
each source: `adapt` estimates a source's mix from its unlabelled stored articles (EM after
Saerens et al. 2002, "Adjusting the outputs of a classifier to new a priori
probabilities"), and the source's probabilities are then moved part of the way toward it
(ADAPT_STRENGTH).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, MultiLabelBinarizer

from feeds import batched
from feeds.clean import plain_text
from feeds.config import ConfigError, Decision, Settings
from feeds.model import Article

MODEL_FORMAT = 3  # bumped when what is saved changes shape
MIN_EXAMPLES = 5  # per label: fewer cannot be cross-validated, nor learnt from
ADAPT_MIN = 30  # a source's articles needed to estimate its mix of labels
GAP_EXPECTED = 10  # examples of a label a source would have at the others' rate
# The share of the way from the training mix's odds to a source's (on a log scale) that its
# probabilities are moved. Fully (1.0) overshoots where sources draw a line between labels
# differently (internationalNews / middleEast): bench/bench_classify.py chose 0.5.
ADAPT_STRENGTH = 0.5


class LearnError(ConfigError):
    """A user-fixable problem with training examples or the trained model (a part of the
    configuration once topics are decided by it)."""


@dataclass(frozen=True)
class Example:
    """One labelled article: its title and plain-text body, its labels, where it came from."""

    title: str
    body: str
    labels: tuple[str, ...]
    where: str  # "file.jsonl line 3" or a stored article id, for error messages
    source: str = ""  # the feed source or outlet, "" when not known


def example(title: str, body: str, labels: Iterable[str], where: str,
            source: str = "") -> Example:
    return Example(title, body, tuple(labels), where, source)


def article_example(article: Article, labels: Iterable[str] = ()) -> Example:
    return example(article.title, plain_text(article.content_html), labels, article.id,
                   article.source)


# --- features ------------------------------------------------------------------------------


class CharNgrams(TransformerMixin, BaseEstimator):
    """Counts of character n-grams (spaces included), those seen in `min_df` documents.

    Each n-gram is hashed to 40 bits from its code points in one vectorized pass over all
    documents, the document's number put below the hash, and the keys sorted once: runs of
    one key are one n-gram's count in one document. At 10^6 distinct n-grams, one pair is
    expected to collide: this is CountVectorizer(analyzer="char") at numpy's speed.
    """

    def __init__(self, ngram_range: tuple[int, int] = (2, 5), min_df: int = 2):
        self.ngram_range = ngram_range
        self.min_df = min_df

    def fit(self, docs: Sequence[str], y=None) -> CharNgrams:
        _, hashes, _ = self._counts(docs)
        distinct, document_frequency = np.unique(hashes, return_counts=True)  # already sorted
        self.hashes_ = distinct[document_frequency >= self.min_df]
        return self

    def transform(self, docs: Sequence[str]) -> sp.csr_matrix:
        owners, hashes, counts = self._counts(docs)
        column = np.searchsorted(self.hashes_, hashes).clip(max=max(len(self.hashes_) - 1, 0))
        known = self.hashes_[column] == hashes if len(self.hashes_) else np.zeros(0, bool)
        return sp.csr_matrix((counts[known], (owners[known], column[known])),
                             shape=(len(docs), len(self.hashes_)), dtype=np.float64)

    def _counts(self, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(document, n-gram hash, count) of each n-gram in each document, by hash."""
        codes = np.frombuffer("\0".join(docs).encode("utf-32-le"), dtype=np.uint32)
        codes = codes.astype(np.uint64)
        doc_of = np.cumsum(codes == 0, dtype=np.uint64)  # a separator starts the next
        keys = []
        lowest, highest = self.ngram_range
        for size in range(lowest, min(highest, len(codes)) + 1):
            count = len(codes) - size + 1
            hashed = np.full(count, size, dtype=np.uint64)
            for offset in range(size):
                hashed = (hashed * _PRIME) ^ codes[offset:offset + count]
            whole = (doc_of[:count] == doc_of[size - 1:]) & (codes[:count] != 0)
            keys.append(((hashed[whole] * _MIX) >> _DOC_BITS << _DOC_BITS) | doc_of[:count][whole])
        keys = np.sort(np.concatenate(keys)) if keys else np.zeros(0, np.uint64)
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        starts = np.flatnonzero(first)
        counts = np.diff(starts, append=len(keys)).astype(np.float64)
        return (keys[starts] & _DOC_MASK).astype(np.int64), keys[starts] >> _DOC_BITS, counts


_PRIME, _MIX = np.uint64(0x100000001B3), np.uint64(0x9E3779B97F4A7C15)
_DOC_BITS = np.uint64(24)  # up to 16 million documents a call
_DOC_MASK = np.uint64((1 << 24) - 1)


# Light stemming after Larkey et al.'s light10, simplified to one prefix, an article (two
# letters must remain) or "و" (three must), and one common suffix (two must remain); no
# dictionary. Outlets word one story differently ("الاقتصادية", "والاقتصاد", "اقتصادي"):
# the stem is what they share.
_PREFIXES = (("وال", 2), ("بال", 2), ("كال", 2), ("فال", 2), ("لل", 2), ("ال", 2), ("و", 3))
_SUFFIXES = ("ها", "ان", "ات", "ون", "ين", "يه", "ية", "ه", "ة", "ي")
_WORD = re.compile(r"\w+")


def light_stem(word: str) -> str:
    for prefix, rest in _PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= rest:
            word = word[len(prefix):]
            break
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            return word[:-len(suffix)]
    return word


def lowered_texts(rows: Sequence[tuple[str, str]]) -> list[str]:
    """Title and body as one lowercased text, each run of white space one space."""
    return [" ".join(f"{title}\n{body}".lower().split()) for title, body in rows]


def stemmed_texts(texts: Sequence[str]) -> list[str]:
    return [" ".join(light_stem(word) for word in _WORD.findall(text)) for text in texts]


def features() -> Pipeline:
    """(title, body) rows -> stemmed words and word pairs, and characters 2-5, TF-IDF."""
    words = make_pipeline(FunctionTransformer(stemmed_texts),
                          TfidfVectorizer(ngram_range=(1, 2), min_df=2, lowercase=False))
    chars = make_pipeline(CharNgrams((2, 5), min_df=2), TfidfTransformer())
    return make_pipeline(FunctionTransformer(lowered_texts),
                         FeatureUnion([("words", words), ("chars", chars)]))


def classifier() -> LogisticRegression:
    """Logistic regression, for a probability an editor can set a threshold on; classes
    weighted so a small label is not drowned by a large one."""
    return LogisticRegression(C=10.0, class_weight="balanced", max_iter=1000)


# --- examples --------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[Example]:
    """Examples from a JSONL file, one {"title"?, "text", "label", "source"?} object a line,
    `label` a string or a list of strings; a bad line is an error naming it and the fix."""
    examples = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LearnError(f"{path}: cannot read: {exc}") from None
    for number, line in enumerate(lines, 1):
        if line.strip():
            examples.append(_json_example(line, f"{path} line {number}"))
    return examples


def _json_example(line: str, where: str) -> Example:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LearnError(f"{where}: not JSON ({exc.msg}); write one object a line") from None
    if not isinstance(item, dict):
        raise LearnError(f'{where}: write an object {{"text": "...", "label": "..."}}')
    text, title, label = item.get("text"), item.get("title", ""), item.get("label")
    source = item.get("source", "")
    if not isinstance(text, str) or not text.strip():
        raise LearnError(f'{where}: "text" is missing or empty; give the article\'s text')
    if not isinstance(title, str) or not isinstance(source, str):
        raise LearnError(f'{where}: "title" and "source" must be strings')
    labels = [label] if isinstance(label, str) else label
    if not isinstance(labels, list) or not labels or not all(
            isinstance(one, str) and one.strip() for one in labels):
        raise LearnError(f'{where}: "label" is missing; give a topic, "label": "sport", '
                         'or several, "label": ["sport", "economy"]')
    return example(title, text, (one.strip() for one in labels), where, source)


def stored_examples(articles: Iterable[Article],
                    named: Callable[[Article], tuple[str, ...]]) -> list[Example]:
    """Stored articles whose topics an editor chose (`named`: their source's or seed's
    topics), as examples; the rules' own tags are no examples, or the model would learn
    the rules back."""
    return [article_example(a, labels) for a in articles if (labels := named(a))]


def check_examples(examples: Sequence[Example], folds: int) -> None:
    """Enough examples of each label to learn it and to cross-validate in `folds` parts."""
    counts = Counter(label for e in examples for label in e.labels)
    if len(counts) < 2:
        raise LearnError(f"{len(examples)} examples with {len(counts)} label(s); a model "
                         "needs at least 2 labels, each with examples")
    needed = max(MIN_EXAMPLES, folds)
    few = sorted(f"{label} ({count})" for label, count in counts.items() if count < needed)
    if few:
        raise LearnError(f"too few examples of {', '.join(few)}: each label needs at least "
                         f"{needed}; add examples, or drop the label")


def label_gaps(examples: Sequence[Example]) -> list[str]:
    """A line for each source that never uses a label the other sources use, though at
    their rate it would have GAP_EXPECTED examples of it or more.

    Outlets draw lines between labels differently: one files the Middle East under
    international news, having no label for it, and the model is then taught both lines
    (the internationalNews / middleEast confusion in bench/bench_classify.py).
    """
    counts: dict[str, Counter] = defaultdict(Counter)  # source -> label -> examples
    for one in examples:
        counts[one.source].update(one.labels)
    sizes = Counter(one.source for one in examples)
    everyone = sum(counts.values(), Counter())
    gaps = []
    for source in sorted(s for s in counts if s):
        others = len(examples) - sizes[source]
        for label in sorted(everyone.keys() - counts[source].keys()):
            if everyone[label] * sizes[source] >= GAP_EXPECTED * others:
                gaps.append(f"source {source!r} ({sizes[source]} examples) has no {label}, "
                            f"which {everyone[label] / others:.0%} of the others have: if it "
                            f"files such articles under another label, the model learns that "
                            f"they are not {label}; relabel them, or leave them out")
    return gaps


# --- the model -------------------------------------------------------------------------------


class TopicModel:
    """A fitted pipeline, its labels and their share of the training examples (`prior`), and
    each source's estimated share (`source_mix`); decides the topics configured to use it."""

    def __init__(self, labels: Sequence[str], pipeline: Pipeline, prior: np.ndarray,
                 source_mix: dict[str, np.ndarray] | None = None):
        self.labels = tuple(labels)
        self.pipeline = pipeline
        self.prior = prior
        self.source_mix: dict[str, np.ndarray] = source_mix or {}
        self.decisions: dict[str, Decision] = {}  # slug -> how, for the topics it decides
        self._adapted_rows: dict[tuple[str, int], np.ndarray] = {}  # see _raw

    def probabilities(self, examples: Sequence[Example]) -> np.ndarray:
        """One row per example, one probability per label (each label on its own), adapted
        to the example's source where its mix is known."""
        factors = np.array([self._factor(e.source) for e in examples])
        return _shifted(self._raw(examples), factors)

    def _factor(self, source: str) -> np.ndarray:
        """What the odds of each label are multiplied by for `source` (1 when not adapted)."""
        mix = self.source_mix.get(source)
        if mix is None:
            return np.ones(len(self.labels))
        return (_odds(mix) / _odds(self.prior)) ** ADAPT_STRENGTH

    def _raw(self, examples: Sequence[Example]) -> np.ndarray:
        """The unadapted probabilities of `examples`. A row the last `adapt` computed is
        taken once instead of computed again: `nashra retag` adapts to every stored article,
        then decides each (half the cost of the model's part)."""
        kept = [self._adapted_rows.pop(_key(e), None) for e in examples]
        missing = [e for e, row in zip(examples, kept, strict=True) if row is None]
        computed = iter(self._computed(missing) if missing else ())
        return np.array([next(computed) if row is None else row for row in kept])

    def _computed(self, examples: Sequence[Example]) -> np.ndarray:
        return self.pipeline.predict_proba([(e.title, e.body) for e in examples])

    def adapt(self, examples: Iterable[Example], batch: int = 500) -> dict[str, int]:
        """Estimate the mix of labels of each source with ADAPT_MIN examples or more from the
        model's probabilities for them (their labels are not used); source -> examples."""
        rows: dict[str, list[np.ndarray]] = defaultdict(list)
        self._adapted_rows = {}
        for chunk in batched(examples, batch):
            for one, row in zip(chunk, self._computed(chunk), strict=True):
                rows[one.source].append(row)
                self._adapted_rows[_key(one)] = row
        self.source_mix = {source: estimated_mix(np.array(found), self.prior)
                           for source, found in rows.items()
                           if source and len(found) >= ADAPT_MIN}
        return {source: len(rows[source]) for source in self.source_mix}

    def adaptation(self, source: str) -> str:
        """What the model knows of `source`'s mix of labels, for `nashra tag explain`."""
        mix = self.source_mix.get(source)
        if mix is None:
            return (f"model: not adapted to source {source!r} (it had fewer than {ADAPT_MIN} "
                    "stored articles at the last `nashra train` or `retag`)")
        shares = ", ".join(f"{label} {share:.2f} ({prior:.2f})" for label, share, prior
                           in zip(self.labels, mix, self.prior, strict=True))
        return (f"model: adapted to source {source!r}, its estimated mix of labels "
                f"(training's): {shares}")

    def label_probabilities(self, article: Article) -> dict[str, float]:
        """label -> the probability that `article` has it."""
        row = self.probabilities([article_example(article)])[0]
        return dict(zip(self.labels, row.tolist(), strict=True))

    def decide(self, articles: Sequence[Article], by_rule: Sequence[set[str]]
               ) -> list[set[str]]:
        """The topics each article gets: those `by_rule` gave it, changed for the topics this
        model decides (`decide = "model"`: its probability reaches the topic's threshold;
        `"both"`: the rule's or the model's verdict; see Decision.deciders). Articles are
        read together: one at a time costs four times as much (7 against 1.7 ms)."""
        if not self.decisions:
            return list(by_rule)
        rows = self.probabilities([article_example(a) for a in articles])
        return [self._decided(dict(zip(self.labels, row.tolist(), strict=True)), rule)
                for row, rule in zip(rows, by_rule, strict=True)]

    def _decided(self, scores: dict[str, float], by_rule: set[str]) -> set[str]:
        chosen = set(by_rule)
        for slug, how in self.decisions.items():
            if how.deciders(scores[how.label], slug in by_rule):
                chosen.add(slug)
            else:
                chosen.discard(slug)
        return chosen


def _key(example: Example) -> tuple[str, int]:
    """What finds an example's row again: where it is from, and a hash of its text."""
    return example.where, hash((example.title, example.body))


_SHARE_BOUNDS = (1e-3, 1 - 1e-3)  # no label is certain, nor impossible, in any mix


def _odds(share: np.ndarray) -> np.ndarray:
    return share / (1 - share)


def _shifted(probabilities: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Each probability with its odds multiplied by its factor: a change of the label's prior
    from p to q is a factor odds(q) / odds(p) (Bayes' rule, each label on its own)."""
    odds = probabilities / (1 - probabilities).clip(1e-12) * factors
    return odds / (1 + odds)


def estimated_mix(probabilities: np.ndarray, prior: np.ndarray, rounds: int = 200
                  ) -> np.ndarray:
    """The share of each label among articles the model gave `probabilities`, had it been
    trained on `prior`: EM, each label on its own (Saerens et al. 2002). The mean adapted
    probability is the new share, which adapts the probabilities again, until it settles."""
    mix = prior
    for _ in range(rounds):
        settled = _shifted(probabilities, _odds(mix) / _odds(prior)).mean(axis=0)
        settled = settled.clip(*_SHARE_BOUNDS)
        if np.abs(settled - mix).max() < 1e-6:
            return settled
        mix = settled
    return mix


def adapt_to_stored(model: TopicModel, articles: Iterable[Article]) -> str:
    """Adapt `model` to the sources of `articles` (stored ones); a line saying to which."""
    adapted = model.adapt(article_example(a) for a in articles)
    if not adapted:
        return (f"no source has {ADAPT_MIN} stored articles yet: the model keeps its training "
                "mix of labels everywhere")
    return (f"adapted to the mix of labels of {len(adapted)} source(s) with {ADAPT_MIN} or more "
            f"stored articles: {', '.join(sorted(adapted))}")


def fit(examples: Sequence[Example]) -> TopicModel:
    binarizer = MultiLabelBinarizer()
    targets = binarizer.fit_transform([e.labels for e in examples])
    pipeline = make_pipeline(features(), OneVsRestClassifier(classifier()))
    pipeline.fit([(e.title, e.body) for e in examples], targets)
    return TopicModel(binarizer.classes_, pipeline, targets.mean(axis=0).clip(*_SHARE_BOUNDS))


def save(model: TopicModel, path: Path) -> None:
    """joblib, scikit-learn's recommended way, with the versions that must match to load."""
    joblib.dump({"format": MODEL_FORMAT, "sklearn": sklearn.__version__,
                 "labels": model.labels, "pipeline": model.pipeline, "prior": model.prior,
                 "source_mix": model.source_mix}, path)


def load(path: Path) -> TopicModel:
    """The model saved at `path`. A pickle runs code when loaded: trust it as the config."""
    fix = f"run `nashra train` again to write {path}"
    try:
        saved = joblib.load(path)
    except FileNotFoundError:
        raise LearnError(f"{path} ([model] path): no trained model; run `nashra train` to "
                         "write it") from None
    except Exception as exc:  # whatever a damaged pickle raises
        raise LearnError(f"{path}: not a Nashra model ({exc}); {fix}") from None
    if not isinstance(saved, dict) or saved.get("format") != MODEL_FORMAT:
        raise LearnError(f"{path}: written by another version of Nashra; {fix}")
    if saved["sklearn"] != sklearn.__version__:
        raise LearnError(f"{path}: trained with scikit-learn {saved['sklearn']}, this is "
                         f"{sklearn.__version__}; {fix}")
    return TopicModel(saved["labels"], saved["pipeline"], saved["prior"], saved["source_mix"])


def load_for(settings: Settings) -> TopicModel:
    """The model at [model] path, set to decide the topics configured to use it."""
    model = load(settings.model_path)
    for slug, decision in settings.decisions.items():
        if decision.label not in model.labels:
            raise LearnError(f"{settings.source}: topic {slug!r} is decided by the label "
                             f"{decision.label!r}, which the model at {settings.model_path} "
                             f"does not know (it knows {', '.join(model.labels)}); set the "
                             "topic's label, or train on examples of it")
    model.decisions = settings.decisions
    return model


# --- cross-validation ---------------------------------------------------------------------


@dataclass(frozen=True)
class LabelScore:
    label: str
    examples: int
    precision: float
    recall: float
    f1: float


def cross_validate(examples: Sequence[Example], folds: int, threshold: float = 0.5,
                   progress: Callable[[int], None] = lambda fold: None) -> list[LabelScore]:
    """Each label's precision, recall and F1 when every example is scored by a model that
    did not see it (stratified by first label) but adapted to its source's examples among
    those scored, tagged when its probability >= threshold."""
    binarizer = MultiLabelBinarizer().fit([e.labels for e in examples])
    truth = binarizer.transform([e.labels for e in examples]).astype(bool)
    predicted = np.zeros_like(truth)
    splits = StratifiedKFold(folds, shuffle=True, random_state=0).split(
        examples, [e.labels[0] for e in examples])
    for fold, (train, test) in enumerate(splits, 1):
        progress(fold)
        model = fit([examples[i] for i in train])
        scored = [examples[i] for i in test]
        model.adapt(scored)  # as `nashra train` adapts it to the stored articles
        found = model.probabilities(scored) >= threshold
        columns = [list(binarizer.classes_).index(label) for label in model.labels]
        predicted[np.ix_(test, columns)] = found
    return [_score(label, truth[:, i], predicted[:, i])
            for i, label in enumerate(binarizer.classes_)]


def _score(label: str, truth: np.ndarray, predicted: np.ndarray) -> LabelScore:
    hits = int((truth & predicted).sum())
    precision = hits / predicted.sum() if predicted.any() else 0.0
    recall = hits / truth.sum() if truth.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return LabelScore(label, int(truth.sum()), precision, recall, f1)
