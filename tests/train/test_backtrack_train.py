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
