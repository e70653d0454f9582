"""How much does scoring N candidates cost next to one plain forward pass over the instruction?

Builds a Model-SAT router with the real packaged weights (SmolLM2-135M-Instruct + all-MiniLM-L6-v2) and the real
MMLU-Pro aptitude results of 24 models, then times, on real test questions:
  - one plain forward pass of the router LLM over the instruction prompt (the floor),
  - route() for N = 5 and N = 24 candidates (shared instruction prefix, short capability segments),
  - the naive way for N = 5: N full sequences, each repeating the instruction.
Latency does not depend on training, so an untrained router is used unless --router DIR is given.

The untrained router uses the model settings of recipes/default.yaml (--llm-layers 0 keeps all 30 LLM layers).

    .venv/bin/python benchmarks/route_latency.py [--router runs/default/router] [--llm-layers N] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import mmrouter  # noqa: F401  (sets the offline environment first)
import numpy as np
import torch

from mmrouter.aptitude import select_aptitude_test
from mmrouter.capability import capability_representation
from mmrouter.config import load_recipe
from mmrouter.recipe import resolve_precision
from mmrouter.instructions import question_instruction
from mmrouter.model import RouterModel
from mmrouter.model_sat import ModelSATRouter, build_segments, related_tasks, segment_indices
from mmrouter.routers import Instruction
from mmrouter.splits import split_questions
from mmrouter.zoo import load_zoo

ROOT = Path(__file__).resolve().parent.parent


def timed(function, repeats: int) -> float:
    function()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--router", default=None, help="a trained router folder (default: untrained, same cost)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--questions", type=int, default=5, help="real test questions to average over")
    parser.add_argument("--llm-layers", type=int, default=None, help="override model.llm_layers (0 = all layers)")
    args = parser.parse_args()
    torch.manual_seed(0)

    zoo = load_zoo(ROOT / "zoo_specs" / "mmlu_pro_all.yaml")
    split = split_questions(zoo.scores, test_size=1000, aptitude_pool_size=4000, max_train_questions=0, seed=0)
    test = select_aptitude_test(zoo.questions, zoo.scores, split.aptitude_pool, num_tasks=50, questions_per_task=20)
    ids = [q.query_id for q in zoo.questions]
    capabilities = [capability_representation(name, test, dict(zip(ids, zoo.scores[:, n].tolist())))
                    for n, name in enumerate(zoo.candidate_names)]
    if args.router:
        router = ModelSATRouter.from_pretrained(args.router)
        model = router.model
    else:
        overrides = [] if args.llm_layers is None else [f"model.llm_layers={args.llm_layers}"]
        recipe, _ = load_recipe(ROOT / "recipes" / "default.yaml", overrides)
        model = RouterModel(recipe.model).eval()
        autocast_dtype = torch.bfloat16 if resolve_precision(recipe.precision) == "bf16" else None
        router = ModelSATRouter(model, test, capabilities[:5], perturbations=recipe.eval.perturbations,
                                autocast_dtype=autocast_dtype)
    autocast = router.autocast_dtype
    instructions = [question_instruction(zoo.questions[i]) for i in split.test[:args.questions]]
    backbone = model.llm.get_base_model().model
    embed = model.llm.get_input_embeddings()

    def plain_forward(instruction: Instruction):
        ids_ = torch.tensor([model.instruction_ids(instruction.text)])
        with torch.no_grad(), torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            backbone(inputs_embeds=embed(ids_))

    def naive(instruction: Instruction, n: int):
        # N separate sequences [instruction prefix ; one candidate's segment], batched, no prefix sharing.
        table = router.capability_table()[:n]
        embedding = model.base_text_embeddings([instruction.text])
        related = related_tasks(embedding, router._task_embeddings, model.config.tasks_in_context)
        indices = segment_indices(related, router._orders(1, related.shape[1], 0))
        segments = build_segments(table, indices)[0]  # [n * P, C, H]
        prefix = model.instruction_ids(instruction.text)
        with torch.no_grad(), torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            model.score([prefix] * segments.shape[0], segments[:, None])

    def per_question(function) -> float:
        return float(np.mean([timed(lambda: function(i), args.repeats) for i in instructions]))

    prefix_tokens = np.mean([len(model.instruction_ids(i.text)) for i in instructions])
    plain = per_question(plain_forward)
    layers = model.llm.get_base_model().config.num_hidden_layers
    print(f"router LLM: {model.config.llm_path} ({layers} layers), precision: {autocast or 'float32'}, threads: {torch.get_num_threads()}, "
          f"perturbations: {router.perturbations}, tasks in context: {model.config.tasks_in_context}")
    print(f"instruction prompt: {prefix_tokens:.0f} tokens on average over {len(instructions)} real MMLU-Pro questions")
    print(f"one plain forward pass over the instruction : {1000 * plain:7.1f} ms  (1.00x)")
    results = {}
    for n in (5, 24):
        router.capabilities = capabilities[:n]
        router._table = None
        router.capability_table()
        results[n] = per_question(lambda i: router.route([i]))
        print(f"route(), N = {n:2d} candidates                 : {1000 * results[n]:7.1f} ms  ({results[n] / plain:.2f}x)")
    router.capabilities = capabilities[:5]
    router._table = None
    naive5 = per_question(lambda i: naive(i, 5))
    print(f"naive N = 5 full sequences (no sharing)     : {1000 * naive5:7.1f} ms  ({naive5 / plain:.2f}x)")
    print(f"sharing the instruction makes N = 5 {naive5 / results[5]:.1f}x faster than N full sequences")


if __name__ == "__main__":
    main()
