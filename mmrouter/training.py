"""Capability instruction tuning: the two-stage training of ``RouterModel`` on a zoo's recorded results.

Runs through accelerate, so the same loop runs on one CPU and under ``accelerate launch`` on several GPUs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .aptitude import question_disagreement
from .capability import CapabilityRepresentation
from .config import TrainConfig
from .instructions import question_text
from .model import RouterModel
from .model_sat import build_segments, capability_lines, capability_scores, related_tasks, segment_indices
from .zoo import Question

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    questions: list[Question]
    scores: np.ndarray  # [n, N] in [0, 1]
    embeddings: np.ndarray  # [n, d] base-encoder embeddings of the question texts
    capabilities: list[CapabilityRepresentation]
    task_embeddings: torch.Tensor  # [T, d]


def group_contrastive_loss(logits: torch.Tensor, labels: torch.Tensor, question_weights: torch.Tensor,
                           model_weights: torch.Tensor, group_size: int, generator: torch.Generator) -> torch.Tensor:
    """Per candidate, each instruction it got right against up to k-1 it got wrong: cross-entropy over the group.

    logits, labels: [B, N]; a candidate with no right or no wrong instruction in the batch contributes nothing.
    """
    total = logits.new_zeros(())
    weight_sum = 0.0
    for n in range(logits.shape[1]):
        positives = torch.nonzero(labels[:, n] > 0.5).flatten()
        negatives = torch.nonzero(labels[:, n] <= 0.5).flatten()
        if len(positives) == 0 or len(negatives) == 0:
            continue
        for i in positives.tolist():
            chosen = negatives[torch.randperm(len(negatives), generator=generator)[:group_size - 1]]
            group = torch.cat([logits[i, n].reshape(1), logits[chosen, n]])
            weight = float(model_weights[n] * question_weights[i])
            total = total - weight * torch.log_softmax(group, dim=0)[0]
            weight_sum += weight
    return total / weight_sum if weight_sum else total


def pointwise_loss(logits: torch.Tensor, targets: torch.Tensor, question_weights: torch.Tensor,
                   model_weights: torch.Tensor) -> torch.Tensor:
    """Yes/no cross-entropy per (instruction, candidate), so scores also compare across candidates."""
    weights = question_weights[:, None] * model_weights[None, :]
    losses = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (losses * weights).sum() / weights.sum()


def candidate_choice_loss(logits: torch.Tensor, targets: torch.Tensor, question_weights: torch.Tensor) -> torch.Tensor:
    """Per instruction, cross-entropy of a softmax over the candidates against the share of them that were right.

    Routing takes the argmax over candidates, so this term trains exactly that comparison; instructions that every
    candidate got right, or none did, carry no routing signal and are skipped.
    """
    right = targets.sum(dim=1)
    useful = (right > 0) & (right < targets.shape[1])
    if not bool(useful.any()):
        return logits.new_zeros(())
    target_distribution = targets[useful] / right[useful, None]
    losses = -(target_distribution * torch.log_softmax(logits[useful], dim=1)).sum(dim=1)
    weights = question_weights[useful]
    return (losses * weights).sum() / weights.sum()


def sampling_weights(scores: np.ndarray, mix: float) -> np.ndarray:
    """Favour distinguishing questions (about half the zoo right); ``mix`` = 0 gives uniform sampling."""
    disagreement = question_disagreement(scores)
    weights = (1.0 - mix) + mix * (disagreement + 0.1)
    return weights / weights.sum()


def model_weights(scores: np.ndarray, exponent: float) -> np.ndarray:
    """Stronger candidates weigh more (accuracy ** exponent), normalised to mean 1."""
    weights = np.power(np.clip(np.nanmean(scores, axis=0), 1e-3, None), exponent)
    return weights / weights.mean()


def lr_multiplier(schedule: str, steps: int):
    """Learning-rate factor per step: 'constant', or 'linear' (warm-up over the first 5% of steps, then a linear
    decay to zero), which averages out the noise of small batches at the end of a stage."""
    if schedule == "constant":
        return lambda step: 1.0
    warmup = max(1, steps // 20)
    return lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup)))


class _Forward(nn.Module):
    """The trainable computation as one ``forward``, so DistributedDataParallel sees every used parameter."""

    def __init__(self, model: RouterModel):
        super().__init__()
        self.model = model

    def forward(self, prefixes, lines, frozen_embeddings, line_scores, indices, n_candidates):
        if lines is not None:
            # Pad the batch of lines to a multiple of 16 (repeating the first) so tensor shapes repeat across steps.
            padding = -len(lines) % 16
            padded_scores = torch.cat([line_scores, line_scores[:1].expand(padding)])
            vectors = self.model.capability_vectors(lines + lines[:1] * padding, padded_scores)[:len(lines)]
        else:
            vectors = self.model.connector(frozen_embeddings, line_scores)
        table = vectors.reshape(n_candidates, -1, vectors.shape[-1])
        return self.model.score(prefixes, build_segments(table, indices))


def train_router(model: RouterModel, data: TrainingData, config: TrainConfig, *, tasks_in_context: int, seed: int,
                 mixed_precision: str = "no", progress: bool = True) -> list[dict]:
    """Stage 1 trains the connector only; stage 2 also the encoder's and the LLM's LoRA weights. Returns per-step logs."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    n_questions, n_candidates = data.scores.shape
    if n_questions < config.batch_size:
        raise ValueError(f"training needs at least train.batch_size={config.batch_size} questions, got {n_questions}")
    if mixed_precision not in ("no", "bf16"):
        raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {mixed_precision!r}")
    # accelerate keeps one process-wide state that refuses a second, different mixed_precision; autocast is applied
    # here instead, so several trainings with different precisions can run in one process (tests, notebooks).
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    autocast = lambda: torch.autocast(accelerator.device.type, dtype=torch.bfloat16,  # noqa: E731
                                      enabled=mixed_precision == "bf16")
    set_seed(seed)
    rng = np.random.default_rng(seed + accelerator.process_index)
    generator = torch.Generator().manual_seed(seed + accelerator.process_index)
    labels_all = torch.as_tensor(data.scores, dtype=torch.float32)
    question_weights_all = torch.as_tensor(question_disagreement(data.scores) + 0.5, dtype=torch.float32)
    candidate_weights = torch.as_tensor(model_weights(data.scores, config.model_weighting), dtype=torch.float32)
    sample_p = sampling_weights(data.scores, config.question_weighting)
    share_right = np.nanmean(data.scores, axis=1)
    related_all = related_tasks(torch.as_tensor(data.embeddings), data.task_embeddings, tasks_in_context)
    lines_table = [capability_lines([cap]) for cap in data.capabilities]  # per candidate: overall + task lines
    scores_table = capability_scores(data.capabilities).reshape(n_candidates, -1)
    with torch.no_grad():
        model.eval()
        frozen_table = model.encoder.encode_text([line for lines in lines_table for line in lines])
    history: list[dict] = []
    learning_rates = {"connector": config.lr_connector, "encoder": config.lr_encoder, "llm": config.lr_llm}
    for stage, steps in ((1, config.stage1_steps), (2, config.stage2_steps)):
        if steps == 0:
            continue
        groups = model.set_trainable(stage)
        optimizer = torch.optim.AdamW([{"params": g["params"], "lr": learning_rates[g["name"]]} for g in groups],
                                      weight_decay=0.0)
        # Built on the raw optimizer and stepped once per step on every process: accelerate's wrapped scheduler
        # would step num_processes times per call, stretching the schedule under a multi-GPU launch.
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(config.lr_schedule, steps))
        wrapped, optimizer = accelerator.prepare(_Forward(model), optimizer)
        model.train()
        bar = tqdm(range(steps), desc=f"training stage {stage}", disable=not progress or not accelerator.is_main_process)
        for step in bar:
            batch = rng.choice(n_questions, size=config.batch_size, replace=False, p=sample_p)
            texts = []
            for row in batch:
                question = data.questions[row]
                hard = share_right[row] <= config.hard_item_threshold
                rotate = bool(question.choices) and hard and rng.random() < config.rotate_options_prob
                texts.append(question_text(question, rotation=int(rng.integers(1, len(question.choices))) if rotate else 0))
            prefixes = [model.instruction_ids(t) for t in texts]
            related = related_all[batch]
            used = torch.unique(related)
            # Only the capability lines this batch shows are encoded: row 0 (overall) plus the used tasks.
            rows = torch.cat([torch.zeros(1, dtype=torch.long), used + 1])
            remap = torch.full((len(lines_table[0]),), -1, dtype=torch.long)
            remap[rows] = torch.arange(len(rows))
            orders = torch.stack([torch.randperm(related.shape[1], generator=generator) for _ in batch])[:, None, :]
            indices = remap[segment_indices(related, orders)]
            line_scores = scores_table[:, rows].reshape(-1).to(accelerator.device)
            if stage == 1:
                frozen = frozen_table.reshape(n_candidates, -1, frozen_table.shape[-1])[:, rows].reshape(
                    -1, frozen_table.shape[-1]).to(accelerator.device)
                lines = None
            else:
                frozen = None
                lines = [lines_table[n][r] for n in range(n_candidates) for r in rows.tolist()]
            with autocast():
                logits = wrapped(prefixes, lines, frozen, line_scores, indices.to(accelerator.device), n_candidates)
            logits = logits.float().cpu()  # a few numbers per step: the losses are computed on the CPU
            targets = labels_all[batch]
            question_weights = question_weights_all[batch]
            group = group_contrastive_loss(logits, targets, question_weights, candidate_weights, config.group_size, generator)
            point = pointwise_loss(logits, targets, question_weights, candidate_weights)
            choice = candidate_choice_loss(logits, targets, question_weights)
            loss = group + config.pointwise_weight * point + config.choice_weight * choice
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"training loss became {loss.item()} at stage {stage} step {step}; "
                                         "lower the learning rates (train.lr_*)")
            accelerator.backward(loss)
            connector_lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            history.append({"stage": stage, "step": step, "loss": loss.item(), "group_loss": group.item(),
                            "pointwise_loss": point.item(), "choice_loss": choice.item(),
                            "lr_connector": connector_lr})
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.set_trainable(0)
    model.eval()
    return history
