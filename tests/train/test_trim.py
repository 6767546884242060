"""The policy update scored on length groups without their padding gives TRL's log-probs: by hand on
the grouping, and inside a real MRT run against TRL's own scoring of the same batch."""

import pytest
import torch
from test_train import SMALL

from mrt.pipelines import train as run_train
from mrt.train.config import load_config
from mrt.train.trim import length_groups, spans


def test_length_groups_by_hand():
    # rows' real columns [start, end) with a prompt 4 columns wide
    starts, ends = [3, 0, 2, 0], [6, 5, 9, 4]
    assert length_groups(starts, ends, 4, 2) == [([3, 1], 0, 5), ([2, 0], 2, 9)]
    # every group keeps at least one completion column, even when no row has a completion token
    assert length_groups([1, 2], [3, 4], 4, 4) == [([0, 1], 1, 5)]
    assert length_groups(starts, ends, 4, 8) == [([3, 1, 2, 0], 0, 9)]
    with pytest.raises(ValueError, match="rows must be >= 1"):
        length_groups(starts, ends, 4, 0)


def test_spans_of_a_padded_mask():
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0]])
    assert spans(mask) == ([2, 0, 1], [5, 6, 3])


def test_grouped_scoring_matches_trl_inside_a_real_mrt_run(tmp_path):
    """Each update of a real MRT run (prefixes of different lengths, short forced answers) is also
    scored by TRL's own code on the padded batch: the log-probs agree on every completion token,
    and the groups are narrower than the batch."""
    from trl import GRPOTrainer

    from mrt.train.trainer import MRTTrainer

    seen, orig = [], MRTTrainer._get_per_token_logps_and_entropies

    def spy(self, model, input_ids, attention_mask, logits_to_keep, *a, **kw):
        out = orig(self, model, input_ids, attention_mask, logits_to_keep, *a, **kw)
        with torch.no_grad():
            ref = GRPOTrainer._get_per_token_logps_and_entropies(
                self, model, input_ids, attention_mask, logits_to_keep, *a, **kw
            )
        mask = attention_mask[:, -logits_to_keep:].bool()
        starts, ends = spans(attention_mask)
        widest = max(hi - lo for _, lo, hi in length_groups(starts, ends, input_ids.shape[1] - logits_to_keep, 4))
        seen.append(((out[0] - ref[0]).abs()[mask].max().item(), widest, input_ids.shape[1]))
        if kw.get("compute_entropy"):
            seen.append(((out[1] - ref[1]).abs()[mask].max().item(), widest, input_ids.shape[1]))
        return out

    MRTTrainer._get_per_token_logps_and_entropies = spy
    try:
        run_train(load_config(None, dict(SMALL, algo="mrt", thinking_budget=16, out=str(tmp_path / "m"))))
    finally:
        MRTTrainer._get_per_token_logps_and_entropies = orig
    assert seen and all(diff < 1e-4 for diff, _, _ in seen)
    assert any(widest < width for _, widest, width in seen)  # some padding was dropped
