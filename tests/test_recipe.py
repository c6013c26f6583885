"""One recipe from events to documents: a new customer alone gets what it has inside the base,
in the segmenter and in the classifier; sections switch; the vocabulary feeds the stop words;
no import cycles in the package."""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from segmenter.classify.workflow import CustomerModel
from segmenter.config import SegmenterConfig
from segmenter.data import EventData
from segmenter.documents import DocumentRecipe
from segmenter.model import Segmenter
from segmenter.render import SECTIONS, TASTE_SECTIONS
from segmenter.terms import stop_words, tokenize
from segmenter.vocabulary import FREQUENCY_WORDS, NOTHING_KNOWN, VALUE_WORDS, phrases


class HashEncoder:
    """Deterministic unit vectors per text (no model)."""

    identity = "hash:test"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).normal(size=16)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32).reshape(len(texts), 16)


class RecordingClassifier:
    """Stands in for a trained classifier: records the documents it is asked to classify."""

    classes_ = np.array(["a", "b"])

    def __init__(self) -> None:
        self.seen: list[str] = []

    def predict_proba(self, documents: Sequence[str]) -> np.ndarray:
        self.seen.extend(documents)
        return np.full((len(documents), 2), 0.5, dtype=np.float32)


def _lapsed_customers(features: pl.DataFrame, n: int) -> list[str]:
    """Customers whose last event is long before the base's: their recency is what a recipe
    that forgot the training date would get wrong; one of them without a repeat order (the
    training gap between orders matters to it)."""
    lapsed = features.sort("recency_days", descending=True)
    one_timer = lapsed.filter(pl.col("frequency") <= 1)["user_id"].head(1).to_list()
    return one_timer + lapsed["user_id"].head(n - len(one_timer)).to_list()


def _alone(data: EventData, uid: str) -> EventData:
    assert data.users is not None
    mine = pl.col("user_id") == uid
    return EventData(data.events.filter(mine), data.users.filter(mine))


@pytest.fixture(scope="module")
def segmenter(small_data: EventData) -> Segmenter:
    config = SegmenterConfig(k=4, seed=0, umap_dims=2)
    return Segmenter(config, encoder=HashEncoder(), progress=False).fit(small_data)


def test_segmenter_places_a_customer_alone_as_inside_the_base(
    segmenter: Segmenter, small_data: EventData, tmp_path: Path
) -> None:
    customers = _lapsed_customers(segmenter.features_, 4)
    assert segmenter.features_.filter(pl.col("user_id").is_in(customers))["recency_days"].min() > 5
    segmenter.save(tmp_path / "model")
    loaded = Segmenter.load(tmp_path / "model", encoder=HashEncoder(), progress=False)
    for model in (segmenter, loaded):
        for uid in customers:
            features, documents, _ = model.transform(_alone(small_data, uid))
            mine = pl.col("user_id") == uid
            assert features.equals(segmenter.features_.filter(mine)), uid
            assert documents.equals(segmenter.documents_.filter(mine)), uid


def test_classifier_predicts_a_customer_alone_from_its_training_document(
    small_data: EventData, small_features: pl.DataFrame
) -> None:
    """The recipe of ``train_on_events`` keeps the training date and gap between orders."""
    recipe = DocumentRecipe(max_tokens=128)
    features, documents = recipe.fit_transform(small_data.events, small_data.users)
    restored = DocumentRecipe.from_state(json.loads(json.dumps(recipe.state())))
    expected = dict(documents.iter_rows())
    for fitted in (recipe, restored):
        classifier = RecordingClassifier()
        model = CustomerModel(classifier, fitted)  # type: ignore[arg-type]
        customers = _lapsed_customers(features, 4)
        for uid in customers:
            model.predict(_alone(small_data, uid))
        assert classifier.seen == [expected[uid] for uid in customers]


def test_sections_switch_parts_of_the_document(
    small_data: EventData, small_features: pl.DataFrame
) -> None:
    def build(**params: object) -> list[str]:
        recipe = DocumentRecipe(max_tokens=512, **params)  # type: ignore[arg-type]
        return recipe.fit_transform(small_data.events, small_data.users)[1]["document"].to_list()

    taste = build()
    assert taste == build(sections=TASTE_SECTIONS)  # the default: what they buy and write
    full = build(sections=SECTIONS)
    assert not any("Shops mostly" in doc or "Rates " in doc for doc in taste)
    assert build(sections=tuple(reversed(SECTIONS))) == full  # the order is the document's
    no_value = build(sections=tuple(s for s in SECTIONS if s != "value"))
    value_words = [w for words in VALUE_WORDS.values() for w in words] + list(FREQUENCY_WORDS)
    for doc, without in zip(full, no_value, strict=True):
        assert doc.endswith(without) and doc != without
        assert not any(without.startswith(w) for w in value_words)
    texts_only = build(sections=("texts",))
    written = [d for d in texts_only if d != NOTHING_KNOWN]
    assert len(written) >= 100
    # a customer who only wrote is the text itself, with no label in front of it
    assert not any(d.startswith(("Searches: ", "Writes: ")) or '"' in d[:1] for d in written)
    habits_only = build(sections=("habits",))
    assert all(d.startswith("Shops ") and " via " not in d for d in habits_only)
    channels_only = [d for d in build(sections=("channels",)) if d != NOTHING_KNOWN]
    assert channels_only and all(d.startswith("Shops via ") for d in channels_only)


def test_stop_words_cover_every_phrase_of_the_vocabulary() -> None:
    stop = stop_words()
    for phrase in phrases():
        assert set(tokenize(phrase)) <= stop, phrase
    assert {"email", "phone", "number", "country", "age", "band"} <= stop


def _imports(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``TYPE_CHECKING`` blocks left out)."""
    root = package.parent
    modules = {
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
        for p in package.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        found: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                candidates = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            # a package is imported before its modules: ``from segmenter import __version__``
            # in a module of segmenter is no cycle
            found |= {c for c in candidates if c in modules and not name.startswith(c)}
        graph[name] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_in_the_package(repo_root: Path) -> None:
    graph = _imports(repo_root / "segmenter")
    assert graph["segmenter.documents"] >= {"segmenter.facts", "segmenter.render"}
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check works
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
