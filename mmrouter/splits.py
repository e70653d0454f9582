"""Split a zoo's questions into disjoint aptitude-pool, training and test sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class Split:
    """Row indices into ``Zoo.questions``; the three sets never overlap."""

    aptitude_pool: np.ndarray
    train: np.ndarray
    test: np.ndarray


def split_questions(scores: np.ndarray, *, test_size: int, aptitude_pool_size: int,
                    max_train_questions: int, seed: int, candidates: list[str] | None = None) -> Split:
    """Shuffle the questions every candidate was evaluated on, then cut them into three disjoint sets.

    Questions with a missing result for any candidate are left out: they cannot be scored for routing.
    """
    complete = np.flatnonzero(~np.isnan(scores).any(axis=1))
    needed = test_size + aptitude_pool_size + 1
    if len(complete) < needed:
        missing = np.isnan(scores).sum(axis=0)
        worst = int(np.argmax(missing)) if missing.size else 0
        hint = ""
        if candidates and missing.size and missing[worst]:
            hint = (f" (candidate {candidates[worst]!r} has no result for {int(missing[worst])} of {len(scores)} "
                    "questions: check its scores column, or drop it from the zoo)")
        raise ConfigError(
            f"split needs at least {needed} questions that every candidate answered "
            f"(test_size={test_size} + aptitude_pool_size={aptitude_pool_size} + training), the zoo has {len(complete)}"
            f"{hint}; lower split.test_size or split.aptitude_pool_size")
    order = np.random.default_rng(seed).permutation(complete)
    test = np.sort(order[:test_size])
    pool = np.sort(order[test_size:test_size + aptitude_pool_size])
    train = order[test_size + aptitude_pool_size:]
    if max_train_questions > 0:
        train = train[:max_train_questions]
    return Split(aptitude_pool=pool, train=np.sort(train), test=test)
