"""`load_model`: one spec string to a `LoadedModel`.

Order of operations:

1. parse the spec (`taskscope.models.spec`);
2. build or load the base model:
   * ``tiny:``  -> `tiny_model`;
   * hub id     -> ``huggingface_hub.snapshot_download`` (at ``revision`` when given) of the config, tokenizer
     and ``*.safetensors`` files only, then as a local directory;
   * directory  -> check it holds ``config.json`` and safetensors weights, read the config, pick
     ``AutoModelForSeq2SeqLM`` when ``config.is_encoder_decoder`` else ``AutoModelForCausalLM``, load with
     ``use_safetensors=True``;
   * ``gguf:``  -> load through transformers' ``gguf_file=`` and copy into a plain (non-quantised) model;
   * ``embedded`` -> the cached safetensors checkpoint of `taskscope.models.embedded` (converted on first use);
3. if the spec names ``+lora:ADAPTER_DIR``: attach the adapter and merge it into the weights;
4. give a tokenizer without a pad token ``pad = eos`` (error if it has no eos either);
5. if ``lora=`` settings are given: wrap the model in fresh trainable LoRA adapters (`add_lora`);
6. move to the device and dtype.

The fingerprint is the `taskscope.common.hashing.digest` of a chain of lists, in order: the base fingerprint
(`taskscope.models.loaded`: config plus safetensors file identities, or plus the weights for tiny and GGUF
models), then the LoRA adapter's config text and weight-file size/mtime (``+lora:``), the ``lora=`` settings,
and the final dtype - each step ``digest([fingerprint so far, what it adds])``.

The tokenizer keeps its own ``padding_side``; code that needs left padding (hidden-state extraction,
generation) sets it itself.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import huggingface_hub
import torch
from transformers import AutoConfig, AutoTokenizer

from taskscope.common.hashing import digest

from .embedded import embedded_checkpoint
from .gguf import load_gguf, model_class
from .loaded import (
    LoadedModel,
    fingerprint_from_files,
    fingerprint_from_weights,
    model_dimensions,
)
from .lora import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    add_lora,
    check_adapter_dir,
    load_adapter,
    merge,
)
from .spec import ModelSpec, ModelSpecError, parse_spec
from .tiny import tiny_model

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "tokenizer*"]
UNSAFE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def resolve_device(device: str) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (use device='cpu' or 'auto')")
    return resolved


def resolve_dtype(dtype: str, config: Any | None = None) -> torch.dtype:
    """``"auto"`` means the checkpoint's own dtype (float32 when it states none)."""
    if dtype == "auto":
        stated = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        if isinstance(stated, str):
            stated = DTYPES.get(stated)
        return stated if isinstance(stated, torch.dtype) else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join([*DTYPES, 'auto'])}")
    return DTYPES[dtype]


def check_checkpoint_dir(path: Path, spec: str) -> None:
    """Raise `ModelSpecError` naming ``spec`` unless ``path`` holds ``config.json`` and safetensors weights."""
    if not path.exists():
        raise ModelSpecError(f"model spec {spec!r}: path {str(path)!r} does not exist")
    if not path.is_dir():
        raise ModelSpecError(f"model spec {spec!r}: {str(path)!r} is not a checkpoint directory "
                             "(use gguf:PATH for a GGUF file)")
    if not (path / "config.json").is_file():
        raise ModelSpecError(f"model spec {spec!r}: {str(path)!r} has no config.json")
    if not any(path.glob("*.safetensors")):
        unsafe = sorted(p.name for pattern in UNSAFE_WEIGHTS for p in path.glob(pattern))
        detail = f"only {', '.join(unsafe)} (pickle-based weights are refused)" if unsafe else "no weight files"
        raise ModelSpecError(f"model spec {spec!r}: {str(path)!r} has no *.safetensors weights, {detail}")


def _download_hub(repo_id: str, spec: str, revision: str | None = None) -> Path:
    pinned = {"revision": revision} if revision else {}
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, **pinned))
    except Exception as error:  # network, auth, missing repo: all end the same way for the user
        raise ModelSpecError(
            f"model spec {spec!r}: not a local directory, and downloading it"
            f"{f' (revision {revision!r})' if revision else ''} from the Hugging Face hub "
            f"failed ({type(error).__name__}: {error})"
        ) from error


def _load_pretrained_dir(path: Path, spec: str, dtype: str, trust_remote_code: bool) -> tuple[Any, Any]:
    check_checkpoint_dir(path, spec)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    model = model_class(config).from_pretrained(
        path, config=config, dtype=resolve_dtype(dtype, config), use_safetensors=True,
        trust_remote_code=trust_remote_code,
    )
    return model, load_tokenizer(path, trust_remote_code=trust_remote_code)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a checkpoint folder, shared within the process while its files are unchanged.

    Building a large-vocabulary fast tokenizer is slow (Gemma 3's 262k-token ``tokenizer.json``: ~3 s, and
    ``copy.deepcopy`` ~2 s), and a study loads the same base checkpoint once per control model, so loads of
    one folder return one object.  taskscope never mutates a loaded tokenizer beyond :func:`ensure_pad_token`
    (the same change on every load); copy it before changing ``padding_side`` or adding tokens yourself.
    """
    path = Path(path)
    stamp = tuple((name, (path / name).stat().st_mtime_ns, (path / name).stat().st_size)
                  for name in TOKENIZER_FILES if (path / name).is_file())
    return _cached_tokenizer(str(path.resolve()), stamp, trust_remote_code)


@functools.lru_cache(maxsize=8)
def _cached_tokenizer(path: str, stamp: tuple, trust_remote_code: bool) -> Any:
    return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


def load_spec_tokenizer(spec: str | ModelSpec, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer ``load_model(spec)`` would give, without loading the weights where that is possible
    (checkpoint folders, hub ids, ``embedded``); ``tiny:`` and ``gguf:`` build the model (cheap / unavoidable).
    Used to count prompt tokens before any model is loaded (e.g. to budget training prompts)."""
    parsed = parse_spec(spec)
    spec_text = str(spec)
    if parsed.kind in ("tiny", "gguf"):
        model, tokenizer, _ = _load_base(parsed, spec_text, "float32", trust_remote_code)
        ensure_pad_token(model, tokenizer, spec_text)
        return tokenizer
    if parsed.kind == "embedded":
        path = embedded_checkpoint()
    else:
        path = Path(parsed.location).expanduser()
        looks_local = path.exists() or parsed.location.startswith((".", "/", "~")) or parsed.location.count("/") > 1
        if not looks_local:
            path = _download_hub(parsed.location, spec_text)
    return load_tokenizer(path, trust_remote_code=trust_remote_code)


