"""The embedding cache (``sam_bench.models.embedding_cache``): a hit decodes exactly as a miss,
its key separates weights, dtype, device kind and image, writes are atomic, and LRU eviction bounds the folder."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from sam_bench.errors import ConfigError
from sam_bench.models.embedding_cache import EmbeddingCache, parse_size
from sam_fixtures import make_image, tiny_model

POINTS = np.array([[[40.0, 50.0]], [[220.0, 120.0]], [[150.0, 30.0]]])
LABELS = np.ones((3, 1))


def _cached(root, **kw):
    """A tiny SAM (``sam_fixtures.tiny_model(**kw)``) reading and filling the cache at ``root``."""
    model = tiny_model(**kw)
    model.prompt_batch = 3  # fixed, so both models decode in the same chunks
    model.embedding_cache = EmbeddingCache(root)
    return model


def _decode(model, image):
    model.set_image(image)
    return model.predict(points=POINTS, labels=LABELS, multimask=True)


def test_a_hit_gives_the_decoder_what_a_miss_gives_bit_for_bit(tmp_path):
    image = make_image()
    miss_model, hit_model = _cached(tmp_path), _cached(tmp_path)
    miss = _decode(miss_model, image)
    hit = _decode(hit_model, image)
    assert (miss_model.encoder_calls, hit_model.encoder_calls) == (1, 0)
    assert torch.equal(hit_model.features, miss_model.features)
    assert hit_model.features.stride() == miss_model.features.stride()
    for a, b in [(miss.logits, hit.logits), (miss.iou_scores, hit.iou_scores), (miss.low_res_logits, hit.low_res_logits)]:
        assert a.dtype == torch.float32 and torch.equal(a, b)
    lat = hit_model.latency()
    assert lat["embedding_cache_hits"] == 1 and lat["embedding_cache_misses"] == 0
    assert lat["encoder_seconds_saved"] == pytest.approx(miss_model.encoder_seconds, rel=1e-3)
    assert miss_model.latency()["embedding_cache_misses"] == 1


def test_a_different_weights_dtype_or_image_never_hits(tmp_path):
    image = make_image()
    base = _cached(tmp_path)
    key = base.embedding_cache.key(base, image)
    other_seed = _cached(tmp_path, seed=1)  # other random weights, nothing recorded: the parameters' hash differs
    half = _cached(tmp_path, dtype=torch.bfloat16)
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    keys = {key, other_seed.embedding_cache.key(other_seed, image), half.embedding_cache.key(half, image),
            base.embedding_cache.key(base, changed), base.embedding_cache.key(base, image[:, :-1].copy())}
    assert len(keys) == 5
    trained = _cached(tmp_path)
    trained.info.untrained, trained.info.checkpoint_sha256 = False, "a" * 64
    key_a = trained.embedding_cache.key(trained, image)
    trained.info.checkpoint_sha256 = "b" * 64
    assert len({key, key_a, trained.embedding_cache.key(trained, image)}) == 3
    base.set_image(image)
    for model in (other_seed, half):
        model.set_image(image)
        assert model.encoder_calls == 1 and model.embedding_cache.hits == 0


def test_weights_changed_in_process_never_hit_older_entries(tmp_path, caplog):
    image = make_image()
    seeded = lambda: _cached(tmp_path, seed=3)
    model = seeded()
    model.info.extra["weights"] = "random weights (seed 3)"  # as a builder records --untrained
    model.set_image(image)
    model.set_image(image)  # same weights: a hit
    assert (model.encoder_calls, model.embedding_cache.hits) == (1, 1)
    with torch.no_grad():  # a fine-tuning step on the encoder, in place
        next(model.sam.image_encoder.parameters()).add_(0.01)
    with caplog.at_level(logging.WARNING, logger="sam_bench"):
        model.set_image(image)
    assert model.encoder_calls == 2 and "weights changed after it was built" in caplog.text
    model.set_image(image)  # the new weights' own entry
    assert (model.encoder_calls, model.embedding_cache.hits) == (2, 2)
    model.sam.image_encoder.neck[0].weight = torch.nn.Parameter(model.sam.image_encoder.neck[0].weight.clone())
    model.set_image(image)  # a replaced tensor, equal values: the hash finds the same entry
    assert (model.encoder_calls, model.embedding_cache.hits) == (2, 3)
    fresh = seeded()  # as built again: the seed's entry
    fresh.info.extra["weights"] = "random weights (seed 3)"
    fresh.set_image(image)
    assert fresh.encoder_calls == 0
    unnamed = _cached(tmp_path)  # neither a checkpoint nor a seed recorded: keyed by the hash throughout
    unnamed.set_image(image)
    with torch.no_grad():
        next(unnamed.sam.image_encoder.parameters()).add_(0.01)
    unnamed.set_image(image)
    assert unnamed.encoder_calls == 2


def test_weights_changed_between_build_and_first_lookup_are_seen(tmp_path):
    from sam_bench.models import embedding_cache
    from sam_bench.models.base import build_model

    image = make_image()
    cache = EmbeddingCache(tmp_path)
    first = build_model("sam_vit_b", untrained=True, device="cpu")
    first.embedding_cache = cache
    key = cache.key(first, image)
    assert embedding_cache.weights_id(first) == "random weights (seed 0)"
    edited = build_model("sam_vit_b", untrained=True, device="cpu")
    with torch.no_grad():
        edited.sam.image_encoder.neck[0].weight.mul_(0.5)  # before any lookup
    assert cache.key(edited, image) != key and embedding_cache.weights_id(edited).startswith("params:")


def test_a_cache_that_cannot_be_written_warns_once_and_changes_nothing(tmp_path, monkeypatch, caplog):
    from sam_bench.models import embedding_cache

    def full(path, data):
        raise OSError(28, "No space left on device")

    image = make_image()
    plain = tiny_model()
    plain.prompt_batch = 3
    ref = _decode(plain, image)
    monkeypatch.setattr(embedding_cache, "atomic_write_bytes", full)
    model = _cached(tmp_path)
    with caplog.at_level(logging.WARNING, logger="sam_bench"):
        got = _decode(model, image)
        _decode(model, make_image(210, 310))
    assert torch.equal(got.logits, ref.logits) and model.encoder_calls == 2
    assert caplog.text.count("cannot store an entry ([Errno 28] No space left on device)") == 1 and str(tmp_path) in caplog.text
    assert model.latency()["embedding_cache_write_errors"] == 2


def test_another_device_kind_never_hits(tmp_path, monkeypatch):
    from sam_bench.models import embedding_cache

    image = make_image()
    cpu = _cached(tmp_path)
    cpu.set_image(image)  # fills the cache on the CPU
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    keys = {cpu.embedding_cache.key(cpu, image)}
    for device in ("cuda", "cuda:1", "mps"):
        other = _cached(tmp_path)
        other.device = torch.device(device)
        keys.add(other.embedding_cache.key(other, image))
        assert other.embedding_cache.get(other.embedding_cache.key(other, image), torch.device("cpu")) is None
    assert len(keys) == 3  # cpu, cuda (both cards are an H200: one kind), mps
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    assert embedding_cache.device_kind("cuda") == "cuda:NVIDIA A100-SXM4-80GB" != embedding_cache.device_kind("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_run_after_a_cpu_run_encodes_again(tmp_path):
    image = make_image()
    cpu = _cached(tmp_path)
    cpu.set_image(image)
    gpu = _cached(tmp_path, device="cuda")
    gpu.set_image(image)
    assert gpu.encoder_calls == 1 and gpu.embedding_cache.hits == 0 and gpu.embedding_cache.misses == 1


def test_eviction_keeps_the_folder_under_its_size_least_recently_used_first(tmp_path):
    cache = EmbeddingCache(tmp_path, max_bytes=None)
    blob = {"x": torch.zeros(1000)}  # 4000 bytes + header
    for i, name in enumerate("abc"):
        cache.put(name * 64, blob, {"sizes": {}})
        os.utime(cache.path(name * 64), (1000 + i, 1000 + i))
    entry = cache.size() // 3
    assert cache.get("a" * 64, torch.device("cpu")) is not None  # a is now the most recently used
    cache.max_bytes = int(2.5 * entry)
    cache.put("d" * 64, blob, {"sizes": {}})
    assert cache.size() <= cache.max_bytes
    left = {p.stem[0] for _, _, p in cache.entries()}
    assert left == {"a", "d"} and cache.evicted == 2
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_corrupt_entry_is_a_miss_and_is_dropped(tmp_path):
    image = make_image()
    first = _cached(tmp_path)
    first.set_image(image)
    path = first.embedding_cache.path(first.embedding_cache.key(first, image))
    path.write_bytes(b"not a safetensors file")
    again = _cached(tmp_path)
    again.set_image(image)
    assert again.encoder_calls == 1 and again.embedding_cache.misses == 1 and path.stat().st_size > 100


def test_half_storage_halves_the_file_and_comes_back_in_the_encoders_dtype(tmp_path):
    image = make_image()
    full, half = EmbeddingCache(tmp_path / "fp32"), EmbeddingCache(tmp_path / "bf16", store="bf16")
    models = []
    for cache in (full, half, full, half):
        model = tiny_model()
        model.embedding_cache = cache
        model.set_image(image)
        models.append(model)
    assert [m.encoder_calls for m in models] == [1, 1, 0, 0]
    assert half.size() < 0.6 * full.size()
    got = models[3].features
    assert got.dtype == torch.float32 and not torch.equal(got, models[0].features)
    assert torch.allclose(got, models[0].features, rtol=1e-2, atol=1e-2)


def test_sizes_are_parsed_and_bad_ones_named():
    assert parse_size("500M") == 500 * 2**20 and parse_size("1.5G") == int(1.5 * 2**30) and parse_size("2048") == 2048
    assert parse_size("3GiB") == 3 * 2**30 and parse_size(None) is None
    with pytest.raises(ConfigError, match="--embedding-cache-size 'lots'"):
        parse_size("lots")


def test_the_environment_names_the_cache(tmp_path, monkeypatch):
    from sam_bench.runner import prepare_model

    monkeypatch.setenv("SAM_BENCH_EMBEDDING_CACHE", str(tmp_path))
    monkeypatch.setenv("SAM_BENCH_EMBEDDING_CACHE_SIZE", "1M")
    model = prepare_model(tiny_model())
    assert model.embedding_cache.root == tmp_path and model.embedding_cache.max_bytes == 2**20
    grabcut = prepare_model("grabcut")
    assert grabcut.embedding_cache is None  # its "encoder" keeps the image: nothing to store
