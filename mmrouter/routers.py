"""The router interface (one abstract scoring method; ``route`` is built on it) and simple reference routers."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .errors import InputError
from .registry import Registry

ROUTER_REGISTRY: Registry[type["Router"]] = Registry("router")


@dataclass(frozen=True)
class Instruction:
    """What a user asks: text, and optionally an image (a PIL image or a file path)."""

    text: str
    image: Any = None

    def __post_init__(self):
        if not isinstance(self.text, str):
            raise InputError(f"instruction text must be a string, got {type(self.text).__name__}")
        if not self.text.strip() and self.image is None:
            raise InputError("instruction text is empty; give the user's instruction "
                             "(text=... in Python, the TEXT argument of `mmrouter route`)")


@dataclass(frozen=True)
class Decision:
    """The chosen candidate and every candidate's score (higher = more likely to handle the instruction)."""

    model: str
    scores: dict[str, float] = field(default_factory=dict)


class Router(ABC):
    """Scores every candidate for each instruction; routing picks the highest score."""

    candidates: list[str]

    @abstractmethod
    def score(self, instructions: Sequence[Instruction]) -> np.ndarray:
        """[len(instructions), len(candidates)] scores; higher means the candidate is more likely to succeed."""

    def route(self, instructions: Sequence[Instruction]) -> list[Decision]:
        if not instructions:
            return []
        scores = np.asarray(self.score(instructions), dtype=np.float64)
        if scores.shape != (len(instructions), len(self.candidates)):
            raise RuntimeError(f"{type(self).__name__}.score returned shape {scores.shape}, "
                               f"expected {(len(instructions), len(self.candidates))}")
        if np.isnan(scores).any():
            raise RuntimeError(f"{type(self).__name__} produced NaN scores; the router's weights may be corrupt")
        return [Decision(self.candidates[int(np.argmax(row))], dict(zip(self.candidates, map(float, row))))
                for row in scores]


@ROUTER_REGISTRY.register("random")
class RandomRouter(Router):
    """Uniformly random choice, seeded (a floor every router must clear)."""

    def __init__(self, candidates: list[str], seed: int = 0):
        self.candidates = list(candidates)
        self.rng = np.random.default_rng(seed)

    def score(self, instructions):
        return self.rng.random((len(instructions), len(self.candidates)))


@ROUTER_REGISTRY.register("best-single")
class BestSingleRouter(Router):
    """Always the candidate with the best accuracy on training data."""

    def __init__(self, candidates: list[str], train_scores: np.ndarray):
        self.candidates = list(candidates)
        self.prior = np.nanmean(train_scores, axis=0)

    def score(self, instructions):
        return np.tile(self.prior, (len(instructions), 1))


@ROUTER_REGISTRY.register("knn")
class KNNRouter(Router):
    """Mean result of the k training instructions nearest in embedding space (cosine), per candidate.

    Ties are broken by the candidates' training accuracy.
    """

    def __init__(self, candidates: list[str], train_embeddings: np.ndarray, train_scores: np.ndarray, k: int,
                 embed: Callable[[list[str]], np.ndarray]):
        self.candidates = list(candidates)
        norms = np.linalg.norm(train_embeddings, axis=1, keepdims=True)
        self.train_embeddings = train_embeddings / np.maximum(norms, 1e-12)
        self.train_scores = np.nan_to_num(train_scores, nan=0.0)
        self.k = min(k, len(train_embeddings))
        self.embed = embed
        self.prior = np.nanmean(train_scores, axis=0)

    def score_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        embeddings = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        similarity = embeddings @ self.train_embeddings.T
        nearest = np.argpartition(-similarity, self.k - 1, axis=1)[:, :self.k]
        return self.train_scores[nearest].mean(axis=1) + 1e-6 * self.prior

    def score(self, instructions):
        return self.score_embeddings(self.embed([i.text for i in instructions]))


def expected_random_accuracy(scores: np.ndarray) -> float:
    """Expected accuracy of a uniformly random choice (exact, no sampling noise)."""
    value = float(np.nanmean(scores))
    return value if not math.isnan(value) else 0.0
