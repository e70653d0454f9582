"""Shared fixtures: the shipped zoos, tiny random router models, and a small real slice of MMLU-Pro.

Everything model-related uses TINY random models (a 2-layer Llama and a 2-layer BERT with hidden size 32) saved next
to the real tokenizers, so the whole suite runs in seconds on a CPU. Nothing here touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import mmrouter  # noqa: F401  (sets the offline environment variables before transformers is imported)
from mmrouter.aptitude import AptitudeTest, select_aptitude_test
from mmrouter.capability import CapabilityRepresentation, capability_representation
from mmrouter.config import LoraSettings, RouterModelConfig
from mmrouter.splits import Split, split_questions
from mmrouter.zoo import Zoo, load_zoo

REPO = Path(__file__).resolve().parent.parent
ZOO_SPECS = REPO / "zoo_specs"
RECIPES = REPO / "recipes"

TINY_HIDDEN = 32
TINY_ENCODER_HIDDEN = 32


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def small_zoo() -> Zoo:
    """The shipped default zoo (5 candidates on MMLU-Pro). Treat as read-only."""
    return load_zoo(ZOO_SPECS / "mmlu_pro_small.yaml")


# -- tiny models -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TinyModels:
    llm: Path
    encoder: Path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> TinyModels:
    """A tiny random LlamaForCausalLM (SmolLM2 tokenizer) and a tiny random BertModel (MiniLM tokenizer), saved."""
    from transformers import AutoTokenizer, BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    from mmrouter.weights import resolve_model_path

    llm_tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("packaged:SmolLM2-135M-Instruct"))
    encoder_tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("packaged:all-MiniLM-L6-v2"))
    root = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(1234)
    llm = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(llm_tokenizer), hidden_size=TINY_HIDDEN, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512, tie_word_embeddings=False))
    llm.save_pretrained(root / "llm")
    llm_tokenizer.save_pretrained(root / "llm")
    encoder = BertModel(BertConfig(
        vocab_size=len(encoder_tokenizer), hidden_size=TINY_ENCODER_HIDDEN, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512))
    encoder.save_pretrained(root / "encoder")
    encoder_tokenizer.save_pretrained(root / "encoder")
    return TinyModels(llm=root / "llm", encoder=root / "encoder")


@pytest.fixture(scope="session")
def tiny_config(tiny_models) -> RouterModelConfig:
    return RouterModelConfig(
        encoder_path=str(tiny_models.encoder), llm_path=str(tiny_models.llm), encoder_max_tokens=64,
        max_instruction_tokens=32, tasks_in_context=2,
        llm_lora=LoraSettings(r=4, alpha=8, target_modules=["q_proj", "v_proj"]),
        encoder_lora=LoraSettings(r=4, alpha=8, target_modules=["query", "value"]))


def randomize_lora(model, seed: int = 0, std: float = 0.3) -> None:
    """peft starts every lora_B at zero (adapters are a no-op); give them values so they change outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)


@pytest.fixture
def make_router_model(tiny_config):
    """Factory for a fresh RouterModel on the tiny models; ``lora=True`` makes its LoRA weights nonzero."""
    from mmrouter.model import RouterModel

    def make(seed: int = 0, lora: bool = False, config: RouterModelConfig | None = None) -> RouterModel:
        torch.manual_seed(seed)
        model = RouterModel(config or tiny_config)
        if lora:
            randomize_lora(model, seed)
        return model.eval()

    return make


# -- a small real slice of MMLU-Pro ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Slice:
    zoo: Zoo
    split: Split
    aptitude: AptitudeTest
    capabilities: list[CapabilityRepresentation]


@pytest.fixture(scope="session")
def mmlu_slice(small_zoo) -> Slice:
    split = split_questions(small_zoo.scores, test_size=24, aptitude_pool_size=600, max_train_questions=160, seed=0)
    aptitude = select_aptitude_test(small_zoo.questions, small_zoo.scores, split.aptitude_pool, num_tasks=4,
                                    questions_per_task=5, seed=0)
    ids = [q.query_id for q in small_zoo.questions]
    capabilities = [capability_representation(name, aptitude, dict(zip(ids, small_zoo.scores[:, n].tolist())))
                    for n, name in enumerate(small_zoo.candidate_names)]
    return Slice(small_zoo, split, aptitude, capabilities)


@pytest.fixture
def make_sat_router(make_router_model, mmlu_slice):
    """Factory for an (untrained) Model-SAT router on the tiny models with nonzero LoRA weights."""
    from mmrouter.model_sat import ModelSATRouter

    def make(seed: int = 0, perturbations: int = 2, batch_size: int = 4):
        return ModelSATRouter(make_router_model(seed=seed, lora=True), mmlu_slice.aptitude, mmlu_slice.capabilities,
                              perturbations=perturbations, seed=seed, batch_size=batch_size)

    return make


@pytest.fixture(scope="session")
def saved_router(tmp_path_factory, tiny_config, mmlu_slice) -> Path:
    """A router folder written once by ModelSATRouter.save_pretrained; copy it before changing anything in it."""
    from mmrouter.model import RouterModel
    from mmrouter.model_sat import ModelSATRouter

    torch.manual_seed(7)
    model = RouterModel(tiny_config)
    randomize_lora(model, seed=7)
    router = ModelSATRouter(model.eval(), mmlu_slice.aptitude, mmlu_slice.capabilities, perturbations=2, seed=3,
                            batch_size=4)
    return router.save_pretrained(tmp_path_factory.mktemp("saved") / "router")


def instructions_for(zoo: Zoo, rows: np.ndarray, count: int = 6):
    """Routing instructions for the first ``count`` question rows."""
    from mmrouter.instructions import question_instruction

    return [question_instruction(zoo.questions[int(r)]) for r in rows[:count]]
