"""The embedded Gemma 3 270M checkpoint: cache logic on a stand-in (fast) and the real conversion (slow)."""

import importlib

import pytest
import torch

from taskscope.models import ModelSpecError, load_model, tiny_model
from taskscope.models.embedded import EMBEDDED_NAME, GGUF_PACKAGE, embedded_checkpoint


def test_embedded_uses_a_complete_cached_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKSCOPE_CACHE", str(tmp_path))
    stand_in = tiny_model("gemma")
    cached = tmp_path / "models" / EMBEDDED_NAME
    stand_in.model.save_pretrained(cached)
    stand_in.tokenizer.save_pretrained(cached)
    real_import = importlib.import_module

    def no_conversion(name, *args):
        if name.startswith(GGUF_PACKAGE.replace("-", "_").split("[")[0]) or "gguf" in name:
            pytest.fail(f"converted again ({name})")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_conversion)
    loaded = load_model("embedded")
    assert loaded.spec == "embedded" and loaded.num_layers == stand_in.num_layers
    assert torch.equal(loaded.model.lm_head.weight, stand_in.model.lm_head.weight)
    assert load_model("embedded").fingerprint == loaded.fingerprint


def test_embedded_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKSCOPE_CACHE", str(tmp_path))
    (tmp_path / "models" / EMBEDDED_NAME).mkdir(parents=True)  # an unfinished leftover is not used

    def missing(name):
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(ModelSpecError, match=f"{GGUF_PACKAGE} is not installed.*taskscope\\[embedded\\]"):
        load_model("embedded")


@pytest.mark.slow
def test_embedded_conversion_from_the_packaged_gguf(tmp_path, monkeypatch):
    pytest.importorskip(GGUF_PACKAGE)
    monkeypatch.setenv("TASKSCOPE_CACHE", str(tmp_path))
    path = embedded_checkpoint()
    assert path == tmp_path / "models" / EMBEDDED_NAME
    assert (path / "model.safetensors").is_file()
    assert [p.name for p in (tmp_path / "models").iterdir()] == [EMBEDDED_NAME]  # no staging left behind
    loaded = load_model("embedded")
    assert (loaded.num_layers, loaded.hidden_size, loaded.is_encoder_decoder) == (18, 640, False)
    batch = loaded.tokenizer(["The capital of France is the city of"], return_tensors="pt")
    with torch.no_grad():
        hidden = loaded.model.model(**batch).last_hidden_state[:, -1]  # no full-sequence 262k-vocab logits
        next_token = loaded.model.lm_head(hidden).argmax(-1)
        sentence = loaded.tokenizer(["The quick brown fox jumps over the lazy dog."], return_tensors="pt")
        loss = loaded.model(**sentence, labels=sentence.input_ids).loss.item()
    assert loaded.tokenizer.decode(next_token).strip() == "Paris"
    assert loss < 5.0  # a random 262k-vocabulary model scores about ln(262144) = 12.5
    assert load_model("embedded").fingerprint == loaded.fingerprint
