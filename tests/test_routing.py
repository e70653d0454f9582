"""routing.route() and the reference routers (kNN, best single, random)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import mmrouter
from mmrouter.errors import InputError
from mmrouter.routers import (BestSingleRouter, Decision, Instruction, KNNRouter, RandomRouter, Router,
                              expected_random_accuracy)
from mmrouter.routing import route


@pytest.fixture(scope="module")
def loaded_router(saved_router):
    return mmrouter.load_router(saved_router)


def test_route_returns_a_decision(loaded_router):
    decision = route(text="Solve x^2 = 4 for x.", router=loaded_router)
    assert isinstance(decision, Decision)
    assert decision.model in loaded_router.candidates
    assert list(decision.scores) == loaded_router.candidates
    assert all(0.0 < s < 1.0 for s in decision.scores.values())
    assert decision.model == max(decision.scores, key=decision.scores.get)
    again = mmrouter.route(text="Solve x^2 = 4 for x.", router=loaded_router)
    assert again == decision


@pytest.mark.parametrize("text", ["", "   \n", None])
def test_empty_text_is_an_input_error(loaded_router, text):
    with pytest.raises(InputError, match="empty"):
        route(text=text, router=loaded_router)


def test_route_needs_a_router():
    with pytest.raises(InputError, match="load_router"):
        route(text="hi", router="runs/default/router")


def test_image_with_text_only_encoder(loaded_router, tmp_path):
    from PIL import Image

    image = Image.new("RGB", (8, 8), color=(200, 10, 10))
    with pytest.raises(InputError, match="does not embed images"):
        route(image=image, text="What is in this picture?", router=loaded_router)
    path = tmp_path / "red.png"
    image.save(path)
    with pytest.raises(InputError, match="vision encoder"):
        route(image=path, text="What is in this picture?", router=loaded_router)
    with pytest.raises(InputError, match="does not embed images"):
        route(image=str(path), router=loaded_router)  # image only, no text


def test_missing_image_file(loaded_router, tmp_path):
    path = tmp_path / "no_such_picture.png"
    with pytest.raises(InputError, match="does not exist") as caught:
        route(image=path, text="describe it", router=loaded_router)
    assert str(path) in str(caught.value)


def test_folder_as_image(loaded_router, tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        route(image=tmp_path, text="describe it", router=loaded_router)


@pytest.mark.parametrize("content", [b"this is not a png", b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_corrupt_image_file(loaded_router, tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a readable image") as caught:
        route(image=str(path), text="describe it", router=loaded_router)
    assert str(path) in str(caught.value)


# -- reference routers -----------------------------------------------------------------------------------------------
TOPICS = {
    "integral": ("calculus", "Compute the integral of x squared from zero to one using calculus"),
    "enzyme": ("biology", "Which enzyme in the stomach breaks down protein molecules"),
    "contract": ("law", "Is a verbal contract for the sale of land enforceable in court"),
}


def _bag_of_words(vocabulary):
    def embed(texts):
        out = np.zeros((len(texts), len(vocabulary)))
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                if word in vocabulary:
                    out[row, vocabulary[word]] += 1
        return out
    return embed


@pytest.fixture
def knn_setup():
    candidates = ["calc-model", "bio-model", "law-model"]
    texts, scores = [], []
    for n, (_, text) in enumerate(TOPICS.values()):
        for variant in range(4):
            texts.append(f"{text} variant {variant}")
            row = [0.0, 0.0, 0.0]
            row[n] = 1.0
            scores.append(row)
    words = sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower())})
    embed = _bag_of_words({w: i for i, w in enumerate(words)})
    return candidates, texts, np.array(scores), embed


def test_knn_picks_the_candidate_right_on_near_duplicates(knn_setup):
    candidates, texts, scores, embed = knn_setup
    router = KNNRouter(candidates, embed(texts), scores, k=3, embed=embed)
    queries = [Instruction("Which enzyme in the stomach breaks down protein?"),
               Instruction("compute the integral of x squared using calculus"),
               Instruction("Is a verbal contract for land enforceable")]
    decisions = router.route(queries)
    assert [d.model for d in decisions] == ["bio-model", "calc-model", "law-model"]
    assert decisions[0].scores["bio-model"] == pytest.approx(1.0, abs=1e-5)
    assert decisions[0].scores["law-model"] == pytest.approx(0.0, abs=1e-5)
    # k larger than the training set is clipped; all neighbours averaged
    wide = KNNRouter(candidates, embed(texts), scores, k=100, embed=embed)
    assert wide.k == len(texts)
    np.testing.assert_allclose(wide.score(queries[:1])[0], [1 / 3, 1 / 3, 1 / 3], atol=1e-5)


def test_knn_ties_break_by_training_accuracy():
    candidates = ["weak", "strong"]
    train_scores = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    router = KNNRouter(candidates, np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]]), train_scores, k=1,
                       embed=lambda texts: np.array([[1.0, 0.0]] * len(texts)))
    assert router.route([Instruction("q")])[0].model == "strong"


def test_best_single_router():
    scores = np.array([[1, 0, 1], [1, 1, 0], [0, 1, np.nan], [1, 0, 1]], dtype=float)
    router = BestSingleRouter(["a", "b", "c"], scores)
    np.testing.assert_allclose(router.prior, [0.75, 0.5, 2 / 3])
    decisions = router.route([Instruction("x"), Instruction("y")])
    assert [d.model for d in decisions] == ["a", "a"]
    assert decisions[0].scores == pytest.approx({"a": 0.75, "b": 0.5, "c": 2 / 3})


def test_random_router_is_seeded_and_covers_candidates():
    candidates = ["a", "b", "c", "d"]
    queries = [Instruction(f"q{i}") for i in range(200)]
    first = [d.model for d in RandomRouter(candidates, seed=1).route(queries)]
    second = [d.model for d in RandomRouter(candidates, seed=1).route(queries)]
    other = [d.model for d in RandomRouter(candidates, seed=2).route(queries)]
    assert first == second and first != other
    counts = {c: first.count(c) for c in candidates}
    assert all(30 <= n <= 70 for n in counts.values()), counts
    assert RandomRouter(candidates).route([]) == []


def test_expected_random_accuracy():
    assert expected_random_accuracy(np.array([[1, 0], [1, np.nan]], dtype=float)) == pytest.approx(2 / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy: mean of empty slice
        assert expected_random_accuracy(np.full((2, 2), np.nan)) == 0.0


class _Broken(Router):
    def __init__(self, result):
        self.candidates = ["a", "b"]
        self.result = result

    def score(self, instructions):
        return self.result


def test_router_route_checks_scores():
    with pytest.raises(RuntimeError, match="shape"):
        _Broken(np.zeros((1, 3))).route([Instruction("x")])
    with pytest.raises(RuntimeError, match="NaN"):
        _Broken(np.array([[np.nan, 1.0]])).route([Instruction("x")])
    assert _Broken(np.array([[0.2, 0.7]])).route([Instruction("x")])[0] == Decision("b", {"a": 0.2, "b": 0.7})
