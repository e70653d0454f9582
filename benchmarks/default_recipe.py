"""Wall time and peak memory of the README's main command, from a cold cache.

Runs `mmrouter run recipes/default.yaml` in a child process with an empty MMROUTER_CACHE, so the one-time GGUF
conversion and all MiniLM embeddings are included, then prints wall time, peak RSS, the phase timings and the
accuracy table from the run's report.json.

    .venv/bin/python benchmarks/default_recipe.py [--warm] [--keep DIR] [extra key=value overrides]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm", action="store_true", help="reuse the normal cache instead of an empty one")
    parser.add_argument("--keep", default=None, help="write the run folder under DIR instead of a temporary folder")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ)
        if not args.warm:
            env["MMROUTER_CACHE"] = str(Path(scratch) / "cache")
        output = Path(args.keep).resolve() if args.keep else Path(scratch) / "runs"
        command = [str(Path(sys.executable).parent / "mmrouter"), "run", "--no-progress",
                   str(ROOT / "recipes" / "default.yaml"), f"output_dir={output}", *args.overrides]
        start = time.perf_counter()
        completed = subprocess.run(command, env=env, cwd=ROOT)
        wall = time.perf_counter() - start
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if completed.returncode != 0:
            sys.exit(f"the recipe failed with exit code {completed.returncode}")
        name = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("name=")), "default")
        report = json.loads((output / name / "report.json").read_text())
    print(f"\ncache: {'warm' if args.warm else 'cold (GGUF conversion and embeddings included)'}")
    print(f"wall time: {wall:.0f} s ({wall / 60:.1f} min; target <= 15 min)")
    print(f"peak RSS: {peak_mib / 1024:.2f} GiB (target <= 6 GiB)")
    print("phases (s): " + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items()))
    accuracy = report["accuracy"]
    sat, knn, best = (accuracy[k]["overall"] for k in ("Model-SAT router", "kNN router (MiniLM)", "best single"))
    print(f"test questions: {report['test_questions']}, training questions: {report['train_questions']}")
    print(f"Model-SAT {100 * sat:.1f}%  kNN {100 * knn:.1f}%  best single ({report['best_single']}) {100 * best:.1f}%  "
          f"oracle {100 * accuracy['oracle']['overall']:.1f}%  random {100 * accuracy['random']['overall']:.1f}%")
    summary = report["routers"]["Model-SAT router"]
    versus_knn = summary["versus_routers"]["kNN router (MiniLM)"]
    interval = lambda pair: f"95% paired bootstrap interval {100 * pair[0]:+.1f} to {100 * pair[1]:+.1f}"  # noqa: E731
    print(f"Model-SAT - best single: {100 * (sat - best):+.1f} points ({interval(summary['gain_at_best_ci95'])})")
    print(f"Model-SAT - kNN: {100 * versus_knn['gain']:+.1f} points ({interval(versus_knn['ci95'])})")


if __name__ == "__main__":
    main()
