"""`common.hashing.digest`: the documented canonical form, its invariances, and that every cache uses it."""

import hashlib
from pathlib import Path

from taskscope.common.hashing import digest
from taskscope.evaluate.cache import EvalCache, hash_examples
from taskscope.represent.cache import ActivationCache, ActivationKey, hash_prompts
from taskscope.tasks.formats import FormattedExample


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_digest_is_the_sha256_of_the_documented_canonical_json():
    # written out by hand from the module docstring: keys sorted, no whitespace, non-ASCII escaped, str() fallback
    obj = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": ("t", Path("/x/y"))}}
    assert digest(obj) == _sha256('{"a":{"y":["t","/x/y"],"z":"\\u00e9"},"b":[1,2.5,null,true]}')


def test_digest_ignores_key_order_and_sees_values_order_and_length():
    assert digest({"a": 1, "b": {"c": [1, 2], "d": 0}}) == digest({"b": {"d": 0, "c": [1, 2]}, "a": 1})
    distinct = [{"a": 1}, {"a": 2}, {"a": "1"}, [1, 2], [2, 1], [1, 2, 2], ["ab", "c"], ["a", "bc"]]
    assert len({digest(x) for x in distinct}) == len(distinct)


def test_every_cache_key_is_the_digest(tmp_path):
    key = {"kind": "examples", "fingerprint": "f" * 64, "task": "t", "settings": {"max_new_tokens": 4}}
    assert EvalCache(tmp_path).path(key) == tmp_path / digest(key)[:2] / f"{digest(key)}.json"

    prompts = ["Définition: a", "b"]
    assert hash_prompts(prompts) == digest(prompts) != hash_prompts(prompts[::-1])
    activation_key = ActivationKey.for_prompts("f" * 64, "t", "fmt", prompts, layers=[0, 2])
    assert activation_key.prompts_sha256 == digest(prompts)
    assert activation_key.digest() == digest(activation_key.parts())
    tensor_file, _ = ActivationCache(tmp_path).paths(activation_key)
    assert tensor_file.name == f"t-{digest(activation_key.parts())[:16]}.safetensors"

    examples = [FormattedExample(task="t", instance_id="1", prompt="p", targets=("x", "y"), template_index=0)]
    assert hash_examples(examples) == digest([["t", "1", "p", ["x", "y"]]])
