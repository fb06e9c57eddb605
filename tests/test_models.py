"""Model loading, tiny models, LoRA and fingerprints, all on tiny in-process models (no downloads)."""

import string

import huggingface_hub
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from peft import PeftModel

from taskscope.models import (
    ModelSpec,
    ModelSpecError,
    add_lora,
    load_adapter,
    load_model,
    merge,
    parse_spec,
    save_adapter,
    tiny_model,
)
from taskscope.models.tiny import TINY_ARCHS, byte_tokenizer

ARCHS = list(TINY_ARCHS)


def save_checkpoint(loaded, path):
    loaded.model.save_pretrained(path)
    loaded.tokenizer.save_pretrained(path)
    return path


def logits(loaded, text="Definition: add. Input: 2 3 Output:"):
    batch = loaded.tokenizer([text], return_tensors="pt")
    extra = {"decoder_input_ids": batch.input_ids[:, :4]} if loaded.is_encoder_decoder else {}
    with torch.no_grad():
        return loaded.model(**batch, **extra).logits


def train_one_step(model, tokenizer):
    batch = tokenizer(["a tiny training example"], return_tensors="pt")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1)
    loss = model(**batch, labels=batch.input_ids).loss
    loss.backward()
    optimizer.step()
    model.eval()


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_model_forward_backward_and_dimensions(arch):
    loaded = tiny_model(arch, n_layers=3, hidden_size=32)
    assert (loaded.num_layers, loaded.hidden_size) == (3, 32)
    assert loaded.is_encoder_decoder == (arch == "t5")
    out = logits(loaded)
    assert out.shape[-1] == len(loaded.tokenizer)
    batch = loaded.tokenizer(["abc def"], return_tensors="pt")
    loaded.model(**batch, labels=batch.input_ids).loss.backward()
    assert all(p.grad is not None for p in loaded.model.parameters() if p.requires_grad)


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_model_is_seeded_and_leaves_the_global_rng_alone(arch):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = tiny_model(arch, seed=4)
    assert torch.equal(torch.rand(3), expected_next)
    second, other = tiny_model(arch, seed=4), tiny_model(arch, seed=5)
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert first.fingerprint == second.fingerprint != other.fingerprint
    assert not torch.equal(logits(first), logits(other))


def test_tiny_model_arguments_are_checked():
    assert tiny_model("gpt2", vocab_size=300).model.config.vocab_size == 300
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        tiny_model("llama", vocab_size=10)
    with pytest.raises(ValueError, match="unknown tiny architecture 'bert'.*llama"):
        tiny_model("bert")
    with pytest.raises(ValueError, match="multiple of 4"):
        tiny_model("llama", hidden_size=30)


@settings(max_examples=50, deadline=None)
@given(text=st.text(alphabet=string.printable, max_size=80))
def test_byte_tokenizer_round_trips_ascii(text):
    tokenizer = byte_tokenizer()
    ids = tokenizer(text).input_ids
    assert len(ids) == len(text.encode())
    assert tokenizer.decode(ids) == text


def test_byte_tokenizer_special_tokens_are_distinct():
    tokenizer = byte_tokenizer()
    special = [tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id]
    assert len(set(special)) == 4 and None not in special
    assert tokenizer.padding_side == "right"


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("tiny:llama", ModelSpec("tiny", "llama")),
        ("tiny:t5:3", ModelSpec("tiny", "t5", n_layers=3)),
        ("gguf:/models/x.gguf", ModelSpec("gguf", "/models/x.gguf")),
        ("embedded", ModelSpec("embedded")),
        ("google/gemma-3-270m", ModelSpec("pretrained", "google/gemma-3-270m")),
        ("embedded+lora:/runs/a", ModelSpec("embedded", lora_adapter="/runs/a")),
        ("tiny:gpt2:2+lora:ad", ModelSpec("tiny", "gpt2", n_layers=2, lora_adapter="ad")),
    ],
)
def test_parse_spec_and_back(spec, expected):
    assert parse_spec(spec) == expected
    assert str(expected) == spec


@pytest.mark.parametrize(
    "spec, message",
    [
        ("hf:gpt2", "unknown form 'hf:'"),
        ("tiny:llama:two", "layer count must be an integer"),
        ("a+lora:b+lora:c", "only one LoRA adapter"),
        ("+lora:x", "expected BASE\\+lora:ADAPTER_DIR"),
        ("", "empty model spec"),
    ],
)
def test_malformed_specs_are_rejected(spec, message):
    with pytest.raises(ModelSpecError, match=message):
        parse_spec(spec)


