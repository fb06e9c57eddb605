"""`gguf:` specs on a tiny Llama written to GGUF in the test (float32 tensors, byte-level vocabulary)."""

import gguf
import numpy as np
import pytest
import torch

from taskscope.models import load_model, tiny_model


def llama_cpp_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """The rotary-layout permutation llama.cpp applies to q/k projections (transformers undoes it)."""
    return weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def gguf_tensor_names(n_layers: int) -> dict[str, str]:
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    parts = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(n_layers):
        names.update({f"model.layers.{i}.{hf}.weight": f"blk.{i}.{g}.weight" for hf, g in parts.items()})
    return names


def write_llama_gguf(loaded, path):
    config, tokenizer = loaded.model.config, loaded.tokenizer
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(config.vocab_size)
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token in tokenizer.all_special_tokens else 1 for token in tokens])
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_unk_token_id(tokenizer.unk_token_id)
    state = loaded.model.state_dict()
    for hf_name, gguf_name in gguf_tensor_names(config.num_hidden_layers).items():
        tensor = state[hf_name].numpy()
        if "q_proj" in hf_name:
            tensor = llama_cpp_permute(tensor, config.num_attention_heads)
        if "k_proj" in hf_name:
            tensor = llama_cpp_permute(tensor, config.num_key_value_heads)
        writer.add_tensor(gguf_name, np.ascontiguousarray(tensor, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def original_and_gguf(tmp_path_factory):
    original = tiny_model("llama", seed=3)
    return original, write_llama_gguf(original, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_gguf_spec_loads_the_weights_and_tokenizer(original_and_gguf):
    original, path = original_and_gguf
    loaded = load_model(f"gguf:{path}")
    assert (loaded.num_layers, loaded.hidden_size, loaded.is_encoder_decoder) == (2, 64, False)
    reference = original.model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    text = "Definition: copy. Input: abc"
    assert loaded.tokenizer(text).input_ids == original.tokenizer(text).input_ids
    assert loaded.tokenizer.pad_token_id == original.tokenizer.pad_token_id
    assert load_model(f"gguf:{path}").fingerprint == loaded.fingerprint


def test_gguf_model_is_plain_and_can_be_saved(original_and_gguf, tmp_path):
    original, path = original_and_gguf
    loaded = load_model(f"gguf:{path}")
    assert not hasattr(loaded.model.config, "quantization_config")
    loaded.model.save_pretrained(tmp_path / "saved")
    loaded.tokenizer.save_pretrained(tmp_path / "saved")
    resaved = load_model(str(tmp_path / "saved"))
    batch = original.tokenizer(["a b c"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(resaved.model(**batch).logits, original.model(**batch).logits, rtol=0, atol=0)
