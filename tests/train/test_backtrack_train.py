"""MRT-RL, STaR and MRT-STaR on the backtracking format (``mrt train --algo mrt-backtrack``)."""

import json

import pytest

from mrt.pipelines import train as run_train
from mrt.train.config import load_config


def test_settings_are_checked_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="mrt_advantage"):
        load_config(None, dict(algo="mrt", mrt_advantage="authors"))
    for form in ("authors", "star", "mrt-star", "outcome+progress"):
        assert load_config(None, dict(algo="mrt-backtrack", mrt_advantage=form, task="tree")).mrt_advantage == form
    with pytest.raises(ValueError, match="backtracking format"):
        run_train(load_config(None, dict(algo="mrt-backtrack", task="star", out=str(tmp_path / "x"))))
    assert not (tmp_path / "x").exists()  # refused before the run directory was made


@pytest.mark.slow  # about a minute on 2 shared cores
@pytest.mark.parametrize("form", ["mrt-star", "authors"])
def test_backtrack_forms_train(form, tmp_path):
    out = tmp_path / form
    cfg = dict(
        algo="mrt-backtrack",
        mrt_advantage=form,
        alpha=0.8,
        task="tree",
        max_steps=2,
        prompts_per_step=2,
        num_generations=4,
        mc_answers=2,
        max_completion_length=32,
        train_problems=16,
        eval_problems=0,
        report_to="none",
        logging_steps=1,
        threads=1,
        out=str(out),
    )
    s = run_train(load_config(None, cfg))
    assert s["steps"] == 2 and s["extra_sampled_tokens"] > 0
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    key = "star/kept_fraction" if form == "mrt-star" else "backtrack/progress"
    assert any(key in row for row in log)


def test_sft_on_the_format_needs_warmstart_data():
    from mrt.tasks import get_task
    from mrt.train.run import _sft_dataset

    with pytest.raises(ValueError, match="mrt warmstart"):
        _sft_dataset(get_task("tree"), load_config(None, dict(algo="sft", task="tree")))
    assert len(_sft_dataset(get_task("tree", format="plain"), load_config(None, dict(algo="sft", train_problems=3))))


def test_dense_mrt_on_the_tree_world_credits_its_episodes(tmp_path):
    """The paper's per-episode bonus on the backtracking format: ``mrt-dense --task tree``. The J
    curve of every rollout has one value per episode of the tree world (z0, each marker, each
    revision) plus J(empty), from forced answers; two steps train and log the mean progress."""
    from mrt.train.trainer import MRTTrainer

    seen = []
    orig = MRTTrainer.j_curves

    def spy(self, inputs, completion_ids, max_episodes=0):
        ends, curves = orig(self, inputs, completion_ids, max_episodes)
        seen.extend(zip(ends, curves, completion_ids))
        return ends, curves

    MRTTrainer.j_curves = spy
    try:
        cfg = dict(
            algo="mrt-dense", task="tree", out=str(tmp_path / "d"), max_steps=2, prompts_per_step=2,
            num_generations=4, mc_answers=2, train_problems=16, save_every=2, logging_steps=1,
            report_to="none", eval_problems=0, batch_size=4, threads=2,
        )  # fmt: skip
        s = run_train(load_config(None, cfg))
    finally:
        MRTTrainer.j_curves = orig
    assert s["steps"] == 2 and s["extra_sampled_tokens"] > 0  # J estimated by forced answers
    from transformers import AutoTokenizer

    from mrt.tasks.tiny import shipped_model_path
    from mrt.tasks.tree import TreeTask

    tok, task = AutoTokenizer.from_pretrained(shipped_model_path()), TreeTask()
    assert seen
    for ends, curve, ids in seen:
        assert len(curve) == len(ends) + 1
        think, _ = task.split_output(list(ids), tok)
        assert ends == task.episode_ends(think, tok)[: len(ends)]  # the tree world's episodes


def test_format_errors_of_whole_streams_by_hand():
    """The tree world judges the thinking the prompt and the completion write together (MRT-RL's
    prompt holds z0 and the marker); a stream the budget cut is not judged."""
    from mrt.tasks import get_task

    t = get_task("tree")
    p = t.problems(1, seed=0)[0]  # ... start v62 goal v34 <think>; answer v62 v52 v48 v16 v34
    assert p.prompt.endswith("start v62 goal v34 <think>") and p.answer == "v62 v52 v48 v16 v34"
    ok = " try v62 v25 v58 v50 v53 dead back v62 v52 v48 v16 v34 found </think> answer v62 v52 v48 v16 v34 <eos>"
    assert t.format_error(p.prompt, ok) is None
    assert t.format_error(p.prompt, " try v62 v25 v58 back") is None  # cut by the budget: not judged
    assert t.format_error(p.prompt, " try v62 v25 dead back v48 v16 found </think>") == "missing_step"
    assert t.format_error(p.prompt, " try v62 v63 dead </think>") == "malformed"  # v63: not in this tree
    assert t.format_error(p.prompt, " try v62 v25 dead back </think>") == "no_revision"
    z0 = p.prompt + " try v62 v25 v58 v50 v53 dead back"
    assert t.format_error(z0, " v62 v52 v48 v16 v34 found </think> answer") is None
    assert t.format_error(z0, " v48 v16 v34 found </think> answer") == "missing_step"
    broken_z0 = p.prompt + " try v62 v63 dead back"  # the prompt's part is broken: not the completion's error
    assert t.format_error(broken_z0, " v62 v52 v48 v16 v34 found </think> answer") is None
    assert get_task("tree", format="plain").format_error(p.prompt, " try v62 v62 </think>") is None
    assert get_task("star").format_error(p.prompt, " try v99 </think>") is None


