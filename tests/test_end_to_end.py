"""A miniature default recipe on a small real slice of MMLU-Pro, with the real packaged weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mmrouter
from mmrouter.config import load_recipe
from mmrouter.recipe import run_recipe

ROOT = Path(__file__).resolve().parent.parent

MINIATURE = [
    "name=e2e", "split.test_size=40", "split.aptitude_pool_size=1500", "split.max_train_questions=120",
    "aptitude.num_tasks=8", "aptitude.questions_per_task=5", "train.stage1_steps=2", "train.stage2_steps=2",
    "train.batch_size=4", "eval.perturbations=2", "eval.knn_k=5", "model.max_instruction_tokens=32",
]


@pytest.fixture(scope="module")
def miniature_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("runs")
    config, recipe_dir = load_recipe(ROOT / "recipes" / "default.yaml", MINIATURE + [f"output_dir={output}"])
    return run_recipe(config, recipe_dir, progress=False)


def test_run_folder_has_every_artifact(miniature_run):
    folder = miniature_run.folder
    for name in ["config.yaml", "report.json", "report.md", "accuracy.png", "training_log.json", "test_scores.json",
                 "router/config.json", "router/connector.safetensors", "router/llm_adapter/adapter_config.json",
                 "router/encoder_adapter/adapter_config.json", "router/capabilities.json", "router/aptitude_test.json"]:
        assert (folder / name).is_file(), name
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "a staging folder was left behind"
    log = json.loads((folder / "training_log.json").read_text())
    assert [entry["stage"] for entry in log] == [1, 1, 2, 2]
    assert all(np.isfinite(entry["loss"]) for entry in log)


def test_report_compares_router_with_references(miniature_run):
    report = json.loads((miniature_run.folder / "report.json").read_text())
    accuracy = report["accuracy"]
    candidates = ["Meta-Llama-3.1-8B-Instruct", "mathstral-7B", "Phi-3-mini-4k-instruct", "Qwen1.5-7B-Chat", "gemma-7b"]
    for name in candidates + ["random", "best single", "oracle", "kNN router (MiniLM)", "Model-SAT router"]:
        assert name in accuracy
    assert report["test_questions"] == 40
    oracle = accuracy["oracle"]["overall"]
    for name, row in accuracy.items():
        assert 0.0 <= row["overall"] <= oracle + 1e-9, name
    assert accuracy["best single"]["overall"] == accuracy[report["best_single"]]["overall"]
    summary = report["routers"]["Model-SAT router"]
    assert summary["gain_at_best"] == pytest.approx(accuracy["Model-SAT router"]["overall"] - accuracy["best single"]["overall"])
    assert "Model-SAT router" in (miniature_run.folder / "report.md").read_text()


def test_saved_router_reloads_and_routes_like_the_run(miniature_run):
    saved = json.loads((miniature_run.folder / "test_scores.json").read_text())
    router = mmrouter.load_router(miniature_run.folder / "router")
    assert router.candidates == saved["candidates"]
    from mmrouter.instructions import question_instruction
    from mmrouter.zoo import load_zoo

    questions = {q.query_id: q for q in load_zoo(ROOT / "zoo_specs" / "mmlu_pro_small.yaml").questions}
    question = questions[saved["query_ids"][0]]
    decision = mmrouter.route(text=question_instruction(question).text, router=router)
    assert decision.model in saved["candidates"]
    assert list(decision.scores) == saved["candidates"]
    # The run scored a padded batch of 8 (and maybe in bf16); one instruction alone differs only by rounding.
    np.testing.assert_allclose(list(decision.scores.values()), saved["model_sat"][0], atol=1e-3)


def test_saved_config_runs_the_same_job_again(miniature_run):
    from dataclasses import asdict

    original, _ = load_recipe(ROOT / "recipes" / "default.yaml", MINIATURE)
    saved, saved_dir = load_recipe(miniature_run.folder / "config.yaml")
    assert (saved_dir / saved.zoo).resolve() == (ROOT / "zoo_specs" / "mmlu_pro_small.yaml").resolve()
    for part in ("split", "aptitude", "model", "train", "eval"):
        assert asdict(getattr(saved, part)) == asdict(getattr(original, part)), part
    assert (saved.name, saved.seed) == ("e2e", original.seed)
