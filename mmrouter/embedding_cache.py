"""A disk cache of text embeddings keyed by (encoder identity, text), shared across runs."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Append-only shards of ``.npz`` files, one folder per encoder identity.

    Each ``store`` writes a new shard through a temporary file and a rename, so a crash never leaves a
    half-written shard and concurrent runs never corrupt each other.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def _folder(self, encoder_identity: str) -> Path:
        return self.root / hashlib.sha1(encoder_identity.encode()).hexdigest()[:16]

    def _load_all(self, encoder_identity: str) -> dict[str, np.ndarray]:
        table: dict[str, np.ndarray] = {}
        folder = self._folder(encoder_identity)
        for shard in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
            try:
                with np.load(shard) as data:
                    table.update(zip(data["keys"].tolist(), data["vectors"]))
            except (OSError, ValueError, KeyError):
                continue  # an unreadable shard is only a cache miss
        return table

    def lookup(self, encoder_identity: str, texts: list[str]) -> dict[str, np.ndarray]:
        table = self._load_all(encoder_identity)
        found = {}
        for text in texts:
            vector = table.get(_text_key(text))
            if vector is not None:
                found[text] = vector
        return found

    def store(self, encoder_identity: str, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        folder = self._folder(encoder_identity)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "encoder.txt").write_text(encoder_identity, encoding="utf-8")
        keys = np.array([_text_key(t) for t in vectors])
        matrix = np.stack(list(vectors.values())).astype(np.float32)
        handle, temporary = tempfile.mkstemp(suffix=".npz.tmp", dir=folder)
        os.close(handle)
        with open(temporary, "wb") as out:
            np.savez(out, keys=keys, vectors=matrix)
        digest = hashlib.sha1(keys.tobytes()).hexdigest()[:16]
        os.replace(temporary, folder / f"{digest}.npz")
