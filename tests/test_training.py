"""train_router on the tiny models and a small real slice of MMLU-Pro."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmrouter.config import TrainConfig
from mmrouter.encoders import embed_texts
from mmrouter.model_sat import task_texts
from mmrouter.training import TrainingData, train_router

CONFIG = TrainConfig(stage1_steps=3, stage2_steps=2, batch_size=4, group_size=3, lr_connector=1e-2, lr_encoder=1e-2,
                     lr_llm=1e-2, rotate_options_prob=1.0, hard_item_threshold=0.5)


def _data(model, mmlu_slice) -> TrainingData:
    zoo, split = mmlu_slice.zoo, mmlu_slice.split
    questions = [zoo.questions[i] for i in split.train]
    with model.encoder.model.disable_adapter():
        embeddings = embed_texts(model.encoder, [q.text for q in questions])
    return TrainingData(questions, zoo.scores[split.train], embeddings, mmlu_slice.capabilities,
                        model.base_text_embeddings(task_texts(mmlu_slice.aptitude)))


@pytest.fixture
def train_data(make_router_model, mmlu_slice) -> TrainingData:
    """Base-encoder embeddings do not depend on the router's seed (the tiny encoder's weights are fixed)."""
    return _data(make_router_model(seed=0), mmlu_slice)


def _train(make_router_model, data, seed=0, config=CONFIG):
    model = make_router_model(seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    history = train_router(model, data, config, tasks_in_context=2, seed=seed, progress=False)
    return model, before, history


def test_training_slice_is_real(mmlu_slice):
    assert len(mmlu_slice.split.train) == 160
    assert len(mmlu_slice.capabilities) == 5
    assert len(mmlu_slice.aptitude.tasks) == 4


def test_train_router_history_and_updates(make_router_model, train_data):
    model, before, history = _train(make_router_model, train_data)
    assert len(history) == CONFIG.stage1_steps + CONFIG.stage2_steps
    assert [h["stage"] for h in history] == [1, 1, 1, 2, 2]
    assert [h["step"] for h in history] == [0, 1, 2, 0, 1]
    for entry in history:
        for key in ("loss", "group_loss", "pointwise_loss", "choice_loss"):
            assert math.isfinite(entry[key]) and entry[key] >= 0
        assert entry["loss"] == pytest.approx(entry["group_loss"] + CONFIG.pointwise_weight * entry["pointwise_loss"]
                                              + CONFIG.choice_weight * entry["choice_loss"], rel=1e-5)
    after = dict(model.named_parameters())
    assert not torch.equal(after["connector.weight"], before["connector.weight"])
    changed_lora = [n for n in after if "lora_B" in n and not torch.equal(after[n], before[n])]
    assert any(n.startswith("llm.") for n in changed_lora) and any(n.startswith("encoder.") for n in changed_lora)
    frozen = [n for n in after if "lora_" not in n and not n.startswith("connector.")]
    assert frozen and all(torch.equal(after[n], before[n]) for n in frozen)  # base weights never move
    assert not model.training
    assert not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith("connector."))


def test_learning_rate_follows_the_schedule(make_router_model, train_data):
    config = TrainConfig(stage1_steps=2, stage2_steps=6, batch_size=4, group_size=2, lr_connector=1e-2)
    _, _, history = _train(make_router_model, train_data, config=config)
    stage2 = [h["lr_connector"] for h in history if h["stage"] == 2]
    assert stage2[0] == pytest.approx(1e-2) and stage2 == sorted(stage2, reverse=True) and stage2[-1] < stage2[1]
    constant = TrainConfig(stage1_steps=0, stage2_steps=3, batch_size=4, group_size=2, lr_connector=1e-2,
                           lr_schedule="constant")
    _, _, history = _train(make_router_model, train_data, config=constant)
    assert [h["lr_connector"] for h in history] == [1e-2] * 3


def test_same_seed_same_history_other_seed_differs(make_router_model, train_data):
    config = TrainConfig(stage1_steps=2, stage2_steps=1, batch_size=4, group_size=3)
    _, _, first = _train(make_router_model, train_data, seed=5, config=config)
    model, _, second = _train(make_router_model, train_data, seed=5, config=config)
    assert first == second
    _, _, other = _train(make_router_model, train_data, seed=6, config=config)
    assert [h["loss"] for h in other] != [h["loss"] for h in first]


def test_stage1_only_leaves_adapters_untouched(make_router_model, train_data):
    config = TrainConfig(stage1_steps=2, stage2_steps=0, batch_size=4, group_size=2)
    model, before, history = _train(make_router_model, train_data, config=config)
    assert [h["stage"] for h in history] == [1, 1]
    after = dict(model.named_parameters())
    assert all(torch.equal(after[n], before[n]) for n in after if not n.startswith("connector."))
    assert not torch.equal(after["connector.weight"], before["connector.weight"])


def test_trainings_with_different_precisions_in_one_process(make_router_model, train_data):
    # accelerate's process-wide state refuses a second mixed_precision; mmrouter applies autocast itself.
    config = TrainConfig(stage1_steps=1, stage2_steps=1, batch_size=4, group_size=2)
    for precision in ("bf16", "no", "bf16"):
        history = train_router(make_router_model(seed=0), train_data, config, tasks_in_context=2, seed=0,
                               mixed_precision=precision, progress=False)
        assert len(history) == 2 and all(math.isfinite(h["loss"]) for h in history)
    with pytest.raises(ValueError, match="mixed_precision"):
        train_router(make_router_model(seed=0), train_data, config, tasks_in_context=2, seed=0,
                     mixed_precision="fp16", progress=False)


def test_too_few_questions_for_a_batch(make_router_model, train_data):
    model, data = make_router_model(seed=0), train_data
    small = TrainingData(data.questions[:3], data.scores[:3], data.embeddings[:3], data.capabilities,
                         data.task_embeddings)
    with pytest.raises(ValueError, match="batch_size=4"):
        train_router(model, small, TrainConfig(stage1_steps=1, stage2_steps=0, batch_size=4), tasks_in_context=2,
                     seed=0, progress=False)


def test_embed_texts_uses_the_cache(make_router_model, tmp_path):
    from mmrouter.embedding_cache import EmbeddingCache

    model = make_router_model(seed=0)
    cache = EmbeddingCache(tmp_path / "cache")
    texts = ["first text", "second text", "first text"]
    with model.encoder.model.disable_adapter():
        fresh = embed_texts(model.encoder, texts, cache)
    assert fresh.shape == (3, model.encoder.dim)
    np.testing.assert_array_equal(fresh[0], fresh[2])
    calls = []
    original = model.encoder.encode_text
    model.encoder.encode_text = lambda chunk: calls.append(list(chunk)) or original(chunk)
    cached = embed_texts(model.encoder, texts, cache)
    assert calls == []  # everything came from the cache
    np.testing.assert_allclose(cached, fresh, atol=1e-6)
    embed_texts(model.encoder, ["first text", "a new text"], cache)
    assert calls == [["a new text"]]
    assert embed_texts(model.encoder, [], cache).shape == (0, model.encoder.dim)
