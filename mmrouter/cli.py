"""Command line: ``mmrouter run RECIPE [key=value ...]`` and ``mmrouter route --router DIR "text"``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .errors import MMRouterError


def _run(args) -> int:
    from .config import load_recipe
    from .evaluation import short_table
    from .recipe import run_recipe

    config, recipe_dir = load_recipe(args.recipe, args.overrides)
    result = run_recipe(config, recipe_dir, progress=not args.no_progress)
    if result.folder is None:  # a non-main process of `accelerate launch`
        return 0
    print(short_table(result.report))
    print(f"run folder: {result.folder}")
    return 0


def _route(args) -> int:
    from . import load_router, route

    router = load_router(args.router)
    decision = route(image=args.image, text=args.text, router=router)
    if args.json:
        print(json.dumps({"model": decision.model, "scores": decision.scores}, indent=1))
    else:
        print(f"chosen: {decision.model}")
        for name, score in sorted(decision.scores.items(), key=lambda item: -item[1]):
            print(f"  {score:.4f}  {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmrouter", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a recipe: train and evaluate a router, save a run folder")
    run.add_argument("recipe", help="recipe YAML, e.g. recipes/default.yaml")
    run.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.stage2_steps=50 seed=1")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.set_defaults(handler=_run)
    route_parser = commands.add_parser("route", help="route one instruction with a saved router")
    route_parser.add_argument("--router", required=True, help="router folder (RUN_FOLDER/router)")
    route_parser.add_argument("--image", default=None, help="optional image file")
    route_parser.add_argument("--json", action="store_true", help="print JSON")
    route_parser.add_argument("text", help="the instruction")
    route_parser.set_defaults(handler=_route)
    # argparse cannot take `--flag` between two positional lists (`run RECIPE --no-progress key=value`): collect
    # the stray key=value words as overrides instead of rejecting them.
    args, extra = parser.parse_known_args(argv)
    stray = [word for word in extra if args.command == "run" and "=" in word and not word.startswith("-")]
    unknown = [word for word in extra if word not in stray]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if stray:
        args.overrides = list(args.overrides) + stray
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "filelock", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.handler(args)
    except (MMRouterError, FileNotFoundError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"mmrouter: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
