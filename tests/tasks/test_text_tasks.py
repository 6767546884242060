"""Data-set tasks (local files with a field mapping, presets, bad input) and reasoning-gym tasks."""

import json

import pytest

from mrt.tasks import get_task
from mrt.tasks.base import Problem


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_local_jsonl_with_field_mapping_and_gsm8k_answers(tmp_path):
    src = _jsonl(
        tmp_path / "gsm.jsonl",
        [
            {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
            {"question": "A farm has 1,200 cows and sells 200.", "answer": "1,200 - 200 = 1,000\n#### 1,000"},
            {"question": "Broken row", "answer": "no final answer here"},
        ],
    )
    task = get_task("data", source=src, problem_field="question", answer_field="answer", answer_from="gsm8k")
    probs = task.problems(10)
    assert [p.answer for p in probs] == ["7", "1000"]  # the row without '####' is skipped and logged
    assert probs[0].prompt.startswith("Tom has 3 apples")
    assert task.grade(probs[1], task.extract_answer("So \\boxed{1000}"))
    assert task.grade(probs[1], task.extract_answer("So \\boxed{1,000}"))
    assert not task.grade(probs[1], task.extract_answer("So 1000"))  # no boxed answer: wrong
    assert [p.id for p in task.problems(1, seed=3)] != [] and len(task.problems(1)) == 1


def test_preset_knobs_and_numina_style_answers(tmp_path):
    src = _jsonl(
        tmp_path / "numina.jsonl",
        [{"problem": "Simplify sin(60 deg).", "solution": "It is \\boxed{\\frac{\\sqrt{3}}{2}}."}],
    )
    task = get_task("numina", source=src)  # the preset's field mapping, a local file instead of the hub
    (p,) = task.problems(5)
    assert p.answer == "\\frac{\\sqrt{3}}{2}"
    assert task.grade(p, task.extract_answer("<think>\\boxed{1}</think> \\boxed{\\frac{\\sqrt{3}}{2}}"))
    assert task.knobs()["preset"] == "numina" and task.knobs()["answer_from"] == "boxed"


def test_bad_data_inputs_name_the_problem(tmp_path, monkeypatch):
    src = _jsonl(tmp_path / "a.jsonl", [{"question": "q", "solution": "1"}])
    with pytest.raises(ValueError, match="no field.*'problem'.*'answer'.*its fields: question, solution"):
        get_task("data", source=src).problems(1)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "q", "answer": "1"}\n{not json\n')
    with pytest.raises(ValueError, match="bad.jsonl: could not read it as json"):
        get_task("data", source=str(bad)).problems(1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_task("data", source=str(tmp_path / "missing.jsonl")).problems(1)
    with pytest.raises(ValueError, match="needs the knob source"):
        get_task("data")
    with pytest.raises(ValueError, match="unknown knob 'sourec'"):
        get_task("data", sourec="x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub here: the message says how to use local files
    with pytest.raises(ValueError, match="could not load 'HuggingFaceH4/MATH-500'.*local file: source=file.jsonl"):
        get_task("math500").problems(1)


def test_reasoning_gym_task_offline():
    task = get_task("gym", dataset="chain_sum", options="max_terms:2,max_digits:1")
    probs = task.problems(5, seed=1)
    assert len(probs) == 5 and all(p.prompt for p in probs)
    assert probs[0].answer == str(eval(probs[0].prompt.split(":")[-1].rstrip("= ")))  # e.g. '4 - 1 ='
    p = probs[0]
    assert task.grade(p, task.extract_answer(f"\\boxed{{{p.answer}}}"))
    assert not task.grade(p, task.extract_answer("\\boxed{12345}"))
    # the trainer grades from (problem id, answer) alone: the generator's entry is rebuilt from the id
    fresh = get_task("gym", dataset="chain_sum", options="max_terms:2,max_digits:1")
    assert fresh.grade(Problem(p.id, "", p.answer), p.answer)
    small = get_task("gym", dataset="chain_sum", extract="last-number")
    assert small.extract_answer("the sum is 12, I think 13.") == "13"
    with pytest.raises(ValueError, match="unknown reasoning-gym data set"):
        get_task("gym", dataset="nope")
    with pytest.raises(ValueError, match="must look like name:value"):
        get_task("gym", options="max_terms").problems(1)


def test_gym_problem_seeds_give_disjoint_sets():
    """reasoning-gym draws item i of seed s from Random(s + i): without mrt's mapping, mrt train's
    default training set (seed 11, 4,096 problems) held 53 of the 64 problems of its default
    evaluation (seed 0). Now they share no prompt, and seed 0 is reasoning-gym's own seed 0."""
    import reasoning_gym

    from mrt.train.config import TrainConfig

    cfg = TrainConfig()
    task = get_task("gym", dataset="chain_sum", options="min_terms:4,max_terms:4,min_digits:3,max_digits:3")
    train = {p.prompt for p in task.problems(cfg.train_problems, seed=cfg.train_seed)}
    held_out = [p.prompt for p in task.problems(cfg.eval_problems, seed=cfg.eval_seed)]
    assert len(held_out) == 64 and not train & set(held_out)
    own = reasoning_gym.create_dataset(
        "chain_sum", size=3, seed=0, min_terms=4, max_terms=4, min_digits=3, max_digits=3
    )
    assert [e["question"] for e in own] == held_out[:3]
    raw = reasoning_gym.create_dataset(
        "chain_sum", size=4, seed=11, min_terms=4, max_terms=4, min_digits=3, max_digits=3
    )
    assert raw[0]["question"] == held_out[11]  # reasoning-gym's own seeds alias: its seed 11 starts at seed 0's item 11
    assert held_out[11] not in train  # mrt's seed 11 does not
