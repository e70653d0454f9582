"""How much routing signal the default split holds, and how much of it a sentence encoder keeps in a number.

Prints, for the default recipe's zoo and split (no training, seconds with a warm embedding cache):
  - accuracy of best single, oracle, and a per-category router that picks each MMLU-Pro category's best model on
    the training questions (the coarse signal a learned router has to find);
  - the per-instruction choice loss (train.choice_weight's term) of a uniform choice, of the candidates' prior and
    of the per-category prior, on the training questions: a router whose loss stays at the prior's learnt priors only;
  - MiniLM cosine similarities of one capability line at different percentages (why model.score_features exists).

    .venv/bin/python benchmarks/routing_signal.py [seed=0]
"""

from __future__ import annotations

import sys
from pathlib import Path

import mmrouter  # noqa: F401  (sets the offline environment first)
import numpy as np
import torch

from mmrouter.config import load_recipe
from mmrouter.encoders import build_encoder
from mmrouter.splits import split_questions
from mmrouter.training import candidate_choice_loss
from mmrouter.zoo import load_zoo

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    recipe, recipe_dir = load_recipe(ROOT / "recipes" / "default.yaml", sys.argv[1:])
    zoo = load_zoo(recipe_dir / recipe.zoo)
    split = split_questions(zoo.scores, test_size=recipe.split.test_size,
                            aptitude_pool_size=recipe.split.aptitude_pool_size,
                            max_train_questions=recipe.split.max_train_questions, seed=recipe.seed)
    train, test = zoo.scores[split.train], zoo.scores[split.test]
    train_categories = np.array([zoo.questions[i].category for i in split.train])
    test_categories = np.array([zoo.questions[i].category for i in split.test])
    best = int(np.argmax(train.mean(axis=0)))
    per_category = {c: int(np.argmax(train[train_categories == c].mean(axis=0))) for c in set(train_categories)}
    routed = np.array([per_category.get(c, best) for c in test_categories])
    print(f"zoo {zoo.name}, seed {recipe.seed}: {len(split.train)} training, {len(split.test)} test questions")
    print(f"best single ({zoo.candidate_names[best]}): {100 * test[:, best].mean():.1f}%   "
          f"oracle: {100 * test.max(axis=1).mean():.1f}%")
    print(f"per-category best model, picked on training questions: {100 * test[np.arange(len(test)), routed].mean():.1f}%")

    targets = torch.as_tensor(train, dtype=torch.float32)
    weights = torch.ones(len(targets))
    right = targets.sum(dim=1, keepdim=True)
    useful = ((right > 0) & (right < targets.shape[1])).flatten()
    shares = targets[useful] / right[useful]

    def prior_logits(rows: np.ndarray) -> torch.Tensor:
        return shares[torch.as_tensor(rows[useful.numpy()])].mean(dim=0).log()

    category_logits = torch.zeros_like(targets)
    for category in set(train_categories):
        category_logits[torch.as_tensor(train_categories == category)] = prior_logits(train_categories == category)
    everything = np.ones(len(targets), dtype=bool)
    print("choice loss on training questions: "
          f"uniform {candidate_choice_loss(torch.zeros_like(targets), targets, weights):.3f}, "
          f"prior {candidate_choice_loss(prior_logits(everything).expand_as(targets), targets, weights):.3f}, "
          f"per-category prior {candidate_choice_loss(category_logits, targets, weights):.3f}")

    encoder = build_encoder(recipe.model.encoder, path=recipe.model.encoder_path,
                            max_tokens=recipe.model.encoder_max_tokens).eval()
    percentages = (20, 35, 50, 65, 80)
    lines = [f"The model achieves {p}% on the task of 'high school mathematics, algebra, equation, polynomial, math'."
             for p in percentages]
    with torch.no_grad():
        embeddings = encoder.encode_text(lines)
    similarity = (embeddings @ embeddings.T).numpy()
    print("MiniLM cosine of one capability line at " + ", ".join(f"{p}%" for p in percentages) + ":")
    for p, row in zip(percentages, similarity):
        print(f"  {p:>3}%  " + "  ".join(f"{value:.3f}" for value in row))


if __name__ == "__main__":
    main()
