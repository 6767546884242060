"""The verifier, best-of-N selection rules (hand-computed), ``mrt diagnose`` and the quick
VB-vs-VF study end to end on the shipped base model."""

import json

import pytest

from mrt.cli import main
from mrt.study import verifier as vf


def _r(answer, correct, n=3):
    return vf.Rollout([1], [2] * n, answer, correct)


def test_selection_rules_hand_computed():
    rs = [_r("a", False), _r("b", True), _r("a", False), _r(None, False)]
    scores = [0.4, 0.9, 0.3, 0.99]
    assert vf.select(rs, scores, "best") is False  # the unanswered rollout scores highest
    assert vf.select(rs, [0.4, 0.9, 0.3, 0.1], "best") is True
    assert vf.select(rs, scores, "majority") is False  # "a" has two votes
    assert vf.select(rs, scores, "weighted") is True  # b: 0.9 > a: 0.4 + 0.3
    assert vf.select(rs, scores, "oracle") is True
    assert vf.select([_r(None, False)], [1.0], "weighted") is False
    acc = vf.verifier_accuracy([0.9, 0.2, 0.6, 0.4], [True, False, False, True])
    assert acc["accuracy"] == 0.5 and acc["auc"] == 0.75  # pairs: (.9>.2)(.9>.6)(.4>.2)(.4<.6)
    curve = vf.best_of_n_curve([rs], [[0.4, 0.9, 0.3, 0.1]], [1, 4], draws=4)
    assert curve[1]["n"] == 4 and curve[1]["best"] == 1.0 and curve[1]["oracle"] == 1.0
    assert curve[1]["tokens"] == 12 and curve[0]["tokens"] == 3
    with pytest.raises(ValueError, match="N=8 needs"):
        vf.best_of_n_curve([rs], [[0.1] * 4], [8])


def test_diagnose_on_the_shipped_model(tmp_path):
    out = tmp_path / "dg"
    args = [
        "diagnose",
        "--n-problems",
        "4",
        "--rollouts",
        "6",
        "--mc-problems",
        "1",
        "--next-segments",
        "3",
        "--answers-per-prefix",
        "4",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    s = json.loads((out / "diagnose.json").read_text())
    rows = [json.loads(x) for x in (out / "rollouts.jsonl").read_text().splitlines()]
    rewards = [[r["reward"] for r in row["rollouts"]] for row in rows]
    assert s["mean_reward"] == pytest.approx(sum(sum(r) / 6 for r in rewards) / 4)
    assert 0 <= s["anti_concentration"]["1.0"] <= s["anti_concentration"]["0.5"] <= 1
    assert sum(s["z_histogram"]["counts"]) == sum(6 for r in rewards if 0 < sum(r) < 6)
    assert s["mc_heterogeneity"]["traces"] == 1 and len(rows[0]["mc"]) >= 1
    assert all(len(js) == 3 for js in rows[0]["mc"])
    assert (out / "plots" / "rewards.png").is_file()
    assert main(args[:-2] + ["--rollouts", "1", "--out", str(tmp_path / "x")]) == 2


@pytest.mark.slow  # the whole study at its quick size; its parts have fast tests here (CI time)
def test_quick_vb_vf_study(tmp_path):
    out = tmp_path / "study"
    assert main(["study", "vb-vf", "--quick", "--out", str(out)]) == 0
    r = json.loads((out / "vb_vf.json").read_text())
    seed = r["seeds"]["0"]
    assert set(seed["vf"]) == {"low/32", "high/32"} and set(seed["rl"]) == {"32"}
    search = seed["search"]["32"]
    assert 0 <= search["verifier_heldout"]["accuracy"] <= 1 and search["verifier_heldout"]["n"] == 16
    assert [row["n"] for row in search["best_of_n"]] == [1, 2, 4]
    for row in search["best_of_n"]:  # an oracle can only beat the other rules
        assert row["oracle"] >= max(row["best"], row["weighted"], row["majority"]) - 1e-9
    for arm in r["claims"].values():
        assert set(arm["vb_ge_vf_at_largest_budget"]) == {"low", "high"}
    assert (out / "table.md").read_text().count("| VF: SFT") == 2
    assert (out / "plots" / "accuracy_vs_budget.png").is_file()
    before = (out / "vb_vf.json").read_text()
    assert main(["study", "vb-vf", "--quick", "--out", str(out)]) == 0  # finished runs are reused
    assert json.loads((out / "vb_vf.json").read_text())["seeds"] == json.loads(before)["seeds"]