def ensure_pad_token(model: Any, tokenizer: Any, spec: str) -> None:
    """Set ``pad = eos`` on a tokenizer (and model config) that has no pad token; raise if there is no eos."""
    if tokenizer.pad_token_id is not None:
        return
    if tokenizer.eos_token is None:
        raise ModelSpecError(f"model spec {spec!r}: the tokenizer has neither a pad nor an eos token")
    tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def _adapter_identity(adapter_dir: Path) -> str:
    config_text = (adapter_dir / ADAPTER_CONFIG).read_text()
    weights = (adapter_dir / ADAPTER_WEIGHTS).stat()
    return f"{config_text}:{weights.st_size}:{weights.st_mtime_ns}"


def is_hub_id(parsed: ModelSpec) -> bool:
    """Whether a parsed spec's base is downloaded from the Hugging Face hub (not a local folder, tiny, GGUF, embedded)."""
    if parsed.kind != "pretrained":
        return False
    path = Path(parsed.location).expanduser()
    return not (path.exists() or parsed.location.startswith((".", "/", "~")) or parsed.location.count("/") > 1)


def _load_base(parsed: ModelSpec, spec: str, dtype: str, trust_remote_code: bool,
               revision: str | None = None) -> tuple[Any, Any, str]:
    """Step 2: the base model, its tokenizer and its fingerprint."""
    if parsed.kind == "tiny":
        try:
            loaded = tiny_model(parsed.location, n_layers=parsed.n_layers or 2)
        except ValueError as error:
            raise ModelSpecError(f"model spec {spec!r}: {error}") from error
        return loaded.model, loaded.tokenizer, loaded.fingerprint
    if parsed.kind == "gguf":
        path = Path(parsed.location).expanduser()
        model, tokenizer = load_gguf(path, spec)
        stat = path.stat()
        return model, tokenizer, digest([fingerprint_from_weights(model),
                                         f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"])
    if parsed.kind == "embedded":
        path = embedded_checkpoint()
    else:
        path = Path(parsed.location).expanduser()
        if is_hub_id(parsed):
            path = _download_hub(parsed.location, spec, revision)
    model, tokenizer = _load_pretrained_dir(path, spec, dtype, trust_remote_code)
    return model, tokenizer, fingerprint_from_files(model.config, path)


def load_model(
    spec: str | ModelSpec,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
    revision: str | None = None,
    lora: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Load the model named by ``spec`` (see module docstring and docs/models.md).

    ``dtype``: ``float32`` | ``bfloat16`` | ``float16`` | ``auto`` (the checkpoint's dtype).
    ``device``: ``cpu`` | ``cuda`` | ``auto``.  ``revision``: the hub branch, tag or commit of a hub id (ignored
    for local folders, tiny, GGUF and embedded models).  ``trust_remote_code`` (off by default; warns when on)
    lets transformers run Python code shipped with the checkpoint.  ``lora``: keyword arguments of `add_lora` to wrap the model
    in fresh trainable adapters (``{}`` for the defaults), or ``None``.
    """
    parsed = parse_spec(spec)
    spec_text = str(spec)
    resolve_dtype(dtype)  # fail on a bad dtype or device before loading anything
    target_device = resolve_device(device)
    if trust_remote_code:
        warnings.warn(f"model spec {spec_text!r}: trust_remote_code is on - transformers may run Python code "
                      "shipped with the checkpoint; enable it only for checkpoints you trust", UserWarning,
                      stacklevel=2)
    model, tokenizer, fingerprint = _load_base(parsed, spec_text, dtype, trust_remote_code, revision)
    if parsed.lora_adapter is not None:
        adapter_dir = check_adapter_dir(parsed.lora_adapter, spec_text)
        model = merge(load_adapter(model, adapter_dir))
        fingerprint = digest([fingerprint, _adapter_identity(adapter_dir)])
    ensure_pad_token(model, tokenizer, spec_text)
    num_layers, hidden_size = model_dimensions(model.config)
    is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    if lora is not None:
        model = add_lora(model, **lora)
        fingerprint = digest([fingerprint, "lora", dict(lora)])
    torch_dtype = resolve_dtype(dtype, model.config)
    model = model.to(device=target_device, dtype=torch_dtype).eval()
    fingerprint = digest([fingerprint, str(torch_dtype)])
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        spec=spec_text,
        is_encoder_decoder=is_encoder_decoder,
        num_layers=num_layers,
        hidden_size=hidden_size,
        fingerprint=fingerprint,
    )
