"""Capability representations: a candidate's aptitude-test results written as natural-language lines."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .aptitude import AptitudeTest
from .errors import InputError


@dataclass(frozen=True)
class CapabilityRepresentation:
    """One line per aptitude task, plus the overall score; ``accuracies`` are in [0, 1]."""

    model: str
    accuracies: tuple[float, ...]
    overall: float
    lines: tuple[str, ...]
    overall_line: str

    def text(self) -> str:
        return "\n".join((self.overall_line,) + self.lines)

    def to_json(self) -> dict:
        return {"model": self.model, "accuracies": list(self.accuracies), "overall": self.overall,
                "lines": list(self.lines), "overall_line": self.overall_line}

    @classmethod
    def from_json(cls, data: dict) -> "CapabilityRepresentation":
        return cls(data["model"], tuple(data["accuracies"]), data["overall"], tuple(data["lines"]), data["overall_line"])


def task_line(accuracy: float, keywords: tuple[str, ...]) -> str:
    return f"The model achieves {round(100 * accuracy)}% on the task of '{', '.join(keywords)}'."


def capability_representation(model: str, test: AptitudeTest, results: dict[str, float]) -> CapabilityRepresentation:
    """Turn per-question results (query_id -> score in [0, 1]) on the aptitude test into a capability representation.

    Every aptitude question must have a result: a new candidate joins the zoo by taking the whole test.
    """
    if not isinstance(model, str) or not model.strip():
        raise InputError(f"candidate name must be a non-empty string, got {model!r}")
    if not isinstance(results, dict):
        raise InputError(f"results for candidate {model!r} must map aptitude query_id -> score in [0, 1], "
                         f"got {type(results).__name__}")
    missing, invalid = [], []
    for qid in test.question_ids:
        value = results.get(qid)
        if value is None:
            missing.append(qid)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            invalid.append((qid, value))
            continue
        if math.isnan(number):
            missing.append(qid)
        elif not 0.0 <= number <= 1.0:
            invalid.append((qid, value))
    if invalid:
        raise InputError(f"candidate {model!r} has {len(invalid)} aptitude result(s) that are not scores in [0, 1], "
                         f"e.g. {invalid[:3]}; give 1 for right, 0 for wrong (or a fraction)")
    if missing:
        raise InputError(f"candidate {model!r} has no result for {len(missing)} aptitude question(s), e.g. {missing[:3]}; "
                         "run the candidate on the whole aptitude test (aptitude_test.json in the router folder)")
    accuracies = tuple(float(np.mean([float(results[qid]) for qid in task.question_ids])) for task in test.tasks)
    overall = float(np.mean([float(results[qid]) for qid in test.question_ids]))
    lines = tuple(task_line(acc, task.keywords) for acc, task in zip(accuracies, test.tasks))
    overall_line = f"The model achieves {round(100 * overall)}% on average over all {len(test.tasks)} tasks."
    return CapabilityRepresentation(model, accuracies, overall, lines, overall_line)
