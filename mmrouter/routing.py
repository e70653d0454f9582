"""Serving entry points: load a saved router once, then route instructions with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import InputError
from .routers import Decision, Instruction, Router


def load_router(path: str | Path) -> Router:
    """Load a router folder written by ``mmrouter run`` (``RUN_FOLDER/router``); offline, no downloads."""
    from .model_sat import ModelSATRouter

    return ModelSATRouter.from_pretrained(path)


def _open_image(image: Any):
    if image is None:
        return None
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image
    path = Path(image)
    if path.is_dir():
        raise InputError(f"image {path} is a folder; pass one image file (PNG/JPEG) or a PIL image")
    if not path.is_file():
        raise InputError(f"image file {path} does not exist")
    try:
        with Image.open(path) as handle:
            return handle.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"image file {path} is not a readable image ({error}); pass a PNG/JPEG file or a PIL image") from error


def route(image: Any = None, text: str | None = None, *, router: Router) -> Decision:
    """Pick the candidate for one instruction; returns the chosen model and every candidate's score."""
    if not isinstance(router, Router):
        raise InputError("pass router=mmrouter.load_router(FOLDER); got " + type(router).__name__)
    if text is None:
        text = ""
    return router.route([Instruction(text=text, image=_open_image(image))])[0]
