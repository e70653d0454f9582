"""Aptitude-test selection and capability representations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrouter.aptitude import (AptitudeTask, AptitudeTest, question_disagreement, readable_task_name,
                               select_aptitude_test, task_keywords)
from mmrouter.capability import CapabilityRepresentation, capability_representation, task_line
from mmrouter.errors import ConfigError, InputError
from mmrouter.splits import split_questions
from mmrouter.zoo import Question


@pytest.mark.parametrize("raw, readable", [
    ("ori_mmlu-high_school_mathematics", "high school mathematics"),
    ("stemez-PhysicalChemistry", "physical chemistry"),
    ("theoremqa-Physics", "physics"),
    ("scibench_quantum", "quantum"),
    ("agentverse-logicgrid", "agentverse logicgrid"),
    ("business", "business"),
])
def test_readable_task_name(raw, readable):
    assert readable_task_name(raw) == readable


def test_question_disagreement_values():
    scores = np.array([[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, np.nan]], dtype=float)
    np.testing.assert_allclose(question_disagreement(scores), [0.0, 0.0, 1.0, 0.5, 0.0])


# -- synthetic questions where the disagreement of every question is known -------------------------------------------
N_MODELS = 4


def _row(share_right: float) -> list[float]:
    right = round(share_right * N_MODELS)
    return [1.0] * right + [0.0] * (N_MODELS - right)


def _synthetic(tasks: dict[str, list[float]], category: str = "science"):
    questions, rows = [], []
    for subject, shares in tasks.items():
        for i, share in enumerate(shares):
            words = {"ori_mmlu-alpha_topic": "integral derivative", "stemez-BetaTopic": "enzyme protein",
                     "gamma": "contract tort", "delta": "sonnet poem"}.get(subject, "misc")
            questions.append(Question(query_id=f"{subject}/{i}", text=f"Question {i} about {words} number {i}",
                                      subject=subject, category=category, dataset="synthetic"))
            rows.append(_row(share))
    return questions, np.array(rows)


TASKS = {
    # per question: share of the zoo that is right (0.5 -> disagreement 1, 0.25/0.75 -> 0.5, 0/1 -> 0)
    "ori_mmlu-alpha_topic": [0.0, 0.5, 1.0, 0.5, 0.25, 0.0],   # best two: rows 1 and 3 (mean 1.0)
    "stemez-BetaTopic": [0.25, 0.75, 0.0, 0.25, 1.0, 1.0],      # best two: any two of rows 0, 1, 3 (mean 0.5)
    "gamma": [0.0, 0.0, 1.0, 1.0, 0.0, 0.25],                   # best two: row 5 and a 0 (mean 0.25)
    "delta": [0.5, 0.5, 0.5],                                    # highest disagreement, but too few questions
}


def test_selection_prefers_disagreement_exactly():
    questions, scores = _synthetic(TASKS)
    pool = np.arange(len(questions))
    test = select_aptitude_test(questions, scores, pool, num_tasks=2, questions_per_task=2, seed=0)
    assert [t.name for t in test.tasks] == ["ori_mmlu-alpha_topic", "stemez-BetaTopic"]  # sorted by name
    alpha, beta = test.tasks
    assert set(alpha.question_ids) == {"ori_mmlu-alpha_topic/1", "ori_mmlu-alpha_topic/3"}
    assert len(beta.question_ids) == 2
    assert set(beta.question_ids) <= {"stemez-BetaTopic/0", "stemez-BetaTopic/1", "stemez-BetaTopic/3"}
    assert test.question_ids == list(alpha.question_ids) + list(beta.question_ids)
    # keywords: readable task name first, then the most common category
    assert alpha.keywords[:2] == ("alpha topic", "science")
    assert beta.keywords[:2] == ("beta topic", "science")
    assert all(1 <= len(t.keywords) <= 5 for t in test.tasks)


def test_selection_only_uses_pool_rows():
    questions, scores = _synthetic(TASKS)
    ids = [q.query_id for q in questions]
    # leave alpha's two best questions out of the pool: alpha now offers a 0.5 (row 4) and zeros
    pool = np.array([i for i, qid in enumerate(ids) if qid not in ("ori_mmlu-alpha_topic/1", "ori_mmlu-alpha_topic/3")])
    test = select_aptitude_test(questions, scores, pool, num_tasks=3, questions_per_task=2,
                                min_questions_per_task=4, seed=0)
    chosen = set(test.question_ids)
    assert chosen <= {ids[i] for i in pool}
    alpha = next(t for t in test.tasks if t.name == "ori_mmlu-alpha_topic")
    assert "ori_mmlu-alpha_topic/4" in alpha.question_ids


def test_full_tasks_rank_before_partial_ones_and_small_tasks_are_skipped():
    questions, scores = _synthetic(TASKS)
    pool = np.arange(len(questions))
    # questions_per_task=6: alpha, beta and gamma have 6 (full); delta has 3 < min_questions_per_task=5
    test = select_aptitude_test(questions, scores, pool, num_tasks=10, questions_per_task=6, seed=0)
    assert {t.name for t in test.tasks} == {"ori_mmlu-alpha_topic", "stemez-BetaTopic", "gamma"}
    assert all(len(t.question_ids) == 6 for t in test.tasks)
    # with a low minimum delta is usable but ranks after full tasks despite its higher disagreement
    test = select_aptitude_test(questions, scores, pool, num_tasks=3, questions_per_task=6,
                                min_questions_per_task=3, seed=0)
    assert "delta" not in {t.name for t in test.tasks}
    test = select_aptitude_test(questions, scores, pool, num_tasks=1, questions_per_task=3,
                                min_questions_per_task=3, seed=0)
    assert [t.name for t in test.tasks] == ["delta"]


def test_selection_errors():
    questions, scores = _synthetic(TASKS)
    with pytest.raises(ConfigError, match="task_field"):
        select_aptitude_test(questions, scores, np.arange(len(questions)), num_tasks=2, questions_per_task=2,
                             task_field="answer")
    with pytest.raises(ConfigError, match="aptitude_pool_size"):
        select_aptitude_test(questions, scores, np.arange(4), num_tasks=2, questions_per_task=2)


def test_task_field_dataset_and_empty_subject_falls_back_to_dataset():
    questions, scores = _synthetic({"": [0.5] * 6})
    test = select_aptitude_test(questions, scores, np.arange(6), num_tasks=1, questions_per_task=3)
    assert [t.name for t in test.tasks] == ["synthetic"]
    test = select_aptitude_test(questions, scores, np.arange(6), num_tasks=1, questions_per_task=3,
                                task_field="dataset")
    assert [t.name for t in test.tasks] == ["synthetic"] and len(test.question_ids) == 3


def test_task_keywords_distinctive_words_and_limit():
    texts = {"a": ["integral integral derivative calculus", "integral limits calculus"],
             "b": ["enzyme protein calculus", "enzyme membrane"]}
    labels = {"a": ["maths"], "b": ["biology", "science"]}
    keywords = task_keywords(texts, labels, max_keywords=3)
    assert keywords["a"][0] == "maths" and keywords["a"][1] == "integral"  # most frequent distinctive word
    assert keywords["b"][:3] == ("biology", "science", "enzyme")
    assert all(len(k) <= 3 for k in keywords.values())
    wide = task_keywords(texts, labels, max_keywords=5)
    assert wide["b"] == ("biology", "science", "enzyme", "membrane", "protein")  # not 'calculus': in both tasks
    assert len(wide["a"]) == 5 and wide["a"][-1] == "calculus"  # words in every task rank last


def test_aptitude_test_json_round_trip(tmp_path):
    test = AptitudeTest((AptitudeTask("t1", ("a", "b"), ("q1", "q2")), AptitudeTask("t2", ("c",), ("q3",))))
    path = tmp_path / "aptitude_test.json"
    test.save(path)
    import json

    assert AptitudeTest.from_json(json.loads(path.read_text())) == test
    assert test.question_ids == ["q1", "q2", "q3"]


# -- on the real default zoo -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_split(small_zoo):
    return split_questions(small_zoo.scores, test_size=200, aptitude_pool_size=2000, max_train_questions=500, seed=0)


def test_real_zoo_aptitude_test(small_zoo, real_split):
    pool_ids = {small_zoo.questions[i].query_id for i in real_split.aptitude_pool}
    pool_subjects = {small_zoo.questions[i].subject for i in real_split.aptitude_pool}
    test = select_aptitude_test(small_zoo.questions, small_zoo.scores, real_split.aptitude_pool, num_tasks=10,
                                questions_per_task=8, seed=0)
    assert 1 <= len(test.tasks) <= 10
    assert len({t.name for t in test.tasks}) == len(test.tasks)
    assert all(t.name in pool_subjects for t in test.tasks)
    assert all(1 <= len(t.question_ids) <= 8 for t in test.tasks)
    assert all(1 <= len(t.keywords) <= 5 and all(isinstance(k, str) and k for k in t.keywords) for t in test.tasks)
    assert set(test.question_ids) <= pool_ids
    assert len(set(test.question_ids)) == len(test.question_ids)
    by_id = {q.query_id: q for q in small_zoo.questions}
    for task in test.tasks:
        assert task.keywords[0] == readable_task_name(task.name)
        assert all(by_id[qid].subject == task.name for qid in task.question_ids)
    # the chosen questions are the ones the zoo disagrees on
    disagreement = question_disagreement(small_zoo.scores)
    row_of = {q.query_id: i for i, q in enumerate(small_zoo.questions)}
    chosen = disagreement[[row_of[q] for q in test.question_ids]]
    assert chosen.mean() > disagreement[real_split.aptitude_pool].mean() + 0.2
    # deterministic for the seed
    again = select_aptitude_test(small_zoo.questions, small_zoo.scores, real_split.aptitude_pool, num_tasks=10,
                                 questions_per_task=8, seed=0)
    assert again.to_json() == test.to_json()


def test_real_zoo_aptitude_test_size_limits(small_zoo, real_split):
    test = select_aptitude_test(small_zoo.questions, small_zoo.scores, real_split.aptitude_pool, num_tasks=3,
                                questions_per_task=2, max_keywords=2, seed=1)
    assert len(test.tasks) == 3
    assert all(len(t.question_ids) == 2 and len(t.keywords) <= 2 for t in test.tasks)


# -- capability representations --------------------------------------------------------------------------------------
APTITUDE = AptitudeTest((AptitudeTask("ori_mmlu-algebra", ("algebra", "equations"), ("q1", "q2")),
                         AptitudeTask("stemez-Optics", ("optics",), ("q3", "q4", "q5", "q6"))))


def test_capability_text_format_and_accuracies():
    results = {"q1": 0.62, "q2": 0.62, "q3": 1.0, "q4": 0.0, "q5": 1.0, "q6": 1.0, "unrelated": 0.0}
    cap = capability_representation("model-x", APTITUDE, results)
    assert cap.model == "model-x"
    assert cap.accuracies == pytest.approx((0.62, 0.75))
    assert cap.overall == pytest.approx((0.62 * 2 + 3.0) / 6)
    assert cap.lines == ("The model achieves 62% on the task of 'algebra, equations'.",
                         "The model achieves 75% on the task of 'optics'.")
    assert cap.overall_line == "The model achieves 71% on average over all 2 tasks."
    assert cap.text() == "\n".join([cap.overall_line, *cap.lines])
    assert CapabilityRepresentation.from_json(cap.to_json()) == cap
    assert task_line(0.0, ("x", "y")) == "The model achieves 0% on the task of 'x, y'."
    assert task_line(1.0, ("x",)) == "The model achieves 100% on the task of 'x'."


def test_capability_accuracies_match_synthetic_zoo():
    questions, scores = _synthetic(TASKS)
    test = select_aptitude_test(questions, scores, np.arange(len(questions)), num_tasks=3, questions_per_task=4,
                                seed=0)
    ids = [q.query_id for q in questions]
    for n in range(N_MODELS):
        cap = capability_representation(f"m{n}", test, dict(zip(ids, scores[:, n].tolist())))
        for task, accuracy in zip(test.tasks, cap.accuracies):
            expected = np.mean([scores[ids.index(q), n] for q in task.question_ids])
            assert accuracy == pytest.approx(expected)
            assert f"achieves {round(100 * expected)}% on the task of" in cap.lines[test.tasks.index(task)]


@pytest.mark.parametrize("results", [
    {"q1": 1.0, "q2": 1.0, "q3": 1.0, "q4": 1.0, "q5": 1.0},              # q6 missing
    {"q1": 1.0, "q2": None, "q3": 1.0, "q4": 1.0, "q5": 1.0, "q6": 1.0},  # None
    {"q1": 1.0, "q2": 1.0, "q3": math.nan, "q4": 1.0, "q5": 1.0, "q6": 1.0},
])
def test_missing_results_raise_input_error_naming_the_candidate(results):
    with pytest.raises(InputError) as caught:
        capability_representation("newcomer-7b", APTITUDE, results)
    message = str(caught.value)
    assert "'newcomer-7b'" in message
    assert "1 aptitude question" in message
    assert "aptitude_test.json" in message
