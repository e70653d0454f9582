"""split_questions: disjoint, sized, seeded, and only over questions every candidate answered."""

from __future__ import annotations

import numpy as np
import pytest

from mmrouter.errors import ConfigError
from mmrouter.splits import split_questions


@pytest.fixture
def scores() -> np.ndarray:
    rng = np.random.default_rng(0)
    matrix = (rng.random((300, 4)) < 0.5).astype(np.float32)
    matrix[rng.choice(300, size=40, replace=False), rng.integers(0, 4, size=40)] = np.nan
    return matrix


def _complete(scores):
    return set(np.flatnonzero(~np.isnan(scores).any(axis=1)).tolist())


def test_sets_are_disjoint_sized_and_complete(scores):
    split = split_questions(scores, test_size=50, aptitude_pool_size=70, max_train_questions=0, seed=0)
    test, pool, train = (set(a.tolist()) for a in (split.test, split.aptitude_pool, split.train))
    assert len(split.test) == len(test) == 50
    assert len(split.aptitude_pool) == len(pool) == 70
    complete = _complete(scores)
    assert len(complete) == 260
    assert len(split.train) == len(complete) - 120  # max_train_questions=0: all the rest
    assert not test & pool and not test & train and not pool & train
    assert test | pool | train == complete  # NaN rows are left out, nothing else is
    for part in (split.test, split.aptitude_pool, split.train):
        assert np.all(np.diff(part) > 0)  # sorted row indices
        assert not np.isnan(scores[part]).any()


def test_max_train_questions_caps_training_set(scores):
    split = split_questions(scores, test_size=50, aptitude_pool_size=70, max_train_questions=25, seed=0)
    assert len(split.train) == 25
    assert len(split.test) == 50 and len(split.aptitude_pool) == 70


def test_deterministic_for_a_seed_and_different_for_another(scores):
    kwargs = dict(test_size=50, aptitude_pool_size=70, max_train_questions=0)
    a = split_questions(scores, seed=3, **kwargs)
    b = split_questions(scores, seed=3, **kwargs)
    c = split_questions(scores, seed=4, **kwargs)
    for x, y in ((a.test, b.test), (a.aptitude_pool, b.aptitude_pool), (a.train, b.train)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.test, c.test)
    assert not np.array_equal(a.aptitude_pool, c.aptitude_pool)


def test_too_few_questions_is_a_config_error(scores):
    # 260 complete rows; test 200 + pool 60 + at least one training question = 261
    with pytest.raises(ConfigError, match="at least 261") as caught:
        split_questions(scores, test_size=200, aptitude_pool_size=60, max_train_questions=0, seed=0)
    assert "the zoo has 260" in str(caught.value)
    assert "split.test_size" in str(caught.value)
    split = split_questions(scores, test_size=200, aptitude_pool_size=59, max_train_questions=0, seed=0)
    assert len(split.train) == 1


def test_too_few_questions_names_the_candidate_missing_most(scores):
    holey = scores.copy()
    holey[:250, 1] = np.nan
    with pytest.raises(ConfigError, match="candidate 'b' has no result for") as caught:
        split_questions(holey, test_size=200, aptitude_pool_size=60, max_train_questions=0, seed=0,
                        candidates=[chr(ord("a") + i) for i in range(holey.shape[1])])
    assert "drop it from the zoo" in str(caught.value)


def test_real_zoo_with_missing_results_excludes_them():
    from conftest import ZOO_SPECS
    from mmrouter.zoo import load_zoo

    zoo = load_zoo(ZOO_SPECS / "mmlu_pro_all.yaml")
    missing_rows = set(np.flatnonzero(np.isnan(zoo.scores).any(axis=1)).tolist())
    assert missing_rows
    split = split_questions(zoo.scores, test_size=500, aptitude_pool_size=500, max_train_questions=0, seed=0)
    used = set(split.test.tolist()) | set(split.aptitude_pool.tolist()) | set(split.train.tolist())
    assert not used & missing_rows
    assert len(used) == len(zoo.questions) - len(missing_rows)