def test_the_format_penalty_lowers_the_reward_of_broken_streams():
    from transformers import AutoTokenizer

    from mrt.tasks import get_task
    from mrt.tasks.tiny import shipped_model_path
    from mrt.train.trainer import make_reward_fn

    tok, t = AutoTokenizer.from_pretrained(shipped_model_path()), get_task("tree")
    p = t.problems(1, seed=0)[0]
    right = " answer v62 v52 v48 v16 v34 <eos>"
    texts = [
        " try v62 v52 v48 v16 v34 found </think>" + right,  # well formed, right: 1
        " try v62 v25 dead back v48 v16 found </think>" + right,  # broken, right: 1 - 0.25
        " try v62 v25 dead back </think> answer v62 v25 <eos>",  # broken, wrong: -0.25
        " try v62 v25 v58",  # cut: not judged, not graded
    ]
    ids = [tok.convert_tokens_to_ids(x.split()) for x in texts]
    record: dict = {}
    fn = make_reward_fn(t, tok, "grpo", 32, 0.0, record, format_penalty=0.25)
    r = fn(texts, ids, [p.id] * 4, [p.answer] * 4, prompts=[p.prompt] * 4)
    assert r == [1.0, 0.75, -0.25, 0.0] and record["correct"] == [True, True, False, False]
    assert record["format_errors"] == {"missing_step": 1, "no_revision": 1}
    r = fn(texts, ids, [p.id] * 4, [p.answer] * 4, prompts=[p.prompt] * 4, mrt_terminated=[1, 1, 1, 1])
    assert r[1:3] == [1.0, 0.0]  # a prompt that ended thinking itself: not judged
    record["cut"] = [False, True, False, False]  # the thinking budget ended row 1's thinking
    assert fn(texts, ids, [p.id] * 4, [p.answer] * 4, prompts=[p.prompt] * 4)[:3] == [1.0, 1.0, -0.25]
    record.clear()
    plain = make_reward_fn(t, tok, "grpo", 32, 0.0, record)  # no penalty: the 0/1 grade
    assert plain(texts, ids, [p.id] * 4, [p.answer] * 4, prompts=[p.prompt] * 4) == [1.0, 1.0, 0.0, 0.0]


def test_the_format_penalty_is_refused_where_it_would_not_count(tmp_path):
    with pytest.raises(ValueError, match="must be >= 0"):
        load_config(None, dict(algo="grpo", format_penalty=-1))
    for algo, form in (("mrt", "outcome+progress"), ("mrt-backtrack", "star"), ("anytime", "outcome+progress")):
        with pytest.raises(ValueError, match="format_penalty"):
            load_config(None, dict(algo=algo, mrt_advantage=form, format_penalty=0.5, task="tree"))
    with pytest.raises(ValueError, match="no thinking format to check"):
        run_train(load_config(None, dict(algo="grpo", format_penalty=0.5, task="star", out=str(tmp_path / "s"))))
    assert not (tmp_path / "s").exists()


@pytest.mark.slow  # about a minute on 2 shared cores
def test_mrt_rl_trains_with_a_format_penalty(tmp_path):
    """RL on the format with the penalty: the backtracking advantage takes the penalised reward."""
    from mrt.core import backtrack as bt

    seen = []
    orig = bt.backtrack_advantages

    def spy(r, *a, **k):
        seen.append(list(r))
        return orig(r, *a, **k)

    bt.backtrack_advantages = spy
    try:
        cfg = dict(
            algo="mrt-backtrack", task="tree", max_steps=2, prompts_per_step=2, num_generations=4, mc_answers=2,
            max_completion_length=32, train_problems=16, eval_problems=0, report_to="none", logging_steps=1,
            threads=1, format_penalty=0.5, out=str(tmp_path / "p"),
        )  # fmt: skip
        s = run_train(load_config(None, cfg))
    finally:
        bt.backtrack_advantages = orig
    assert s["steps"] == 2 and len(seen) == 2
    assert {x for r in seen for x in r} <= {1.0, 0.5, 0.0, -0.5}
    log = [json.loads(x) for x in (tmp_path / "p" / "train_log.jsonl").read_text().splitlines()]
    assert any("format/penalised" in row for row in log)
