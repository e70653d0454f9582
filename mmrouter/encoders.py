"""Capability encoders: turn capability lines and instructions (and, for vision encoders, images) into vectors.

Register a new encoder with ``@ENCODER_REGISTRY.register("name")``; the recipe picks it by name.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .embedding_cache import EmbeddingCache
from .errors import InputError
from .registry import Registry
from .weights import resolve_model_path

logger = logging.getLogger(__name__)

ENCODER_REGISTRY: Registry[type["CapabilityEncoder"]] = Registry("encoder")


class CapabilityEncoder(nn.Module):
    """Maps texts (and optionally images) to ``dim``-sized vectors. Subclasses implement ``encode_text``."""

    dim: int
    supports_images = False

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def encode_images(self, images: list) -> torch.Tensor:
        raise InputError(f"the capability encoder {type(self).__name__} does not embed images; "
                         "train the router with a vision encoder to route image instructions")

    def identity(self) -> str:
        """A string that changes whenever the encoder's base weights change (embedding-cache key)."""
        raise NotImplementedError


@ENCODER_REGISTRY.register("hf-text")
class HFTextEncoder(CapabilityEncoder):
    """A transformers text encoder with mean pooling and L2 normalisation (the sentence-transformers recipe)."""

    def __init__(self, path: str, max_tokens: int = 128):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        folder = resolve_model_path(path)
        self.source = path
        self.folder = folder
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder, dtype=torch.float32)
        self.max_tokens = max_tokens
        self.dim = self.model.config.hidden_size
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        digest = hashlib.sha1()
        for file in weights:
            digest.update(f"{file.name}:{file.stat().st_size}".encode())
        self._identity = f"hf-text:{folder.name}:{digest.hexdigest()[:12]}:{max_tokens}"

    def identity(self) -> str:
        return self._identity

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        # Padding to a multiple of 16 keeps the number of distinct tensor shapes (and CPU kernel set-ups) small.
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                               pad_to_multiple_of=16, return_tensors="pt").to(device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return nn.functional.normalize(pooled, dim=-1)


def build_encoder(name: str, **options) -> CapabilityEncoder:
    return ENCODER_REGISTRY.get(name)(**options)


@torch.no_grad()
def embed_texts(encoder: CapabilityEncoder, texts: list[str], cache: EmbeddingCache | None = None,
                batch_size: int = 64, progress: bool = False, autocast_dtype: torch.dtype | None = None) -> np.ndarray:
    """Base-encoder embeddings for many texts, reusing ``cache`` (keyed by encoder identity, precision and text)."""
    identity = f"{encoder.identity()}:{autocast_dtype or 'float32'}"
    vectors: dict[str, np.ndarray] = cache.lookup(identity, texts) if cache is not None else {}
    todo = sorted({t for t in texts if t not in vectors}, key=len)  # similar lengths batch with little padding
    if todo:
        from tqdm.auto import tqdm

        was_training = encoder.training
        encoder.eval()
        fresh: dict[str, np.ndarray] = {}
        starts = range(0, len(todo), batch_size)
        for start in tqdm(starts, desc="embedding texts", disable=not progress, unit="batch"):
            chunk = todo[start:start + batch_size]
            device_type = next(encoder.parameters()).device.type
            with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                out = encoder.encode_text(chunk).float().cpu().numpy()
            fresh.update(zip(chunk, out))
        encoder.train(was_training)
        if cache is not None:
            cache.store(identity, fresh)
        vectors.update(fresh)
    return np.stack([vectors[t] for t in texts]) if texts else np.zeros((0, encoder.dim), dtype=np.float32)
