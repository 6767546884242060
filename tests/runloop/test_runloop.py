"""The shared run loop (mrt/runloop): a hung sampler call gives the problem up as a counted fault
and the run moves on; saved models count as finished only with their weights; directories and
shared result files are written whole."""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest

from mrt.measure.analyze import AnalyzeConfig
from mrt.pipelines import analyze
from mrt.rundir import atomic_dir, has_weights, update_json
from mrt.runloop import ProblemLoop
from mrt.samplers.errors import SamplerError
from mrt.samplers.faults import ResilientSampler
from mrt.tasks.base import Problem


class _HangsOnce:
    """A backend whose ``at``-th call waits ``wait`` seconds without a token, once."""

    def __init__(self, inner, at: int, wait: float = 120.0):
        self.inner, self.at, self.wait, self.tokenizer, self.calls = inner, at, wait, inner.tokenizer, 0

    def sample(self, prompts, params):
        self.calls += 1
        if self.calls == self.at:
            time.sleep(self.wait)
        return self.inner.sample(prompts, params)


def _cfg(model, out, **kw):
    return AnalyzeConfig(
        model=str(model),
        out=str(out),
        n_problems=3,
        traces_per_problem=2,
        answers_per_prefix=2,
        max_new_tokens=24,
        answer_tokens=6,
        extensions=0,
        maj_k=[1],
        knobs=["arms=2", "arm_len=2"],
        progress_seconds=0,
        stall_seconds=0,
        **kw,
    )


def test_a_hung_call_gives_the_problem_up_and_the_run_moves_on(tiny_sampler, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    hung = ResilientSampler(_HangsOnce(tiny_sampler, at=3), retries=0, backoff=0.0, what="the test's hung sampler")
    t0 = time.monotonic()
    with pytest.raises(SamplerError, match="1 problem"):
        analyze(_cfg(tiny_model_dir, out, hang_timeout=1.0), sampler=hung)
    assert time.monotonic() - t0 < 60  # not the 120 s the call would have waited
    s = json.loads((out / "summary.json").read_text())
    assert s["failed_problems"] == {"hang": 1}
    assert s["n_problems"] == 2  # the other two finished after the hang
    again = analyze(_cfg(tiny_model_dir, out, hang_timeout=1.0), sampler=tiny_sampler)  # the rerun does it
    assert again["n_problems"] == 3 and again["failed_problems"] == {}
    lines = (out / "traces.jsonl").read_text().splitlines()
    assert len(lines) == 3 * 2 and len({json.loads(x)["problem_id"] for x in lines}) == 3


def test_records_are_appended_once_in_any_batch_and_read_back_in_order(tmp_path):
    problems = [Problem(id=f"p{i}", prompt="", answer="") for i in range(5)]
    path = tmp_path / "r.jsonl"
    loop = ProblemLoop("test", path, problems, 1, batch=2)
    seen = []

    def work(items):
        seen.append([i for i, _ in items])
        if any(p.id == "p3" for _, p in items):
            raise SamplerError("down")
        return {p.id: [{"problem_id": p.id, "i": i}] for i, p in reversed(items)}

    loop.run(None, work, bar=False)
    assert seen == [[0, 1], [2, 3], [4]]
    assert [r["problem_id"] for r in loop.flat()] == ["p0", "p1", "p4"]
    assert dict(loop.gave_up.by_kind) == {"server": 2}  # both problems of the failed batch, skipped and counted
    again = ProblemLoop("test", path, problems, 1, batch=2)
    assert [p.id for _, p in again.todo] == ["p2", "p3"]
    again.run(None, lambda items: {p.id: [{"problem_id": p.id}] for _, p in items}, bar=False)
    ids = [json.loads(x)["problem_id"] for x in path.read_text().splitlines()]
    assert sorted(ids) == [f"p{i}" for i in range(5)]  # each once: p2/p3's batch reran, nothing written twice
    assert [r["problem_id"] for r in again.flat()] == [f"p{i}" for i in range(5)]
    # a work function that gives nothing for a problem: counted as given up, nothing written for it
    path2 = tmp_path / "r2.jsonl"
    third = ProblemLoop("test", path2, problems, 1)
    third.run(None, lambda items: {p.id: [{"problem_id": p.id}] for _, p in items if p.id != "p1"}, bar=False)
    assert dict(third.gave_up.by_kind) == {"no_records": 1}
    assert [r["problem_id"] for r in third.flat()] == ["p0", "p2", "p3", "p4"]


def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path):
    d = tmp_path / "model"
    with atomic_dir(d) as tmp:
        (tmp / "config.json").write_text("{}")
    assert not has_weights(d)  # a config alone is not a finished model
    with pytest.raises(RuntimeError), atomic_dir(d) as tmp:
        (tmp / "config.json").write_text('{"new": 1}')
        raise RuntimeError("killed while saving")
    assert (d / "config.json").read_text() == "{}"  # the old one, whole
    with atomic_dir(d) as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "model.safetensors").write_bytes(b"w")
    assert has_weights(d)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary left


