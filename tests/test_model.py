"""RouterModel on tiny random models: packed scoring, losses, and which parameters train in each stage."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from conftest import TINY_HIDDEN
from mmrouter.model import ANSWER_CUE, PROMPT_HEAD, PROMPT_TAIL, score_thresholds
from mmrouter.training import (candidate_choice_loss, group_contrastive_loss, lr_multiplier, model_weights,
                               pointwise_loss, sampling_weights)

INSTRUCTIONS = ["What is 2 + 2?",
                "A much longer instruction about the physical chemistry of ideal gases at constant pressure and "
                "the thermodynamics of their expansion.",
                "Translate 'bonjour' into English."]


@pytest.fixture
def lora_model(make_router_model):
    return make_router_model(seed=0, lora=True)


def _reference_score(model, prefix_ids: list[int], segment: torch.Tensor) -> float:
    """Yes-minus-No logit from an ordinary causal forward pass over one [prefix; segment; cue] sequence."""
    embed = model.llm.get_input_embeddings()
    inputs = torch.cat([embed(torch.tensor(prefix_ids)), segment, embed(torch.tensor(model.cue_ids))])[None]
    logits = model.llm(inputs_embeds=inputs).logits[0, -1]
    return float(logits[model.yes_id] - logits[model.no_id])


def test_prompt_token_ids(lora_model):
    tokenizer = lora_model.tokenizer
    assert lora_model.yes_id == tokenizer(" Yes", add_special_tokens=False).input_ids[0]
    assert lora_model.no_id == tokenizer(" No", add_special_tokens=False).input_ids[0]
    assert lora_model.yes_id != lora_model.no_id
    ids = lora_model.instruction_ids("What is 2 + 2?")
    assert tokenizer.decode(ids) == PROMPT_HEAD + "What is 2 + 2?" + PROMPT_TAIL
    assert tokenizer.decode(lora_model.cue_ids) == ANSWER_CUE
    long_ids = lora_model.instruction_ids("word " * 500)
    assert len(long_ids) == len(lora_model.head_ids) + 32 + len(lora_model.tail_ids)  # max_instruction_tokens=32


def test_connector_and_capability_vectors_shape(lora_model):
    assert lora_model.encoder.dim == 32 and lora_model.connector.score_features == 8
    assert lora_model.connector.in_features == 32 + 8
    assert lora_model.connector.out_features == TINY_HIDDEN
    with torch.no_grad():
        vectors = lora_model.capability_vectors(["The model achieves 50% on the task of 'x'.", "another line"],
                                                torch.tensor([0.5, 0.2]))
    assert vectors.shape == (2, TINY_HIDDEN)
    assert torch.isfinite(vectors).all()


def test_score_thresholds_are_monotone_and_bounded():
    scores = torch.linspace(0, 1, 21)
    features = score_thresholds(scores, 8)
    assert features.shape == (21, 8)
    assert (features.diff(dim=0) >= 0).all()  # every feature grows with the score: order survives
    assert (features.norm(dim=1) <= 1.0 + 1e-6).all()  # no larger than a normalised line embedding
    assert features[0].norm() < 0.15 and features[-1].norm() > 0.9
    # feature k switches on around its threshold (k + 0.5) / 8
    assert features[scores == 0.5][0, 3] > 0.5 / 8 ** 0.5 > features[scores == 0.5][0, 4]


@torch.no_grad()
def test_connector_reads_the_score_next_to_the_line(lora_model, make_router_model, tiny_config):
    line = ["The model achieves 50% on the task of 'algebra'."] * 3
    vectors = lora_model.capability_vectors(line, torch.tensor([0.2, 0.5, 0.8]))
    assert not torch.allclose(vectors[0], vectors[1]) and not torch.allclose(vectors[1], vectors[2])
    embedding = lora_model.encoder.encode_text(line[:1])
    features = score_thresholds(torch.tensor([0.8]), 8)
    expected = torch.cat([embedding, features], dim=1) @ lora_model.connector.weight.T + lora_model.connector.bias
    torch.testing.assert_close(vectors[2:], expected)
    # score_features=0: the paper's connector, the line's embedding only; the score is ignored
    plain = make_router_model(config=dataclasses.replace(tiny_config, score_features=0))
    assert plain.connector.in_features == plain.encoder.dim
    torch.testing.assert_close(plain.capability_vectors(line[:1], torch.tensor([0.1])),
                               plain.capability_vectors(line[:1], torch.tensor([0.9])))


@torch.no_grad()
def test_packed_scores_equal_separate_sequences(lora_model):
    torch.manual_seed(0)
    prefixes = [lora_model.instruction_ids(text) for text in INSTRUCTIONS]
    assert len({len(p) for p in prefixes}) == 3  # different lengths: rows are padded differently
    n_segments, n_caps = 4, 3
    segments = torch.randn(len(prefixes), n_segments, n_caps, TINY_HIDDEN)
    packed = lora_model.score(prefixes, segments)
    assert packed.shape == (3, n_segments)
    assert torch.isfinite(packed).all()
    assert packed.std() > 1e-3  # segments really change the score
    for b, prefix in enumerate(prefixes):
        for k in range(n_segments):
            alone = lora_model.score([prefix], segments[b:b + 1, k:k + 1])
            assert alone.shape == (1, 1)
            assert abs(float(alone) - float(packed[b, k])) < 1e-4
            assert abs(_reference_score(lora_model, prefix, segments[b, k]) - float(packed[b, k])) < 1e-4


@torch.no_grad()
def test_lora_weights_change_scores(lora_model):
    prefixes = [lora_model.instruction_ids(INSTRUCTIONS[0])]
    segments = torch.randn(1, 2, 3, TINY_HIDDEN, generator=torch.Generator().manual_seed(1))
    with_lora = lora_model.score(prefixes, segments)
    with lora_model.llm.disable_adapter():
        without = lora_model.score(prefixes, segments)
    assert (with_lora - without).abs().max() > 1e-3


@torch.no_grad()
def test_pack_layout(lora_model):
    prefixes = [lora_model.instruction_ids(INSTRUCTIONS[0]), lora_model.instruction_ids(INSTRUCTIONS[1])]
    segments = torch.randn(2, 3, 2, TINY_HIDDEN)
    packed = lora_model.pack(prefixes, segments)
    seg_len = 2 + len(lora_model.cue_ids)
    needed = max(len(p) for p in prefixes) + 3 * seg_len
    total = packed.inputs_embeds.shape[1]  # may be rounded up to a few fixed sizes (fewer CPU kernel set-ups)
    assert needed <= total < needed + 64
    assert packed.inputs_embeds.shape == (2, total, TINY_HIDDEN)
    assert packed.attention_mask.shape == (2, 1, total, total)
    assert packed.position_ids.shape == (2, total) and packed.score_positions.shape == (2, 3)
    longest = int(np.argmax([len(p) for p in prefixes]))
    assert (packed.inputs_embeds[longest, needed:] == 0).all()  # padding after the last segment
    p = len(prefixes[0])
    assert packed.score_positions[0].tolist() == [p + (k + 1) * seg_len - 1 for k in range(3)]
    # positions restart after the prefix for every segment
    assert packed.position_ids[0, p:p + seg_len].tolist() == packed.position_ids[0, p + seg_len:p + 2 * seg_len].tolist()
    torch.testing.assert_close(packed.inputs_embeds[0, p:p + 2], segments[0, 0])
    # a segment's tokens may not see another segment's tokens, but may see the prefix
    mask = packed.attention_mask[0, 0]
    assert mask[p + seg_len, p] < -1e30 and mask[p + seg_len, 0] == 0 and mask[p + seg_len, p + seg_len] == 0
    assert mask[0, 1] < -1e30  # causal inside the prefix


# -- losses ----------------------------------------------------------------------------------------------------------
def _log_softmax_first(values):
    return values[0] - math.log(sum(math.exp(v) for v in values))


def test_group_contrastive_loss_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.3], [0.5, 0.3, 0.1], [-1.0, 1.5, -0.2]])
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])  # candidate 2: no wrong -> skipped
    qw = torch.tensor([1.0, 2.0, 0.5])
    mw = torch.tensor([1.5, 0.5, 7.0])
    loss = group_contrastive_loss(logits, labels, qw, mw, group_size=10, generator=torch.Generator().manual_seed(0))
    terms = [(1.5 * 1.0, _log_softmax_first([2.0, 0.5, -1.0])),   # candidate 0: positive q0 vs q1, q2
             (0.5 * 2.0, _log_softmax_first([0.3, -1.0])),         # candidate 1: positive q1 vs q0
             (0.5 * 0.5, _log_softmax_first([1.5, -1.0]))]         # candidate 1: positive q2 vs q0
    expected = -sum(w * lp for w, lp in terms) / sum(w for w, _ in terms)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_group_contrastive_loss_samples_group_size_minus_one_negatives():
    logits = torch.tensor([[1.0], [0.2], [-0.7], [2.5]])
    labels = torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    ones = torch.ones(4)
    possible = [-_log_softmax_first([1.0, v]) for v in (0.2, -0.7, 2.5)]
    seen = set()
    for seed in range(12):
        loss = float(group_contrastive_loss(logits, labels, ones, torch.ones(1), 2, torch.Generator().manual_seed(seed)))
        match = [i for i, value in enumerate(possible) if abs(loss - value) < 1e-6]
        assert len(match) == 1
        seen.add(match[0])
    assert len(seen) > 1  # the negative is sampled
    # no candidate with both right and wrong instructions: zero, and still a tensor
    none = group_contrastive_loss(logits, torch.ones(4, 1), ones, torch.ones(1), 2, torch.Generator())
    assert float(none) == 0.0


def test_pointwise_loss_by_hand():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.25, 1.0]])
    qw = torch.tensor([1.0, 3.0])
    mw = torch.tensor([0.5, 2.0])

    def bce(x, t):
        p = 1 / (1 + math.exp(-x))
        return -(t * math.log(p) + (1 - t) * math.log(1 - p))

    weights = [[0.5, 2.0], [1.5, 6.0]]
    expected = sum(weights[i][j] * bce(float(logits[i, j]), float(targets[i, j])) for i in range(2) for j in range(2))
    expected /= sum(sum(row) for row in weights)
    assert float(pointwise_loss(logits, targets, qw, mw)) == pytest.approx(expected, rel=1e-6)


def test_candidate_choice_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [1.0, -1.0, 0.0], [0.3, 0.2, 0.1]])
    targets = torch.tensor([[1.0, 1.0, 0.0],    # two of three right: half the target mass on each
                            [1.0, 1.0, 1.0],    # all right: no routing signal, skipped
                            [0.0, 0.0, 1.0],    # only the third right
                            [0.0, 0.0, 0.0]])   # none right: skipped
    qw = torch.tensor([1.0, 5.0, 3.0, 7.0])

    def log_softmax(row, j):
        return row[j] - math.log(sum(math.exp(v) for v in row))

    first = -(0.5 * log_softmax([2.0, 0.0, -1.0], 0) + 0.5 * log_softmax([2.0, 0.0, -1.0], 1))
    third = -log_softmax([1.0, -1.0, 0.0], 2)
    expected = (1.0 * first + 3.0 * third) / 4.0
    assert float(candidate_choice_loss(logits, targets, qw)) == pytest.approx(expected, rel=1e-6)
    # raising the right candidate's logit lowers the loss; nothing to learn gives zero
    better = logits.clone()
    better[2, 2] = 3.0
    assert float(candidate_choice_loss(better, targets, qw)) < float(candidate_choice_loss(logits, targets, qw))
    assert float(candidate_choice_loss(logits[[1, 3]], targets[[1, 3]], qw[[1, 3]])) == 0.0


def test_lr_schedules():
    linear = lr_multiplier("linear", 100)
    factors = [linear(step) for step in range(100)]
    assert factors[0] == pytest.approx(0.2) and factors[4] == 1.0  # 5 warm-up steps
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))  # then never rises
    assert 0.0 < factors[-1] < 0.02
    assert lr_multiplier("linear", 1)(0) == 1.0
    assert {lr_multiplier("constant", 50)(step) for step in range(50)} == {1.0}


def test_sampling_and_model_weights():
    import numpy as np

    scores = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=float)
    uniform = sampling_weights(scores, mix=0.0)
    np.testing.assert_allclose(uniform, 0.25)
    favoured = sampling_weights(scores, mix=1.0)
    assert favoured.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(favoured, np.array([1.1, 0.1, 0.1, 0.6]) / 1.9)
    weights = model_weights(scores, exponent=1.0)  # accuracies 0.75, 0.5, 0.25, 0.25
    assert weights.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(weights, np.array([0.75, 0.5, 0.25, 0.25]) / 0.4375)
    np.testing.assert_allclose(model_weights(scores, exponent=0.0), 1.0)


# -- trainable parameters per stage ----------------------------------------------------------------------------------
def _loss(model):
    lines = ["The model achieves 40% on average over all 2 tasks.", "The model achieves 80% on the task of 'algebra'.",
             "The model achieves 60% on average over all 2 tasks.", "The model achieves 10% on the task of 'algebra'."]
    vectors = model.capability_vectors(lines, torch.tensor([0.4, 0.8, 0.6, 0.1]))
    segments = vectors.reshape(1, 2, 2, -1)
    logits = model.score([model.instruction_ids(INSTRUCTIONS[0])], segments)
    return pointwise_loss(logits, torch.tensor([[1.0, 0.0]]), torch.ones(1), torch.ones(2))


def _named(model):
    return dict(model.named_parameters())


def test_stage1_trains_connector_only(lora_model):
    groups = lora_model.set_trainable(1)
    assert [g["name"] for g in groups] == ["connector"]
    _loss(lora_model).backward()
    for name, parameter in _named(lora_model).items():
        if name.startswith("connector."):
            assert parameter.requires_grad and parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert not parameter.requires_grad and parameter.grad is None, name


def test_stage2_trains_connector_and_lora_not_base_weights(lora_model):
    groups = lora_model.set_trainable(2)
    assert [g["name"] for g in groups] == ["connector", "encoder", "llm"]
    assert all(g["params"] for g in groups)
    _loss(lora_model).backward()
    named = _named(lora_model)
    lora = {n for n in named if "lora_" in n}
    assert any(n.startswith("encoder.") for n in lora) and any(n.startswith("llm.") for n in lora)
    for name, parameter in named.items():
        if name in lora or name.startswith("connector."):
            assert parameter.requires_grad and parameter.grad is not None, name
            assert parameter.grad.abs().sum() > 0, name
        else:
            assert not parameter.requires_grad and parameter.grad is None, name
    grouped = {id(p) for g in groups for p in g["params"]}
    assert grouped == {id(named[n]) for n in lora} | {id(p) for p in lora_model.connector.parameters()}


def test_stage2_with_fresh_adapters_gives_lora_b_gradients(make_router_model):
    model = make_router_model(seed=0, lora=False)  # peft init: lora_B = 0, so only lora_B gets a gradient at first
    model.set_trainable(2)
    _loss(model).backward()
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_base_text_embeddings_ignore_the_adapter(make_router_model):
    plain = make_router_model(seed=0, lora=False)
    tuned = make_router_model(seed=0, lora=True)
    texts = ["algebra, equations", "optics, lenses"]
    base = tuned.base_text_embeddings(texts)
    torch.testing.assert_close(base, plain.base_text_embeddings(texts))
    torch.testing.assert_close(base.norm(dim=-1), torch.ones(2))
    with torch.no_grad():
        adapted = tuned.encoder.encode_text(texts)
    assert (adapted - base).abs().max() > 1e-4


def test_llm_layers_keeps_the_first_layers(tiny_config, make_router_model):
    from dataclasses import replace

    full = make_router_model(seed=0, lora=True)
    short = make_router_model(seed=0, lora=True, config=replace(tiny_config, llm_layers=1))
    assert len(full.llm.get_base_model().model.layers) == 2
    assert len(short.llm.get_base_model().model.layers) == 1
    assert short.llm.get_base_model().config.num_hidden_layers == 1
    # the kept layer is the original first layer, LoRA included
    torch.testing.assert_close(short.llm.get_base_model().model.layers[0].mlp.up_proj.weight,
                               full.llm.get_base_model().model.layers[0].mlp.up_proj.weight)
    prefixes = [short.instruction_ids(INSTRUCTIONS[0])]
    segments = torch.randn(1, 2, 3, TINY_HIDDEN, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert not torch.allclose(short.score(prefixes, segments), full.score(prefixes, segments))
    # llm_layers at or above the depth keeps everything
    same = make_router_model(seed=0, lora=True, config=replace(tiny_config, llm_layers=5))
    assert len(same.llm.get_base_model().model.layers) == 2


def test_encoder_lora_on_chosen_layers_only(tiny_config, make_router_model):
    from dataclasses import replace

    from mmrouter.config import LoraSettings

    config = replace(tiny_config, encoder_lora=LoraSettings(r=4, alpha=8, target_modules=["query", "value"], layers=[1]))
    model = make_router_model(seed=0, config=config)
    adapted = {n for n, _ in model.encoder.named_parameters() if "lora_A" in n}
    assert adapted and all(".layer.1." in n for n in adapted)