def test_tiny_spec_through_load_model():
    loaded = load_model("tiny:gpt2:3")
    assert loaded.num_layers == 3 and loaded.spec == "tiny:gpt2:3"
    assert load_model("tiny:gpt2:3").fingerprint == loaded.fingerprint
    with pytest.raises(ModelSpecError, match="'tiny:bert'.*unknown tiny architecture"):
        load_model("tiny:bert")


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_checkpoint_round_trip(arch, tmp_path):
    original = tiny_model(arch)
    path = save_checkpoint(original, tmp_path / arch)
    loaded = load_model(str(path))
    assert type(loaded.model) is type(original.model)
    assert (loaded.num_layers, loaded.hidden_size, loaded.is_encoder_decoder) == (
        original.num_layers, original.hidden_size, original.is_encoder_decoder)
    for name, tensor in original.model.state_dict().items():
        assert torch.equal(tensor, loaded.model.state_dict()[name]), name
    assert torch.equal(logits(loaded), logits(original))
    assert loaded.tokenizer.pad_token_id == original.tokenizer.pad_token_id


def test_fingerprint_is_stable_across_loads_and_changes_after_training(tmp_path):
    path = save_checkpoint(tiny_model("llama"), tmp_path / "base")
    first, second = load_model(str(path)), load_model(str(path))
    assert first.fingerprint == second.fingerprint
    assert load_model(str(path), dtype="bfloat16").fingerprint != first.fingerprint

    in_memory = first.refresh_fingerprint()
    assert second.refresh_fingerprint() == in_memory
    train_one_step(first.model, first.tokenizer)
    assert first.refresh_fingerprint() != in_memory

    trained = save_checkpoint(first, tmp_path / "trained")
    assert load_model(str(trained)).fingerprint != second.fingerprint


