"""Recipe configs: omegaconf structured dataclasses with defaults, help text and validation.

A recipe YAML sets any subset of these fields; ``key=value`` overrides on the command line are merged on top.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError

_RUN_NAME = re.compile(r"[A-Za-z0-9._-]+")


@dataclass
class SplitConfig:
    test_size: int = field(default=1000, metadata={"help": "held-out test questions (every candidate answered them)"})
    aptitude_pool_size: int = field(default=4000, metadata={"help": "questions reserved for choosing the aptitude test"})
    max_train_questions: int = field(default=0, metadata={"help": "cap on training questions; 0 = all the rest"})

    def __post_init__(self):
        if self.test_size < 1 or self.aptitude_pool_size < 1 or self.max_train_questions < 0:
            raise ConfigError("split sizes must be positive (max_train_questions may be 0 for 'all')")


@dataclass
class AptitudeConfig:
    num_tasks: int = field(default=50, metadata={"help": "core tasks in the aptitude test"})
    questions_per_task: int = field(default=20, metadata={"help": "questions per core task"})
    max_keywords: int = field(default=5, metadata={"help": "keywords describing each task"})
    task_field: str = field(default="subject", metadata={"help": "question field that defines tasks: subject, category or dataset"})

    def __post_init__(self):
        if self.num_tasks < 1 or self.questions_per_task < 1 or not 1 <= self.max_keywords <= 5:
            raise ConfigError("aptitude.num_tasks and questions_per_task must be >= 1, max_keywords in 1..5")


@dataclass
class LoraSettings:
    r: int = field(default=8, metadata={"help": "LoRA rank"})
    alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator"})
    dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    target_modules: list[str] = field(default_factory=list, metadata={"help": "module names to adapt; empty = model default"})
    layers: list[int] = field(default_factory=list, metadata={"help": "layer indices to adapt (peft layers_to_transform); empty = all. Adapting only the top layers of the encoder stops its backward pass early"})

    def __post_init__(self):
        if self.r < 1 or self.alpha <= 0 or not 0.0 <= self.dropout < 1.0 or any(i < 0 for i in self.layers):
            raise ConfigError("LoRA settings: r >= 1, alpha > 0, dropout in [0, 1), layer indices >= 0")


@dataclass
class RouterModelConfig:
    encoder: str = field(default="hf-text", metadata={"help": "capability encoder, by registry name"})
    encoder_path: str = field(default="packaged:all-MiniLM-L6-v2", metadata={"help": "encoder weights: local folder or packaged:NAME"})
    encoder_max_tokens: int = field(default=128, metadata={"help": "encoder truncation length"})
    llm_path: str = field(default="packaged:SmolLM2-135M-Instruct", metadata={"help": "router LLM: local folder or packaged:NAME"})
    llm_layers: int = field(default=0, metadata={"help": "keep only the LLM's first N decoder layers (a speed knob for CPUs); 0 = all"})
    max_instruction_tokens: int = field(default=80, metadata={"help": "LLM tokens kept from each instruction"})
    tasks_in_context: int = field(default=3, metadata={"help": "aptitude tasks (most related to the instruction) shown per candidate; 0 = all"})
    score_features: int = field(default=8, metadata={"help": "soft thresholds of each capability line's score given to the connector next to the line's embedding (a sentence encoder keeps a number's identity, not its order); 0 = the embedding only, as in the paper"})
    llm_lora: LoraSettings = field(default_factory=lambda: LoraSettings(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    encoder_lora: LoraSettings = field(default_factory=lambda: LoraSettings(target_modules=["query", "value"]))

    def __post_init__(self):
        if self.max_instruction_tokens < 8 or self.tasks_in_context < 0 or self.encoder_max_tokens < 8:
            raise ConfigError("model.max_instruction_tokens and encoder_max_tokens must be >= 8, tasks_in_context >= 0")
        if self.score_features < 0:
            raise ConfigError("model.score_features must be >= 0 (0 gives the connector the line's embedding only)")
        if self.llm_layers < 0:
            raise ConfigError("model.llm_layers must be >= 0 (0 keeps every layer)")


@dataclass
class TrainConfig:
    stage1_steps: int = field(default=40, metadata={"help": "steps training the connector only"})
    stage2_steps: int = field(default=160, metadata={"help": "steps training connector, encoder LoRA and LLM LoRA"})
    batch_size: int = field(default=8, metadata={"help": "instructions per step; each is scored against every candidate"})
    group_size: int = field(default=4, metadata={"help": "k: 1 instruction the model got right + k-1 it got wrong"})
    lr_connector: float = field(default=3e-3, metadata={"help": "learning rate of the connector"})
    lr_encoder: float = field(default=1e-3, metadata={"help": "learning rate of the encoder's LoRA (stage 2)"})
    lr_llm: float = field(default=1e-3, metadata={"help": "learning rate of the LLM's LoRA (stage 2)"})
    lr_schedule: str = field(default="linear", metadata={"help": "per stage: linear (5% warm-up, then linear decay to 0) or constant"})
    pointwise_weight: float = field(default=1.0, metadata={"help": "weight of the per-(instruction, model) yes/no loss next to the group loss"})
    choice_weight: float = field(default=1.0, metadata={"help": "weight of the per-instruction softmax over candidates (the routing decision itself)"})
    model_weighting: float = field(default=1.0, metadata={"help": "exponent on candidate accuracy when weighting losses (0 = equal)"})
    question_weighting: float = field(default=1.0, metadata={"help": "mix of disagreement-based question sampling (0 = uniform)"})
    rotate_options_prob: float = field(default=0.5, metadata={"help": "probability of rotating the options of a hard multiple-choice item"})
    hard_item_threshold: float = field(default=0.3, metadata={"help": "an item is hard when at most this share of the zoo is right"})

    def __post_init__(self):
        if self.batch_size < 2 or self.group_size < 2 or self.stage1_steps < 0 or self.stage2_steps < 0:
            raise ConfigError("train.batch_size and group_size must be >= 2, steps >= 0")
        if self.lr_schedule not in ("linear", "constant"):
            raise ConfigError(f"train.lr_schedule must be 'linear' or 'constant', got {self.lr_schedule!r}")
        if min(self.pointwise_weight, self.choice_weight) < 0:
            raise ConfigError("train.pointwise_weight and choice_weight must be >= 0")
        if not 0.0 <= self.rotate_options_prob <= 1.0:
            raise ConfigError("train.rotate_options_prob must be in [0, 1]")


@dataclass
class EvalConfig:
    perturbations: int = field(default=2, metadata={"help": "shuffled task orders averaged at test time"})
    knn_k: int = field(default=25, metadata={"help": "neighbours for the kNN reference router"})
    batch_size: int = field(default=8, metadata={"help": "instructions per router forward pass"})

    def __post_init__(self):
        if self.perturbations < 1 or self.knn_k < 1 or self.batch_size < 1:
            raise ConfigError("eval.perturbations, knn_k and batch_size must be >= 1")


@dataclass
class RecipeConfig:
    name: str = field(default=MISSING, metadata={"help": "run name (names the run folder)"})
    zoo: str = field(default=MISSING, metadata={"help": "zoo spec YAML, relative to the recipe file"})
    output_dir: str = field(default="runs", metadata={"help": "where run folders go, relative to the current folder"})
    seed: int = 0
    threads: int = field(default=0, metadata={"help": "torch CPU threads; 0 = torch's default"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 where the hardware has bf16 units, else float32), bf16 or no (float32)"})
    split: SplitConfig = field(default_factory=SplitConfig)
    aptitude: AptitudeConfig = field(default_factory=AptitudeConfig)
    model: RouterModelConfig = field(default_factory=RouterModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        if self.precision not in ("auto", "bf16", "no"):
            raise ConfigError(f"precision must be 'auto', 'bf16' or 'no', got {self.precision!r}")
        # The run folder output_dir/name is replaced at the end of a run: a name that is a path ('.', '..', 'a/b',
        # '/abs') would replace some other folder.
        if not _RUN_NAME.fullmatch(self.name) or set(self.name) == {"."}:
            raise ConfigError(f"name {self.name!r} cannot name a run folder; use letters, digits, '.', '_' or '-' "
                              "(e.g. name=my_run), without '/'")
        if Path(self.output_dir).exists() and not Path(self.output_dir).is_dir():
            raise ConfigError(f"output_dir {self.output_dir!r} is a file; give a folder for run folders (e.g. output_dir=runs)")


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> tuple[RecipeConfig, Path]:
    """Merge recipe YAML and ``key=value`` overrides onto the defaults; returns the config and the recipe's folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"recipe {path} is a folder; give a recipe YAML file, e.g. recipes/default.yaml")
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist; see recipes/ for shipped recipes")
    malformed = [o for o in overrides or [] if "=" not in o or o.startswith("=")]
    if malformed:
        raise ConfigError(f"override {malformed[0]!r} is not of the form key=value (e.g. train.stage2_steps=200)")
    try:
        schema = OmegaConf.structured(RecipeConfig)
        merged = OmegaConf.merge(schema, OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides or [])))
        config: RecipeConfig = OmegaConf.to_object(merged)
    except ConfigError:
        raise
    except OmegaConfBaseException as error:
        raise ConfigError(f"recipe {path}: {error}".replace("\n", "; ") +
                          " (check key names and value types against mmrouter/config.py)") from error
    except Exception as error:  # yaml syntax errors surface as various types
        raise ConfigError(f"recipe {path}: cannot be read ({error}); fix the YAML") from error
    return config, path.resolve().parent


def to_plain(config: Any) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
