"""EmbeddingCache round trips and misses; model-path resolution; registries."""

from __future__ import annotations

import numpy as np
import pytest

from mmrouter.embedding_cache import EmbeddingCache
from mmrouter.errors import ConfigError
from mmrouter.registry import Registry
from mmrouter.weights import cache_dir, resolve_model_path

IDENTITY = "hf-text:tiny:abc:128"


def _vectors(texts, seed=0):
    rng = np.random.default_rng(seed)
    return {t: rng.standard_normal(8).astype(np.float32) for t in texts}


def test_store_then_lookup(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    stored = _vectors(["alpha", "beta", "gamma"])
    cache.store(IDENTITY, stored)
    found = cache.lookup(IDENTITY, ["alpha", "gamma", "unknown"])
    assert set(found) == {"alpha", "gamma"}
    for text in found:
        np.testing.assert_array_equal(found[text], stored[text])
    # a second store adds a shard; both are read; a fresh cache object on the same folder sees everything
    more = _vectors(["delta"], seed=1)
    cache.store(IDENTITY, more)
    again = EmbeddingCache(tmp_path / "cache").lookup(IDENTITY, ["alpha", "delta"])
    np.testing.assert_array_equal(again["delta"], more["delta"])
    np.testing.assert_array_equal(again["alpha"], stored["alpha"])
    folder = next((tmp_path / "cache").iterdir())
    assert len(list(folder.glob("*.npz"))) == 2
    assert (folder / "encoder.txt").read_text() == IDENTITY
    assert not list(folder.glob("*.tmp"))  # written through a temporary file, then renamed
    cache.store(IDENTITY, {})  # nothing to store: no new shard
    assert len(list(folder.glob("*.npz"))) == 2


def test_other_encoder_identity_misses(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.store(IDENTITY, _vectors(["alpha"]))
    assert cache.lookup(IDENTITY + "-retrained", ["alpha"]) == {}
    assert cache.lookup("hf-text:other:def:128", ["alpha"]) == {}
    assert set(cache.lookup(IDENTITY, ["alpha"])) == {"alpha"}


def test_empty_or_missing_cache_folder(tmp_path):
    assert EmbeddingCache(tmp_path / "does_not_exist").lookup(IDENTITY, ["x"]) == {}


def test_corrupt_shard_is_ignored(tmp_path):
    cache = EmbeddingCache(tmp_path)
    stored = _vectors(["alpha", "beta"])
    cache.store(IDENTITY, stored)
    folder = next(tmp_path.iterdir())
    (folder / "0000broken.npz").write_bytes(b"definitely not an npz file")
    np.savez(folder / "ffffwrongkeys.npz", other=np.zeros(3))  # readable, but without keys/vectors
    found = cache.lookup(IDENTITY, ["alpha", "beta"])
    assert set(found) == {"alpha", "beta"}
    np.testing.assert_array_equal(found["beta"], stored["beta"])


def test_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MMROUTER_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("MMROUTER_CACHE")
    assert cache_dir().parts[-2:] == (".cache", "mmrouter")


def test_resolve_model_path(tiny_models, tmp_path):
    assert resolve_model_path(str(tiny_models.llm)) == tiny_models.llm.resolve()
    with pytest.raises(ConfigError, match="no config.json") as caught:
        resolve_model_path(str(tmp_path))
    assert str(tmp_path) in str(caught.value)
    with pytest.raises(ConfigError, match="unknown packaged model 'GPT-5'"):
        resolve_model_path("packaged:GPT-5")
    folder = resolve_model_path("packaged:all-MiniLM-L6-v2")
    assert (folder / "config.json").is_file()


def test_registry():
    registry: Registry[type] = Registry("widget")

    @registry.register("a")
    class A:
        pass

    assert registry.get("a") is A and "a" in registry and registry.names() == ["a"]
    registry.register("a")(A)  # registering the same object again is fine
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(int)
    with pytest.raises(KeyError, match="unknown widget 'b'.*known widgets: a"):
        registry.get("b")
