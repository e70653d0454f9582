"""Evaluation: accuracy of each routing method on held-out questions, overall and per category."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ORACLE, RANDOM, BEST_SINGLE = "oracle", "random", "best single"
BOOTSTRAP_SAMPLES = 2000


def paired_bootstrap_interval(a: np.ndarray, b: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                              seed: int = 0) -> list[float]:
    """95% interval of mean(a - b) over questions resampled with replacement (both methods on the same draw).

    A gain of one point on 1,000 questions is within noise; the interval says how far to trust it.
    """
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, samples, 200):  # 200 resamples at a time bound the memory on large test sets
        draws = rng.integers(0, len(differences), size=(min(200, samples - start), len(differences)))
        means.append(differences[draws].mean(axis=1))
    means = np.concatenate(means)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def method_accuracy(choices: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-question score of the chosen candidate: choices [n] candidate indices, scores [n, N]."""
    return scores[np.arange(len(choices)), choices]


def evaluate(test_scores: np.ndarray, categories: list[str], candidates: list[str], routed: dict[str, np.ndarray],
             best_single: int) -> dict:
    """Accuracies (overall and per category) for every candidate, random, best single, oracle and each router.

    ``routed`` maps a router name to its chosen candidate index per test question.
    """
    per_question: dict[str, np.ndarray] = {name: test_scores[:, i] for i, name in enumerate(candidates)}
    per_question[RANDOM] = test_scores.mean(axis=1)  # expected accuracy of a uniform choice
    per_question[BEST_SINGLE] = test_scores[:, best_single]
    per_question[ORACLE] = test_scores.max(axis=1)
    for name, choices in routed.items():
        per_question[name] = method_accuracy(choices, test_scores)
    labels = np.array(categories)
    category_names = sorted(set(categories))
    table = {}
    for name, values in per_question.items():
        table[name] = {"overall": float(values.mean()),
                       "per_category": {c: float(values[labels == c].mean()) for c in category_names}}
    best, oracle = table[BEST_SINGLE]["overall"], table[ORACLE]["overall"]
    summary = {}
    for name in routed:
        value = table[name]["overall"]
        summary[name] = {"gain_at_best": value - best,
                         "gain_at_best_ci95": paired_bootstrap_interval(per_question[name], per_question[BEST_SINGLE]),
                         "oracle_gap_closed": (value - best) / (oracle - best) if oracle > best else 0.0,
                         "choice_share": {c: float(np.mean(routed[name] == i)) for i, c in enumerate(candidates)},
                         "versus_routers": {
                             other: {"gain": value - table[other]["overall"],
                                     "ci95": paired_bootstrap_interval(per_question[name], per_question[other])}
                             for other in routed if other != name}}
    return {"test_questions": int(len(test_scores)), "candidates": candidates, "best_single": candidates[best_single],
            "categories": category_names, "accuracy": table, "routers": summary}


def markdown_table(report: dict) -> str:
    categories = report["categories"]
    header = "| method | overall | " + " | ".join(categories) + " |"
    lines = [header, "|" + "---|" * (len(categories) + 2)]
    for name, row in report["accuracy"].items():
        cells = " | ".join(f"{100 * row['per_category'][c]:.1f}" for c in categories)
        lines.append(f"| {name} | **{100 * row['overall']:.1f}** | {cells} |")
    lines.append("")
    for name, summary in report["routers"].items():
        lines.append(f"- {name}: Gain@best = {100 * summary['gain_at_best']:+.1f} points "
                     f"(95% paired bootstrap interval {_points(summary['gain_at_best_ci95'])}), "
                     f"oracle gap closed = {100 * summary['oracle_gap_closed']:.1f}%")
        for other, versus in summary["versus_routers"].items():
            lines.append(f"  - versus {other}: {100 * versus['gain']:+.1f} points ({_points(versus['ci95'])})")
    return "\n".join(lines)


def _points(interval: list[float]) -> str:
    return f"{100 * interval[0]:+.1f} to {100 * interval[1]:+.1f}"


def short_table(report: dict) -> str:
    """Overall accuracy only, for the terminal."""
    lines = [f"{'method':<32} {'accuracy':>8}"]
    for name, row in report["accuracy"].items():
        lines.append(f"{name:<32} {100 * row['overall']:>7.1f}%")
    for name, summary in report["routers"].items():
        lines.append(f"{name}: Gain@best {100 * summary['gain_at_best']:+.1f} points "
                     f"(95% interval {_points(summary['gain_at_best_ci95'])}), "
                     f"oracle gap closed {100 * summary['oracle_gap_closed']:.1f}%")
    return "\n".join(lines)


def plot_accuracy(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["accuracy"])
    values = [100 * report["accuracy"][n]["overall"] for n in names]
    colors = ["tab:gray" if n in report["candidates"] else "tab:blue" if n in report["routers"] else "tab:orange"
              for n in names]
    figure, axis = plt.subplots(figsize=(9, 0.35 * len(names) + 1.2))
    axis.barh(names[::-1], values[::-1], color=colors[::-1])
    for y, value in enumerate(values[::-1]):
        axis.text(value + 0.3, y, f"{value:.1f}", va="center", fontsize=8)
    axis.set_xlabel("accuracy on held-out test questions (%)")
    axis.set_title(f"Routing on {report.get('zoo', 'the zoo')} ({report['test_questions']} test questions)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