def test_a_value_head_with_a_config_but_no_weights_is_trained_again(tiny_model_dir, tmp_path):
    from mrt.value_head import train_value_head

    out = tmp_path / "head"
    out.mkdir()
    (out / "config.json").write_text((tiny_model_dir / "config.json").read_text())  # a save killed midway
    model, _ = train_value_head(str(tiny_model_dir), [([5, 6, 7], 1.0), ([5, 7], 0.0)] * 4, out, steps=2, batch_size=4)
    assert has_weights(out)
    again, _ = train_value_head(str(tiny_model_dir), [], out)  # finished: loaded, not retrained
    assert again.config.num_labels == 1


def _add(path, names):
    for name in names:
        update_json(path, lambda d, n=name: {**d, "results": {**d.get("results", {}), n: len(n)}})


def test_shared_results_are_merged_under_a_lock(tmp_path):
    path = tmp_path / "results.json"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add, args=(path, [f"{w}-{i}" for i in range(25)])) for w in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(json.loads(path.read_text())["results"]) == 50  # no update lost


def test_an_analysis_killed_after_a_problem_resumes_with_each_record_once(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "a"
    cmd = [sys.executable, "-m", "mrt.cli", "analyze", "--out", str(out), "--n-problems", "4"]
    cmd += ["--traces-per-problem", "2", "--answers-per-prefix", "2", "--extensions", "0", "--progress-seconds", "0"]
    env = dict(os.environ, MRT_KILL_AT="problem:2")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    ids = [json.loads(x)["problem_id"] for x in (out / "traces.jsonl").read_text().splitlines()]
    assert len(set(ids)) == 2 and len(ids) == 4 and not (out / "summary.json").exists()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming: 2 of 4 problems already finished" in r.stderr
    ids = [json.loads(x)["problem_id"] for x in (out / "traces.jsonl").read_text().splitlines()]
    assert len(ids) == 8 and len(set(ids)) == 4


def test_shares_of_several_processes_merge_into_one_run(tmp_path):
    """Three processes, windows of two: each takes every third window into its own shard; process 0
    waits for the others, merges in the problems' order and removes the shards. A share whose
    process gave up a problem counts it; a records file of another run is refused."""
    import threading

    from mrt.runloop import Share

    problems = [Problem(id=f"p{i}", prompt="", answer="") for i in range(11)]
    path = tmp_path / "r.jsonl"

    def work(items):
        if any(p.id == "p9" for _, p in items):
            raise SamplerError("down")
        return {p.id: [{"problem_id": p.id, "n": i}] for i, p in items}

    taken = {}

    def process(rank):
        loop = ProblemLoop("test", path, problems, 1, batch=2, share=Share(rank, 3))
        taken[rank] = [i for i, _ in loop.todo]
        loop.run(None, work, bar=False)
        taken[f"main{rank}"] = loop.gather()
        taken[f"loop{rank}"] = loop

    others = [threading.Thread(target=process, args=(r,)) for r in (2, 1)]
    for t in others:
        t.start()
    process(0)
    for t in others:
        t.join(30)
    assert taken[0] == [0, 1, 6, 7] and taken[1] == [2, 3, 8, 9] and taken[2] == [4, 5, 10]
    assert taken["main0"] and not taken["main1"] and not taken["main2"]
    merged = [json.loads(x)["problem_id"] for x in path.read_text().splitlines()]
    assert merged == [f"p{i}" for i in range(11) if i not in (8, 9)]  # p8/p9's window gave up
    assert not (tmp_path / "shards").exists()
    main = taken["loop0"]
    assert sorted(main.gave_up.problems) == ["p8", "p9"] and dict(main.gave_up.by_kind) == {"server": 2}
    # the rerun in one process does only what was given up
    again = ProblemLoop("test", path, problems, 1, batch=2)
    assert [i for i, _ in again.todo] == [8, 9]
    # a one-process rerun finds a shard a killed launch left, does the rest and merges it
    shard = tmp_path / "shards" / "1-of-2"
    shard.mkdir(parents=True)
    (shard / "r.jsonl").write_text(json.dumps({"problem_id": "p8", "n": 8}) + "\n")
    third = ProblemLoop("test", path, problems, 1, batch=2)
    assert [i for i, _ in third.todo] == [9]
    third.run(None, lambda items: {p.id: [{"problem_id": p.id, "n": i}] for i, p in items}, bar=False)
    assert third.gather() and not (tmp_path / "shards").exists()
    assert [json.loads(x)["problem_id"] for x in path.read_text().splitlines()] == [f"p{i}" for i in range(11)]
    with pytest.raises(ValueError, match="12 processes for 6 window"):
        ProblemLoop("test", path, problems, 1, batch=2, share=Share(0, 12))
    # a shard holding a problem this run does not have (a run with more problems before): kept
    other = tmp_path / "shards" / "1-of-2"
    other.mkdir(parents=True)
    (other / "r.jsonl").write_text(json.dumps({"problem_id": "q1"}) + "\n")
    fourth = ProblemLoop("test", path, problems, 1, batch=2)
    assert not fourth.todo and "q1" in fourth.kept_aside and fourth.gather()
    assert [json.loads(x)["problem_id"] for x in path.read_text().splitlines()][-2:] == ["p10", "q1"]
    # a shard of a run with other settings is refused before any work, and left as it was
    from mrt.runloop import claim

    (other).mkdir(parents=True)
    (other / "run.json").write_text(json.dumps({"seed": 1}))
    with pytest.raises(ValueError, match="other settings"):
        claim(tmp_path, {"seed": 0}, (), Share(0, 1))
    assert (other / "run.json").is_file()
    with pytest.raises(ValueError, match="not a process of"):
        Share.from_env({"RANK": "2", "WORLD_SIZE": "2"})
    assert Share.from_env({"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4", "SLURM_JOB_ID": "7"}).world == 4
    assert Share.from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) == Share(0, 1)  # a batch script, no srun
    store = Share.from_env({"RANK": "1", "WORLD_SIZE": "2", "MASTER_PORT": "5", "TORCHELASTIC_USE_AGENT_STORE": "True"})
    assert store.store == ("", 5) and store.rank == 1
    assert Share.from_env({}) == Share(0, 1)


def test_a_failed_window_counts_once_toward_stopping_the_run(tmp_path):
    """A window of 4 whose sampling fails skips its 4 problems, counted, and the run goes on (three
    failed windows in a row stop it, not three problems of one window)."""
    problems = [Problem(id=f"p{i}", prompt="", answer="") for i in range(12)]
    loop = ProblemLoop("test", tmp_path / "r.jsonl", problems, 1, batch=4)

    def work(items):
        if items[0][0] == 0:
            raise SamplerError("down")
        return {p.id: [{"problem_id": p.id}] for _, p in items}

    loop.run(None, work, bar=False)
    assert dict(loop.gave_up.by_kind) == {"server": 4} and len(loop.flat()) == 8
    again = ProblemLoop("test", tmp_path / "r2.jsonl", problems, 1, batch=4)
    with pytest.raises(SamplerError, match="in a row"):
        again.run(None, lambda items: (_ for _ in ()).throw(SamplerError("down")), bar=False)
    assert dict(again.gave_up.by_kind) == {"server": 12}
