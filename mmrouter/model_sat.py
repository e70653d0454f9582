"""The Model-SAT router: scores P("Yes") for [instruction ; candidate capability ; inquiry] with ``RouterModel``.

A router folder (``save_pretrained``) holds everything except the two base models, which it names like a peft
adapter does: ``config.json``, ``connector.safetensors``, ``llm_adapter/``, ``encoder_adapter/``,
``capabilities.json`` (the zoo's capability representations) and ``aptitude_test.json`` (so new candidates can
take the same test and join without retraining).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .aptitude import AptitudeTest
from .capability import CapabilityRepresentation, capability_representation
from .config import RouterModelConfig
from .errors import ConfigError, InputError
from .model import RouterModel
from .routers import ROUTER_REGISTRY, Instruction, Router

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: the connector also reads each line's score


def task_texts(test: AptitudeTest) -> list[str]:
    """What an instruction is matched against to find its related aptitude tasks."""
    return [", ".join(task.keywords) for task in test.tasks]


def related_tasks(instruction_embeddings: torch.Tensor, task_embeddings: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` tasks most similar to each instruction, most similar first: [B, count]."""
    n_tasks = task_embeddings.shape[0]
    if count <= 0 or count >= n_tasks:
        return torch.arange(n_tasks).expand(instruction_embeddings.shape[0], -1)
    similarity = instruction_embeddings.float().cpu() @ task_embeddings.float().cpu().T
    return similarity.topk(count, dim=1).indices


