"""evaluate() and the report tables on a small synthetic score matrix with hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmrouter.evaluation import (BEST_SINGLE, ORACLE, RANDOM, evaluate, markdown_table, method_accuracy,
                                 plot_accuracy, short_table, write_json)

SCORES = np.array([[1, 0, 0],
                   [0, 1, 0],
                   [1, 1, 0],
                   [0, 0, 0],
                   [1, 0, 1],
                   [0, 1, 1]], dtype=float)
CATEGORIES = ["a", "a", "b", "b", "c", "c"]
CANDIDATES = ["m0", "m1", "m2"]
ROUTED = {"my router": np.array([0, 1, 1, 2, 2, 0]), "always m2": np.array([2] * 6)}


@pytest.fixture
def report():
    return evaluate(SCORES, CATEGORIES, CANDIDATES, ROUTED, best_single=0)


def test_method_accuracy():
    np.testing.assert_array_equal(method_accuracy(np.array([0, 1, 1, 2, 2, 0]), SCORES), [1, 1, 1, 0, 1, 0])


def test_accuracies(report):
    acc = report["accuracy"]
    assert report["test_questions"] == 6 and report["candidates"] == CANDIDATES
    assert report["best_single"] == "m0" and report["categories"] == ["a", "b", "c"]
    assert acc["m0"]["overall"] == pytest.approx(0.5)
    assert acc["m1"]["overall"] == pytest.approx(0.5)
    assert acc["m2"]["overall"] == pytest.approx(2 / 6)
    assert acc[ORACLE]["overall"] == pytest.approx(5 / 6)
    assert acc[RANDOM]["overall"] == pytest.approx(8 / 18)  # expected accuracy of a uniform choice
    assert acc[BEST_SINGLE]["overall"] == pytest.approx(0.5)
    assert acc["my router"]["overall"] == pytest.approx(4 / 6)
    assert acc["my router"]["per_category"] == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.5})
    assert acc[ORACLE]["per_category"] == pytest.approx({"a": 1.0, "b": 0.5, "c": 1.0})
    assert acc[RANDOM]["per_category"] == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 2 / 3})
    assert acc["m2"]["per_category"] == pytest.approx({"a": 0.0, "b": 0.0, "c": 1.0})


def test_router_summary(report):
    mine = report["routers"]["my router"]
    assert mine["gain_at_best"] == pytest.approx(1 / 6)
    assert mine["oracle_gap_closed"] == pytest.approx(0.5)  # (4/6 - 3/6) / (5/6 - 3/6)
    assert mine["choice_share"] == pytest.approx({"m0": 1 / 3, "m1": 1 / 3, "m2": 1 / 3})
    worse = report["routers"]["always m2"]
    assert worse["gain_at_best"] == pytest.approx(-1 / 6)
    assert worse["oracle_gap_closed"] == pytest.approx(-0.5)
    assert worse["choice_share"] == pytest.approx({"m0": 0.0, "m1": 0.0, "m2": 1.0})
    assert set(report["routers"]) == set(ROUTED)


def test_oracle_equal_to_best_single_closes_no_gap():
    scores = np.array([[1, 0], [1, 1], [0, 0]], dtype=float)
    report = evaluate(scores, ["x", "x", "y"], ["p", "q"], {"r": np.array([1, 0, 0])}, best_single=0)
    assert report["accuracy"][ORACLE]["overall"] == report["accuracy"][BEST_SINGLE]["overall"]
    assert report["routers"]["r"]["oracle_gap_closed"] == 0.0
    assert report["routers"]["r"]["gain_at_best"] == pytest.approx(-1 / 3)


def test_markdown_table(report):
    table = markdown_table(report)
    lines = table.splitlines()
    assert lines[0] == "| method | overall | a | b | c |"
    assert lines[1] == "|---|---|---|---|---|"
    for method in CANDIDATES + [RANDOM, BEST_SINGLE, ORACLE, "my router", "always m2"]:
        assert any(line.startswith(f"| {method} | **") for line in lines), method
    assert "| my router | **66.7** | 100.0 | 50.0 | 50.0 |" in lines
    assert "| oracle | **83.3** | 100.0 | 50.0 | 100.0 |" in lines
    gains = [line for line in lines if "Gain@best" in line]
    assert len(gains) == 2
    assert gains[0].startswith("- my router: Gain@best = +16.7 points (95% paired bootstrap interval ")
    assert gains[0].endswith("), oracle gap closed = 50.0%")
    assert gains[1].startswith("- always m2: Gain@best = -16.7 points (95% paired bootstrap interval ")
    assert gains[1].endswith("), oracle gap closed = -50.0%")
    short = short_table(report)
    assert "my router" in short and "66.7%" in short and "oracle gap closed 50.0%" in short


def test_report_files(report, tmp_path):
    write_json(tmp_path / "report.json", report)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    plot_accuracy(report, tmp_path / "accuracy.png")
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paired_bootstrap_interval():
    from mmrouter.evaluation import paired_bootstrap_interval

    rng = np.random.default_rng(0)
    better = (rng.random(1000) < 0.6).astype(float)
    same = better.copy()
    assert paired_bootstrap_interval(better, same) == [0.0, 0.0]  # identical methods: no spread at all
    worse = better.copy()
    worse[:100] = 0.0  # differs on at most 100 questions, always in `better`'s favour
    low, high = paired_bootstrap_interval(better, worse)
    gain = float((better - worse).mean())
    assert 0.0 < low < gain < high
    # Paired resampling: the spread comes from the questions where the methods differ, ~sqrt(g(1-g)/n).
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(gain * (1 - gain) / 1000), rel=0.15)
    assert paired_bootstrap_interval(better, worse) == [low, high]  # seeded


def test_report_carries_intervals_and_router_comparisons(report):
    mine = report["routers"]["my router"]
    low, high = mine["gain_at_best_ci95"]
    assert low <= mine["gain_at_best"] <= high
    assert set(mine["versus_routers"]) == {"always m2"}
    assert mine["versus_routers"]["always m2"]["gain"] == pytest.approx(4 / 6 - 2 / 6)
    assert "versus always m2: +33.3 points" in markdown_table(report)
