import json

import torch

from mrt.cli import main
from mrt.tasks.pretrain import PretrainConfig, pretrain


def _small(out, **kw):
    base = dict(
        out=str(out),
        steps=4,
        batch_size=4,
        n_layer=1,
        n_embd=32,
        n_head=2,
        warmup=1,
        save_every=2,
        arms="2",
        arm_len="2",
    )
    base.update(kw)
    return PretrainConfig(**base)


def test_pretrain_trains_saves_and_continues(tmp_path):
    from transformers import AutoModelForCausalLM

    out = pretrain(_small(tmp_path / "a"))
    info = json.loads((out / "pretrain.json").read_text())
    assert len(info["loss_history"]) == 4 and not (out / "checkpoint.pt").exists()
    first = AutoModelForCausalLM.from_pretrained(out)
    out2 = pretrain(_small(tmp_path / "b", init=str(out), steps=2, lr=1e-2, seed=1))
    second = AutoModelForCausalLM.from_pretrained(out2)
    changed = any(not torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters()))
    assert changed


def test_pretrain_resumes_from_checkpoint(tmp_path):
    cfg = _small(tmp_path / "r")
    # an interrupted run leaves checkpoint.pt behind; build one at step 2 and resume from it
    from mrt.tasks.tiny import build_model, build_tokenizer

    model = build_model(build_tokenizer(), 1, 32, 2)
    opt = torch.optim.AdamW(model.parameters())
    (tmp_path / "r").mkdir()
    torch.save(
        {"model": model.state_dict(), "opt": opt.state_dict(), "step": 2, "history": [9.0, 9.0]},
        tmp_path / "r" / "checkpoint.pt",
    )
    pretrain(cfg)
    hist = json.loads((tmp_path / "r" / "pretrain.json").read_text())["loss_history"]
    assert hist[:2] == [9.0, 9.0] and len(hist) == 4


def test_pretrain_init_must_exist(tmp_path, capsys):
    assert main(["pretrain", "--out", str(tmp_path / "x"), "--init", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
