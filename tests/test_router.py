"""The Model-SAT router on tiny models: scoring, save/load round trip, bad folders, and adding candidates."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from conftest import instructions_for
from mmrouter.errors import ConfigError, InputError
from mmrouter.model_sat import (ModelSATRouter, build_segments, capability_lines, capability_scores, related_tasks,
                                segment_indices, task_texts)
from mmrouter.routers import ROUTER_REGISTRY, Instruction

FOLDER_CONTENTS = {"config.json", "connector.safetensors", "llm_adapter", "encoder_adapter", "capabilities.json",
                   "aptitude_test.json"}


@pytest.fixture
def instructions(mmlu_slice):
    return instructions_for(mmlu_slice.zoo, mmlu_slice.split.test, count=5)


@pytest.fixture
def router_copy(saved_router, tmp_path):
    folder = tmp_path / "router"
    shutil.copytree(saved_router, folder)
    return folder


# -- helpers of the scoring layout -----------------------------------------------------------------------------------
def test_related_tasks_and_segment_indices():
    tasks = torch.eye(4)
    instructions = torch.tensor([[0.1, 0.9, 0.0, 0.5], [1.0, 0.0, 0.2, 0.0]])
    related = related_tasks(instructions, tasks, 2)
    assert related.tolist() == [[1, 3], [0, 2]]
    assert related_tasks(instructions, tasks, 0).tolist() == [[0, 1, 2, 3]] * 2
    orders = torch.tensor([[[0, 1], [1, 0]], [[0, 1], [1, 0]]])
    indices = segment_indices(related, orders)
    assert indices.tolist() == [[[0, 2, 4], [0, 4, 2]], [[0, 1, 3], [0, 3, 1]]]  # overall line (row 0) first
    table = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)  # 2 candidates, overall + 4 tasks
    segments = build_segments(table, indices)
    assert segments.shape == (2, 4, 3, 3)  # [B, N * P, C, H]
    torch.testing.assert_close(segments[0, 1], table[0, [0, 4, 2]])  # candidate 0, perturbation 1
    torch.testing.assert_close(segments[1, 2], table[1, [0, 1, 3]])  # candidate 1, perturbation 0


def test_router_scores(make_sat_router, instructions, mmlu_slice):
    router = make_sat_router()
    assert "model-sat" in ROUTER_REGISTRY
    assert router.candidates == mmlu_slice.zoo.candidate_names
    scores = router.score(instructions)
    assert scores.shape == (5, 5)
    assert ((scores > 0) & (scores < 1)).all()
    assert scores.std() > 1e-4
    np.testing.assert_array_equal(router.score(instructions), scores)  # seeded perturbations: exactly repeatable
    # precomputed base embeddings give the same scores, and batch size does not matter
    embeddings = router.model.base_text_embeddings([i.text for i in instructions]).numpy()
    np.testing.assert_allclose(router.score(instructions, embeddings=embeddings), scores, atol=1e-6)
    router.batch_size = 2
    np.testing.assert_allclose(router.score(instructions[:2]), scores[:2], atol=1e-5)
    table = router.capability_table()
    assert table.shape == (5, 1 + len(mmlu_slice.aptitude.tasks), 32)
    decisions = router.route(instructions)
    assert [d.model for d in decisions] == [router.candidates[int(i)] for i in np.argmax(scores, axis=1)]


def test_capability_lines_order(mmlu_slice):
    lines = capability_lines(mmlu_slice.capabilities[:2])
    per = 1 + len(mmlu_slice.aptitude.tasks)
    assert len(lines) == 2 * per
    assert lines[0] == mmlu_slice.capabilities[0].overall_line and lines[per] == mmlu_slice.capabilities[1].overall_line
    assert lines[1:per] == list(mmlu_slice.capabilities[0].lines)
    scores = capability_scores(mmlu_slice.capabilities[:2])
    assert scores.shape == (2 * per,)
    assert scores[0] == pytest.approx(mmlu_slice.capabilities[0].overall)
    assert scores[per + 1:].tolist() == pytest.approx(list(mmlu_slice.capabilities[1].accuracies))
    for line, score in zip(lines, scores.tolist()):  # each line states its own score
        assert f" {round(100 * score)}% " in line
    assert task_texts(mmlu_slice.aptitude) == [", ".join(t.keywords) for t in mmlu_slice.aptitude.tasks]


def test_a_router_needs_candidates(make_router_model, mmlu_slice):
    with pytest.raises(ConfigError, match="at least one candidate"):
        ModelSATRouter(make_router_model(), mmlu_slice.aptitude, [])


# -- save / load ----------------------------------------------------------------------------------------------------
def test_save_load_round_trip(make_sat_router, instructions, tmp_path):
    router = make_sat_router(seed=4, perturbations=3)
    before = router.score(instructions)
    folder = router.save_pretrained(tmp_path / "out" / "router")
    assert folder == tmp_path / "out" / "router"
    assert {p.name for p in folder.iterdir()} == FOLDER_CONTENTS
    assert (folder / "llm_adapter" / "adapter_config.json").is_file()
    assert (folder / "encoder_adapter" / "adapter_config.json").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config["router"] == "model-sat" and config["candidates"] == router.candidates
    assert config["perturbations"] == 3 and config["seed"] == 4
    loaded = ModelSATRouter.from_pretrained(folder)
    assert loaded.candidates == router.candidates
    assert loaded.perturbations == 3 and loaded.seed == 4 and loaded.batch_size == router.batch_size
    assert loaded.aptitude_test == router.aptitude_test
    assert loaded.capabilities == router.capabilities
    np.testing.assert_allclose(loaded.score(instructions), before, atol=1e-6)
    # saving over an existing folder replaces it atomically and leaves no staging folders behind
    loaded.perturbations = 1
    loaded.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["perturbations"] == 1
    assert sorted(p.name for p in folder.parent.iterdir()) == ["router"]


def test_load_router_and_route(saved_router, instructions):
    import mmrouter

    router = mmrouter.load_router(saved_router)
    assert isinstance(router, ModelSATRouter)
    decision = mmrouter.route(text=instructions[0].text, router=router)
    assert decision.model in router.candidates
    assert set(decision.scores) == set(router.candidates)
    assert decision.model == max(decision.scores, key=decision.scores.get)
    assert decision.scores == pytest.approx(dict(zip(router.candidates, router.score(instructions[:1])[0])))


def test_missing_folder(tmp_path):
    folder = tmp_path / "never_trained"
    with pytest.raises(ConfigError, match="does not exist") as caught:
        ModelSATRouter.from_pretrained(folder)
    assert str(folder) in str(caught.value)


@pytest.mark.parametrize("removed", ["connector.safetensors", "llm_adapter", "aptitude_test.json"])
def test_incomplete_folder(router_copy, removed):
    target = router_copy / removed
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(ConfigError, match="incomplete") as caught:
        ModelSATRouter.from_pretrained(router_copy)
    assert str(router_copy) in str(caught.value) and removed in str(caught.value)


@pytest.mark.parametrize("file, content", [("config.json", "{not json"), ("capabilities.json", "[{\"model\": 1}]"),
                                           ("aptitude_test.json", "")])
def test_corrupt_json(router_copy, file, content):
    (router_copy / file).write_text(content)
    with pytest.raises(ConfigError, match="corrupt") as caught:
        ModelSATRouter.from_pretrained(router_copy)
    assert str(router_copy) in str(caught.value)


@pytest.mark.parametrize("file", ["connector.safetensors", "llm_adapter/adapter_model.safetensors"])
def test_corrupt_weights_file(router_copy, file):
    (router_copy / file).write_bytes(b"\x00garbage, not a safetensors file")
    with pytest.raises(ConfigError, match="its weights cannot be loaded") as caught:
        ModelSATRouter.from_pretrained(router_copy)
    assert str(router_copy) in str(caught.value) and "retrain or recopy" in str(caught.value)


def test_corrupt_json_names_the_file(router_copy):
    (router_copy / "capabilities.json").write_text("{broken")
    with pytest.raises(ConfigError, match="capabilities.json is corrupt"):
        ModelSATRouter.from_pretrained(router_copy)


def test_run_folder_or_file_instead_of_router_folder(router_copy, tmp_path):
    run_folder = tmp_path / "run"
    shutil.copytree(router_copy, run_folder / "router")
    with pytest.raises(ConfigError, match="is a run folder") as caught:
        ModelSATRouter.from_pretrained(run_folder)
    assert str(run_folder / "router") in str(caught.value)
    with pytest.raises(ConfigError, match="is a file"):
        ModelSATRouter.from_pretrained(router_copy / "config.json")


def test_wrong_format_version(router_copy):
    config = json.loads((router_copy / "config.json").read_text())
    config["format_version"] = 99
    (router_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="format 99") as caught:
        ModelSATRouter.from_pretrained(router_copy)
    assert str(router_copy) in str(caught.value)


# -- adding and removing candidates ----------------------------------------------------------------------------------
def _aptitude_results(mmlu_slice, column: int) -> dict[str, float]:
    ids = [q.query_id for q in mmlu_slice.zoo.questions]
    wanted = set(mmlu_slice.aptitude.question_ids)
    return {qid: float(mmlu_slice.zoo.scores[i, column]) for i, qid in enumerate(ids) if qid in wanted}


def test_add_candidate_without_retraining(router_copy, instructions, mmlu_slice):
    router = ModelSATRouter.from_pretrained(router_copy)
    before = router.score(instructions)
    weights = {n: p.detach().clone() for n, p in router.model.named_parameters()}
    # a newcomer whose aptitude results equal candidate 2's gets exactly candidate 2's scores
    results = _aptitude_results(mmlu_slice, 2)
    assert set(results) == set(mmlu_slice.aptitude.question_ids)
    capability = router.add_candidate("newcomer-7b", results)
    assert capability.lines == mmlu_slice.capabilities[2].lines
    assert router.candidates[-1] == "newcomer-7b" and len(router.candidates) == 6
    after = router.score(instructions)
    assert after.shape == (5, 6)
    np.testing.assert_allclose(after[:, :5], before, atol=1e-5)
    np.testing.assert_allclose(after[:, 5], after[:, 2], atol=1e-5)
    assert all(torch.equal(p, weights[n]) for n, p in router.model.named_parameters())
    # a different newcomer gets a different column; it persists through save/load
    flipped = {qid: 1.0 - value for qid, value in results.items()}
    router.add_candidate("contrarian", flipped)
    scores = router.score(instructions)
    assert scores.shape == (5, 7) and not np.allclose(scores[:, 6], scores[:, 2])
    router.save_pretrained(router_copy)
    reloaded = ModelSATRouter.from_pretrained(router_copy)
    assert reloaded.candidates[-2:] == ["newcomer-7b", "contrarian"]
    np.testing.assert_allclose(reloaded.score(instructions), scores, atol=1e-6)
    reloaded.remove_candidate("newcomer-7b")
    assert "newcomer-7b" not in reloaded.candidates
    np.testing.assert_allclose(reloaded.score(instructions), np.delete(scores, 5, axis=1), atol=1e-5)


def test_add_candidate_errors(router_copy, mmlu_slice):
    router = ModelSATRouter.from_pretrained(router_copy)
    results = _aptitude_results(mmlu_slice, 0)
    missing = dict(results)
    dropped = mmlu_slice.aptitude.question_ids[0]
    del missing[dropped]
    with pytest.raises(InputError) as caught:
        router.add_candidate("half-tested", missing)
    assert "'half-tested'" in str(caught.value) and dropped in str(caught.value)
    assert "half-tested" not in router.candidates and len(router.candidates) == 5
    with pytest.raises(InputError, match="already in this router"):
        router.add_candidate(router.candidates[0], results)
    first = mmlu_slice.aptitude.question_ids[0]
    for bad in (5.0, -1.0, float("inf"), "right", [1]):
        with pytest.raises(InputError, match=r"not scores in \[0, 1\]") as caught:
            router.add_candidate("bad-scores", {**results, first: bad})
        assert "'bad-scores'" in str(caught.value) and first in str(caught.value)
    with pytest.raises(InputError, match="no result for 1"):
        router.add_candidate("numpy-nan", {**results, first: np.float32("nan")})
    for name in ("", "   ", None):
        with pytest.raises(InputError, match="non-empty string"):
            router.add_candidate(name, results)
    with pytest.raises(InputError, match="must map aptitude query_id"):
        router.add_candidate("listed", list(results.values()))
    # numpy scores are fine
    router.add_candidate("numpy-scores", {k: np.float32(v) for k, v in results.items()})
    assert router.candidates[-1] == "numpy-scores" and len(router.candidates) == 6
    with pytest.raises(InputError, match="not in this router"):
        router.remove_candidate("nobody")


def test_instruction_validation():
    with pytest.raises(InputError, match="empty"):
        Instruction(text="   ")
    with pytest.raises(InputError, match="must be a string"):
        Instruction(text=None)
    assert Instruction(text="", image="x.png").image == "x.png"
