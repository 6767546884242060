"""The shipped base model: solves a fair share of held-out problems, yet leaves regret."""

import json

from mrt.measure.analyze import AnalyzeConfig
from mrt.pipelines import analyze as run_analysis
from mrt.tasks.tiny import shipped_model_path


def test_shipped_checkpoint_loads_with_transformers():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = shipped_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert tok.convert_ids_to_tokens(tok.encode("try v1 dead", add_special_tokens=False)) == ["try", "v1", "dead"]
    assert model.config.vocab_size == len(tok)
    info = json.loads((path / "pretrain.json").read_text())
    assert info["config"]["steps"] > 0


def test_base_model_explores_and_leaves_regret(tmp_path):
    s = run_analysis(
        AnalyzeConfig(out=str(tmp_path), n_problems=12, traces_per_problem=4, answers_per_prefix=8, extensions=0)
    )
    j = s["j_by_episode"]
    # exploring pays: J after a few episodes is well above answering with no thinking
    assert max(j[1:4]) > j[0] + 0.15
    assert 0.3 < s["accuracy"] < 0.98
    # and the budget is not used well: clearly non-zero regret at every budget
    assert all(v > 0.1 for v in s["normalized_regret"].values())