def segment_indices(related: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """Rows of the capability table each segment shows: overall line first, then related tasks in a given order.

    ``related`` is [B, m] task indices, ``orders`` is [B, P, m] permutations; returns [B, P, 1 + m] indices into a
    per-candidate table whose row 0 is the overall line and row 1 + t is task t.
    """
    shuffled = torch.gather(related[:, None, :].expand(-1, orders.shape[1], -1), 2, orders)
    overall = torch.zeros(*shuffled.shape[:2], 1, dtype=torch.long)
    return torch.cat([overall, shuffled + 1], dim=2)


def build_segments(table: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Gather capability vectors: table [N, 1 + T, H], indices [B, P, C] -> segments [B, N * P, C, H]."""
    n_candidates = table.shape[0]
    batch, perturbations, n_caps = indices.shape
    gathered = table[:, indices]  # [N, B, P, C, H]
    return gathered.permute(1, 0, 2, 3, 4).reshape(batch, n_candidates * perturbations, n_caps, table.shape[-1])


def capability_lines(capabilities: list[CapabilityRepresentation]) -> list[str]:
    """Flattened table of lines: candidate-major, each candidate's overall line then its task lines."""
    return [line for cap in capabilities for line in (cap.overall_line,) + cap.lines]


def capability_scores(capabilities: list[CapabilityRepresentation]) -> torch.Tensor:
    """The score each line of ``capability_lines`` states, in [0, 1], in the same order."""
    return torch.tensor([score for cap in capabilities for score in (cap.overall,) + cap.accuracies])


@ROUTER_REGISTRY.register("model-sat")
class ModelSATRouter(Router):
    def __init__(self, model: RouterModel, aptitude_test: AptitudeTest, capabilities: list[CapabilityRepresentation],
                 perturbations: int = 2, seed: int = 0, batch_size: int = 8, autocast_dtype: torch.dtype | None = None):
        if not capabilities:
            raise ConfigError("a Model-SAT router needs at least one candidate capability representation")
        self.model = model
        self.aptitude_test = aptitude_test
        self.capabilities = list(capabilities)
        self.perturbations = perturbations
        self.seed = seed
        self.batch_size = batch_size
        self.autocast_dtype = autocast_dtype
        self._table: torch.Tensor | None = None
        self._task_embeddings = model.base_text_embeddings(task_texts(aptitude_test))

    @property
    def candidates(self) -> list[str]:
        return [cap.model for cap in self.capabilities]

    def add_candidate(self, name: str, results: dict[str, float]) -> CapabilityRepresentation:
        """A new model joins by taking the aptitude test only: ``results`` maps aptitude query_id -> score."""
        if name in self.candidates:
            raise InputError(f"candidate {name!r} is already in this router; pick another name or remove it first")
        capability = capability_representation(name, self.aptitude_test, results)
        self.capabilities.append(capability)
        self._table = None
        return capability

    def remove_candidate(self, name: str) -> None:
        if name not in self.candidates:
            raise InputError(f"candidate {name!r} is not in this router; candidates: {', '.join(self.candidates)}")
        self.capabilities = [c for c in self.capabilities if c.model != name]
        self._table = None

    @torch.no_grad()
    def capability_table(self) -> torch.Tensor:
        if self._table is None:
            flat = self.model.capability_vectors(capability_lines(self.capabilities), capability_scores(self.capabilities))
            self._table = flat.reshape(len(self.capabilities), -1, flat.shape[-1])
        return self._table

    def _orders(self, batch: int, n_related: int, offset: int) -> torch.Tensor:
        # Perturbation 0 keeps the most related task first; the others are seeded shuffles, so scores repeat exactly.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + offset)
        orders = [torch.arange(n_related).expand(batch, -1)]
        for _ in range(self.perturbations - 1):
            orders.append(torch.argsort(torch.rand(batch, n_related, generator=generator), dim=1))
        return torch.stack(orders, dim=1)

    @torch.no_grad()
    def score(self, instructions: Sequence[Instruction], embeddings: np.ndarray | None = None,
              progress: bool = False) -> np.ndarray:
        """Mean P("Yes") over the task-order perturbations: [len(instructions), len(candidates)].

        ``embeddings`` may carry precomputed base-encoder embeddings of the instruction texts.
        """
        for instruction in instructions:
            if instruction.image is not None and not self.model.encoder.supports_images:
                self.model.encoder.encode_images([instruction.image])  # raises a clear error
        self.model.eval()
        table = self.capability_table()
        n_related = self.model.config.tasks_in_context
        out = np.zeros((len(instructions), len(self.candidates)))
        from tqdm.auto import tqdm

        starts = range(0, len(instructions), self.batch_size)
        for start in tqdm(starts, desc="routing", disable=not progress, unit="batch"):
            chunk = instructions[start:start + self.batch_size]
            if embeddings is not None:
                chunk_embeddings = torch.as_tensor(embeddings[start:start + len(chunk)])
            else:
                chunk_embeddings = self.model.base_text_embeddings([i.text for i in chunk])
            related = related_tasks(chunk_embeddings, self._task_embeddings, n_related)
            indices = segment_indices(related, self._orders(len(chunk), related.shape[1], start))
            segments = build_segments(table, indices)
            prefixes = [self.model.instruction_ids(i.text) for i in chunk]
            with torch.autocast(table.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                logits = self.model.score(prefixes, segments).float().cpu()
            probabilities = torch.sigmoid(logits).reshape(len(chunk), len(self.candidates), self.perturbations)
            out[start:start + len(chunk)] = probabilities.mean(-1).numpy()
        return out

    # -- persistence ---------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the router folder atomically: into a temporary sibling, then renamed into place."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            from omegaconf import OmegaConf

            config = {"format_version": FORMAT_VERSION, "router": "model-sat",
                      "model": OmegaConf.to_container(OmegaConf.structured(self.model.config)),
                      "perturbations": self.perturbations, "seed": self.seed, "batch_size": self.batch_size,
                      "autocast_dtype": str(self.autocast_dtype).replace("torch.", "") if self.autocast_dtype else None,
                      "candidates": self.candidates}
            (staging / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
            (staging / "capabilities.json").write_text(
                json.dumps([c.to_json() for c in self.capabilities], indent=1), encoding="utf-8")
            self.aptitude_test.save(staging / "aptitude_test.json")
            self.model.save_parts(staging)
            if folder.exists():
                old = folder.with_name(f".{folder.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(folder, old)
                os.replace(staging, folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "ModelSATRouter":
        from omegaconf import OmegaConf

        folder = Path(folder)
        needed = ["config.json", "capabilities.json", "aptitude_test.json", "connector.safetensors", "llm_adapter",
                  "encoder_adapter"]
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"router {folder} is a file; give the router folder (RUN_FOLDER/router)")
        if not folder.is_dir():
            raise ConfigError(f"router folder {folder} does not exist; train one with `mmrouter run RECIPE` "
                              "(it is saved as RUN_FOLDER/router)")
        missing = [name for name in needed if not (folder / name).exists()]
        if missing and (folder / "router" / "config.json").is_file():
            raise ConfigError(f"{folder} is a run folder; the router is its subfolder: {folder / 'router'}")
        if missing:
            raise ConfigError(f"router folder {folder} is incomplete (missing {', '.join(missing)}); "
                              "it was not written by ModelSATRouter.save_pretrained, or was damaged: retrain or recopy it")
        def read(name: str, parse):
            try:
                return parse(json.loads((folder / name).read_text(encoding="utf-8")))
            except (ValueError, KeyError, TypeError, AttributeError) as error:  # JSONDecodeError is a ValueError
                raise ConfigError(f"router folder {folder}: {name} is corrupt ({error!r}); retrain or recopy the folder") from error

        config = read("config.json", dict)
        capabilities = read("capabilities.json", lambda rows: [CapabilityRepresentation.from_json(c) for c in rows])
        test = read("aptitude_test.json", AptitudeTest.from_json)
        if config.get("format_version") != FORMAT_VERSION:
            raise ConfigError(f"router folder {folder} has format {config.get('format_version')}, "
                              f"this mmrouter reads {FORMAT_VERSION}")
        model_config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RouterModelConfig), config["model"]))
        try:
            model = RouterModel.load_parts(model_config, folder)
        except (ConfigError, KeyError):
            raise  # already name the model path or registry entry at fault
        except Exception as error:  # safetensors and peft raise their own types for damaged weight files
            raise ConfigError(f"router folder {folder}: its weights cannot be loaded ({type(error).__name__}: {error}); "
                              "retrain or recopy the folder") from error
        dtype = getattr(torch, config["autocast_dtype"]) if config.get("autocast_dtype") else None
        return cls(model, test, capabilities, perturbations=config["perturbations"], seed=config["seed"],
                   batch_size=config.get("batch_size", 8), autocast_dtype=dtype)