def test_dtype_and_device(tmp_path):
    path = save_checkpoint(tiny_model("gemma"), tmp_path / "m")
    loaded = load_model(str(path), dtype="bfloat16", device="auto")
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    assert {(p.dtype, p.device.type) for p in loaded.model.parameters()} == {(torch.bfloat16, expected_device)}
    assert next(load_model(str(path), dtype="auto").model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        load_model(str(path), dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' requested but CUDA is not available"):
            load_model(str(path), device="cuda")


def test_missing_and_unsafe_checkpoints_are_rejected(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelSpecError, match=f"'{missing}'.*does not exist"):
        load_model(str(missing))

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    tiny_model("llama").model.config.save_pretrained(pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelSpecError, match="no \\*.safetensors weights, only pytorch_model.bin"):
        load_model(str(pickled))

    no_config = tmp_path / "no_config"
    no_config.mkdir()
    with pytest.raises(ModelSpecError, match="has no config.json"):
        load_model(str(no_config))

    a_file = tmp_path / "weights.safetensors"
    a_file.write_bytes(b"")
    with pytest.raises(ModelSpecError, match="is not a checkpoint directory"):
        load_model(str(a_file))

    with pytest.raises(ModelSpecError, match="GGUF file .* does not exist"):
        load_model(f"gguf:{tmp_path / 'model.gguf'}")
    with pytest.raises(ModelSpecError, match="is not a .gguf file"):
        load_model(f"gguf:{a_file}")


def test_tokenizer_without_pad_gets_eos_and_without_eos_fails(tmp_path):
    loaded = tiny_model("gpt2")
    loaded.tokenizer.pad_token = None
    path = save_checkpoint(loaded, tmp_path / "no_pad")
    reloaded = load_model(str(path))
    assert reloaded.tokenizer.pad_token == "<eos>"
    assert reloaded.tokenizer.pad_token_id == reloaded.tokenizer.eos_token_id

    loaded.tokenizer.eos_token = None
    path = save_checkpoint(loaded, tmp_path / "no_pad_no_eos")
    with pytest.raises(ModelSpecError, match="neither a pad nor an eos token"):
        load_model(str(path))


def test_hub_id_downloads_only_safe_files_and_reports_failures(tmp_path, monkeypatch):
    snapshot = save_checkpoint(tiny_model("gpt2"), tmp_path / "snapshot")
    calls = []

    def fake_download(repo_id, allow_patterns):
        calls.append((repo_id, allow_patterns))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    loaded = load_model("someone/tiny-gpt2")
    assert loaded.spec == "someone/tiny-gpt2" and loaded.num_layers == 2
    repo_id, patterns = calls[0]
    assert repo_id == "someone/tiny-gpt2" and "*.safetensors" in patterns
    assert not any(pattern.endswith((".bin", ".pt", ".ckpt")) for pattern in patterns)

    def offline(repo_id, allow_patterns):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelSpecError, match="'someone/absent'.*downloading it from the Hugging Face hub failed.*no network"):
        load_model("someone/absent")


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_add_lora_trains_only_adapters_and_starts_as_the_base(arch):
    base = tiny_model(arch)
    before = logits(base)
    wrapped = add_lora(base.model, r=4, alpha=8, dropout=0.0)
    assert isinstance(wrapped, PeftModel)
    trainable = [name for name, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert any("lora_" in name for name, p in wrapped.named_parameters()) and sum(
        p.numel() for p in wrapped.parameters() if p.requires_grad) < sum(p.numel() for p in wrapped.parameters())
    base.model = wrapped
    torch.testing.assert_close(logits(base), before, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_lora_adapter_spec_round_trip(arch, tmp_path):
    base_dir = save_checkpoint(tiny_model(arch), tmp_path / "base")
    base = load_model(str(base_dir))
    peft_model = add_lora(base.model, r=4, alpha=8, dropout=0.0)
    train_one_step(peft_model, base.tokenizer)
    adapter_dir = save_adapter(peft_model, tmp_path / "adapter")
    assert (adapter_dir / "adapter_model.safetensors").is_file()
    assert not list(tmp_path.glob(".adapter.*"))  # staging directory cleaned up

    base.model = merge(peft_model)  # base now holds the trained, merged weights
    spec = f"{base_dir}+lora:{adapter_dir}"
    loaded, untouched = load_model(spec), load_model(str(base_dir))
    assert not isinstance(loaded.model, PeftModel)
    torch.testing.assert_close(logits(loaded), logits(base))
    assert not torch.allclose(logits(loaded), logits(untouched))
    assert loaded.fingerprint == load_model(spec).fingerprint != untouched.fingerprint


def test_merge_writes_into_copies_not_into_the_loaded_weights(tmp_path):
    base_dir = save_checkpoint(tiny_model("llama"), tmp_path / "base")
    trained = add_lora(load_model(str(base_dir)).model, r=4, alpha=8, dropout=0.0)
    train_one_step(trained, load_model(str(base_dir)).tokenizer)
    adapter_dir = save_adapter(trained, tmp_path / "adapter")
    base = load_model(str(base_dir))
    loaded_weights = {name: p.data for name, p in base.model.named_parameters()}   # the checkpoint's tensors
    values = {name: w.clone() for name, w in loaded_weights.items()}
    merged = merge(load_adapter(base.model, adapter_dir))
    changed = [name for name, p in merged.named_parameters() if not torch.equal(p.data, values[name])]
    assert changed                                                   # the adapter was folded in ...
    for name, weight in loaded_weights.items():                      # ... into copies: the loaded tensors kept
        torch.testing.assert_close(weight, values[name], rtol=0, atol=0)


def test_lora_adapter_errors(tmp_path):
    base_dir = save_checkpoint(tiny_model("llama"), tmp_path / "base")
    with pytest.raises(ModelSpecError, match="LoRA adapter directory .* does not exist"):
        load_model(f"{base_dir}+lora:{tmp_path / 'none'}")
    pickled = tmp_path / "pickled_adapter"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_text("{}")
    (pickled / "adapter_model.bin").write_bytes(b"x")
    with pytest.raises(ModelSpecError, match="no adapter_model.safetensors \\(found: adapter_config.json, adapter_model.bin\\)"):
        load_model(f"{base_dir}+lora:{pickled}")


def test_load_model_with_fresh_lora_settings():
    loaded = load_model("tiny:gemma", lora={"r": 2, "target_modules": ["q_proj", "v_proj"]})
    assert isinstance(loaded.model, PeftModel)
    trainable = {name.split(".")[-4] for name, p in loaded.model.named_parameters() if p.requires_grad}
    assert trainable == {"q_proj", "v_proj"}
    assert loaded.fingerprint != load_model("tiny:gemma").fingerprint


def test_tokenizer_of_one_folder_is_loaded_once_until_its_files_change(tmp_path):
    from taskscope.models import loading

    tiny = tiny_model("llama")
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    first = loading.load_tokenizer(tmp_path)
    assert loading.load_tokenizer(tmp_path) is first
    config_file = tmp_path / "tokenizer_config.json"
    config_file.write_text(config_file.read_text() + "\n")  # same content, new size: a changed file
    assert loading.load_tokenizer(tmp_path) is not first


def test_hub_revision_is_passed_to_the_download_and_named_in_its_error(tmp_path, monkeypatch):
    snapshot = save_checkpoint(tiny_model("gpt2"), tmp_path / "snapshot")
    calls = []

    def fake_download(repo_id, allow_patterns, revision=None):
        calls.append(revision)
        if revision == "missing":
            raise OSError("revision not found")
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    load_model("someone/tiny-gpt2", revision="abc123")
    load_model("someone/tiny-gpt2")
    assert calls == ["abc123", None]
    with pytest.raises(ModelSpecError, match="revision 'missing'.*revision not found"):
        load_model("someone/tiny-gpt2", revision="missing")
    load_model(str(snapshot), revision="ignored-for-local-folders")  # a local folder has no revisions
    assert len(calls) == 3


def test_trust_remote_code_warns_and_is_off_by_default(recwarn):
    load_model("tiny:llama")
    assert not [w for w in recwarn if "trust_remote_code" in str(w.message)]
    with pytest.warns(UserWarning, match="trust_remote_code is on"):
        load_model("tiny:llama", trust_remote_code=True)
