"""The aptitude test: core tasks x questions on which the zoo disagrees most, picked from a held-out pool."""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .zoo import Question

logger = logging.getLogger(__name__)

_SOURCE_PREFIXES = re.compile(r"^(ori_mmlu|stemez|theoremqa|scibench)[-_]", re.IGNORECASE)
_STOPWORDS = frozenset("""
a about above after again against all also an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers him his how i if
in into is it its itself just let me more most much must my no nor not of off on once only or other our out over own
same she should so some such than that the their them then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your following given find value values
which one two three answer question correct true false statement statements select best choose calculate determine
use used using what's approximately following shown assume
""".split())


@dataclass(frozen=True)
class AptitudeTask:
    name: str
    keywords: tuple[str, ...]
    question_ids: tuple[str, ...]


@dataclass(frozen=True)
class AptitudeTest:
    tasks: tuple[AptitudeTask, ...]

    @property
    def question_ids(self) -> list[str]:
        return [qid for task in self.tasks for qid in task.question_ids]

    def to_json(self) -> dict:
        return {"tasks": [asdict(task) for task in self.tasks]}

    @classmethod
    def from_json(cls, data: dict) -> "AptitudeTest":
        return cls(tuple(AptitudeTask(t["name"], tuple(t["keywords"]), tuple(t["question_ids"])) for t in data["tasks"]))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")


def readable_task_name(raw: str) -> str:
    """'ori_mmlu-high_school_mathematics' -> 'high school mathematics'; 'stemez-PhysicalChemistry' -> 'physical chemistry'."""
    name = _SOURCE_PREFIXES.sub("", raw)
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return re.sub(r"[_\-\s]+", " ", name).strip().lower()


def question_disagreement(scores: np.ndarray) -> np.ndarray:
    """1 where half the zoo is right, 0 where all or none are: 1 - |2p - 1| per question."""
    return 1.0 - np.abs(2.0 * np.nanmean(scores, axis=1) - 1.0)


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z][a-z\-]{3,}", text.lower()) if w not in _STOPWORDS]


def task_keywords(task_texts: dict[str, list[str]], task_labels: dict[str, list[str]], max_keywords: int) -> dict[str, tuple[str, ...]]:
    """Up to ``max_keywords`` per task: its readable name and labels, then its most distinctive words (tf-idf)."""
    document_frequency: Counter[str] = Counter()
    term_counts: dict[str, Counter[str]] = {}
    for task, texts in task_texts.items():
        counts = Counter(w for text in texts for w in _words(text))
        term_counts[task] = counts
        document_frequency.update(counts.keys())
    n_tasks = len(task_texts)
    keywords = {}
    for task, counts in term_counts.items():
        chosen: list[str] = []
        for label in task_labels[task]:
            if label and label not in chosen:
                chosen.append(label)
        ranked = sorted(counts, key=lambda w: (-counts[w] * math.log((1 + n_tasks) / (1 + document_frequency[w])), w))
        for word in ranked:
            if len(chosen) >= max_keywords:
                break
            if not any(word in existing for existing in chosen):
                chosen.append(word)
        keywords[task] = tuple(chosen[:max_keywords])
    return keywords


def select_aptitude_test(questions: list[Question], scores: np.ndarray, pool: np.ndarray, *, num_tasks: int,
                         questions_per_task: int, max_keywords: int = 5, task_field: str = "subject",
                         min_questions_per_task: int = 5, seed: int = 0) -> AptitudeTest:
    """Pick ``num_tasks`` tasks x ``questions_per_task`` questions from the pool rows, where the zoo disagrees most.

    Tasks are groups of questions sharing ``task_field`` (MMLU-Pro subjects, LLMRouter datasets). Within a task the
    questions closest to half the zoo right come first; tasks rank by the mean disagreement of their chosen questions.
    """
    if task_field not in ("subject", "category", "dataset"):
        raise ConfigError(f"aptitude.task_field must be subject, category or dataset, got {task_field!r}")
    rng = np.random.default_rng(seed)
    disagreement = question_disagreement(scores)
    by_task: dict[str, list[int]] = defaultdict(list)
    for row in pool:
        label = getattr(questions[row], task_field) or questions[row].dataset
        by_task[label].append(int(row))
    ranked_tasks = []
    for label, rows in by_task.items():
        if len(rows) < min_questions_per_task:
            continue
        rows_array = np.array(rows)
        tie_break = rng.random(len(rows_array))
        order = np.lexsort((tie_break, -disagreement[rows_array]))
        chosen = rows_array[order[:questions_per_task]]
        ranked_tasks.append((len(chosen) >= questions_per_task, float(disagreement[chosen].mean()), label, chosen))
    if not ranked_tasks:
        raise ConfigError(f"no task in the aptitude pool has {min_questions_per_task}+ questions; "
                          "raise split.aptitude_pool_size or choose another aptitude.task_field")
    # Tasks with a full set of questions first, then by how much the zoo disagrees on them.
    ranked_tasks.sort(key=lambda item: (not item[0], -item[1], item[2]))
    if len(ranked_tasks) < num_tasks:
        logger.warning("aptitude pool has %d usable tasks, fewer than the %d asked for; using all of them",
                       len(ranked_tasks), num_tasks)
    selected = sorted(ranked_tasks[:num_tasks], key=lambda item: item[2])
    texts = {label: [questions[r].text for r in rows] for label, rows in by_task.items()}
    labels = {}
    for label, rows in by_task.items():
        categories = Counter(questions[r].category for r in rows if questions[r].category)
        labels[label] = [readable_task_name(label)] + [c for c, _ in categories.most_common(1)]
    keywords = task_keywords(texts, labels, max_keywords)
    tasks = tuple(AptitudeTask(name=label, keywords=keywords[label],
                               question_ids=tuple(questions[r].query_id for r in rows)) for _, _, label, rows in selected)
    logger.info("aptitude test: %d tasks, %d questions", len(tasks), sum(len(t.question_ids) for t in tasks))
    return AptitudeTest(tasks)
