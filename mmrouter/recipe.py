"""The main job: split -> aptitude test -> capability representations -> training -> evaluation -> run folder."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .aptitude import select_aptitude_test
from .capability import capability_representation
from .config import RecipeConfig, to_plain
from .embedding_cache import EmbeddingCache
from .encoders import ENCODER_REGISTRY, embed_texts
from .errors import SpecError
from .evaluation import evaluate, markdown_table, plot_accuracy, write_json
from .instructions import question_instruction
from .model import RouterModel
from .model_sat import ModelSATRouter, task_texts
from .routers import BestSingleRouter, KNNRouter
from .splits import split_questions
from .training import TrainingData, train_router
from .weights import cache_dir
from .zoo import load_zoo

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    folder: Path | None  # None on non-main processes of a multi-process launch
    report: dict


def resolve_precision(precision: str) -> str:
    """'auto' picks bf16 only where it is fast: a GPU with bf16, or a CPU with native bf16 units (AVX512-BF16/AMX).

    Without them bf16 is emulated and about 6x slower than float32 (measured on a 2-core AVX2 EPYC)."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "no"


def _autocast_dtype(precision: str) -> torch.dtype | None:
    return torch.bfloat16 if precision == "bf16" else None


def run_recipe(config: RecipeConfig, recipe_dir: Path, progress: bool = True) -> RunResult:
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        clock = now

    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    precision = resolve_precision(config.precision)
    logger.info("precision: %s", "bf16 autocast" if precision == "bf16" else "float32")
    ENCODER_REGISTRY.get(config.model.encoder)  # an unknown name fails now, not after the data work
    zoo_path = (recipe_dir / config.zoo).resolve()
    zoo = load_zoo(zoo_path)
    if not zoo.questions:
        raise SpecError(zoo_path, "questions", "a recipe trains on recorded results and this zoo has no question bank",
                        "add 'questions: PATH/queries.jsonl' (relative to the spec file)")
    split = split_questions(zoo.scores, test_size=config.split.test_size,
                            aptitude_pool_size=config.split.aptitude_pool_size,
                            max_train_questions=config.split.max_train_questions, seed=config.seed,
                            candidates=zoo.candidate_names)
    aptitude = select_aptitude_test(zoo.questions, zoo.scores, split.aptitude_pool,
                                    num_tasks=config.aptitude.num_tasks,
                                    questions_per_task=config.aptitude.questions_per_task,
                                    max_keywords=config.aptitude.max_keywords, task_field=config.aptitude.task_field,
                                    seed=config.seed)
    ids = [q.query_id for q in zoo.questions]
    capabilities = [capability_representation(name, aptitude, dict(zip(ids, zoo.scores[:, n].tolist())))
                    for n, name in enumerate(zoo.candidate_names)]
    lap("data_and_aptitude")

    model = RouterModel(config.model)
    lap("load_models")
    cache = EmbeddingCache(cache_dir() / "embeddings")
    train_questions = [zoo.questions[i] for i in split.train]
    test_questions = [zoo.questions[i] for i in split.test]
    with model.encoder.model.disable_adapter():
        embeddings = embed_texts(model.encoder, [q.text for q in train_questions + test_questions], cache,
                                 progress=progress, autocast_dtype=_autocast_dtype(precision))
    train_embeddings, test_embeddings = embeddings[:len(train_questions)], embeddings[len(train_questions):]
    task_embeddings = model.base_text_embeddings(task_texts(aptitude))
    lap("embeddings")

    train_scores, test_scores = zoo.scores[split.train], zoo.scores[split.test]
    history = train_router(model, TrainingData(train_questions, train_scores, train_embeddings, capabilities,
                                               task_embeddings),
                           config.train, tasks_in_context=config.model.tasks_in_context, seed=config.seed,
                           mixed_precision=precision, progress=progress)
    lap("training")
    from accelerate import PartialState

    if not PartialState().is_main_process:
        # Under `accelerate launch` every process trains its share; only the main one evaluates and writes.
        return RunResult(None, {})

    router = ModelSATRouter(model, aptitude, capabilities, perturbations=config.eval.perturbations, seed=config.seed,
                            batch_size=config.eval.batch_size, autocast_dtype=_autocast_dtype(precision))
    instructions = [question_instruction(q) for q in test_questions]
    sat_scores = router.score(instructions, embeddings=test_embeddings, progress=progress)
    lap("routing_test_set")
    knn = KNNRouter(zoo.candidate_names, train_embeddings, train_scores, config.eval.knn_k, embed=None)
    best = BestSingleRouter(zoo.candidate_names, train_scores)
    routed = {"kNN router (MiniLM)": np.argmax(knn.score_embeddings(test_embeddings), axis=1),
              "Model-SAT router": np.argmax(sat_scores, axis=1)}
    report = evaluate(test_scores, [q.category or q.dataset for q in test_questions], zoo.candidate_names, routed,
                      best_single=int(np.argmax(best.prior)))
    report.update({"zoo": zoo.name, "seed": config.seed, "precision": precision, "train_questions": len(train_questions),
                   "aptitude_questions": len(aptitude.question_ids), "aptitude_tasks": len(aptitude.tasks)})
    lap("evaluation")

    output_root = Path(config.output_dir)
    output_root.mkdir(parents=True, exist_ok=True)
    target = output_root / config.name
    staging = Path(tempfile.mkdtemp(prefix=f".{config.name}-", dir=output_root))
    try:
        from omegaconf import OmegaConf

        # The zoo path is saved absolute so that `mmrouter run RUN_FOLDER/config.yaml` runs the same job again.
        used = to_plain(config)
        used["zoo"] = str(zoo_path)
        OmegaConf.save(OmegaConf.create(used), staging / "config.yaml")
        router.save_pretrained(staging / "router")
        write_json(staging / "training_log.json", history)
        write_json(staging / "test_scores.json", {"query_ids": [q.query_id for q in test_questions],
                                                  "candidates": zoo.candidate_names,
                                                  "model_sat": sat_scores.round(5).tolist()})
        (staging / "report.md").write_text(f"# {config.name}: routing on {zoo.name}\n\n" + markdown_table(report) + "\n",
                                           encoding="utf-8")
        plot_accuracy(report, staging / "accuracy.png")
        lap("saving")
        report["timings_s"] = timings
        write_json(staging / "report.json", report)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("run folder: %s", target)
    return RunResult(target, report)
