"""Pretrain the tiny base model of the didactic world on noisy explorer traces.

Every batch is drawn fresh from the explorer (seeded by the step), so the run is reproducible
and resumes exactly from ``OUT/checkpoint.pt`` after an interruption (written whole, loaded with
``weights_only=True``).
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mrt.config import arg
from mrt.rundir import atomic_dir, atomic_path, lock_run_dir, move_in, one_writer, write_json

log = logging.getLogger(__name__)
PRETRAIN_SEED_NAMESPACE = 7  # problem seeds used for pretraining; analysis uses other seeds


@dataclass
class PretrainConfig:
    out: str = arg("runs/star-base", "output directory (model, tokenizer, log)")
    arms: str = arg("2-4", "arms of the star graphs in the pretraining traces")
    arm_len: str = arg("2-4", "nodes per arm in the pretraining traces")
    curriculum_steps: int = arg(
        0, "first steps on small graphs (arms 2-3, arm_len 2-3), where the edge look-up is learned faster"
    )
    steps: int = arg(1500, "optimizer steps")
    batch_size: int = arg(32, "traces per step")
    lr: float = arg(3e-3, "peak learning rate (AdamW, linear warm-up, cosine decay)")
    warmup: int = arg(50, "warm-up steps")
    weight_decay: float = arg(0.01, "AdamW weight decay")
    n_layer: int = arg(2, "transformer layers")
    n_embd: int = arg(128, "model width")
    n_head: int = arg(4, "attention heads")
    arch: str = arg("llama", "llama (rotary positions) or gpt2 (learned positions)")
    seed: int = arg(0, "random seed (model init and data)")
    save_every: int = arg(250, "write a resumable checkpoint every this many steps")
    threads: int = arg(0, "torch CPU threads (0: torch's default)")
    init: str = arg("", "start from this saved model's weights (continued pretraining)")
    cue: float = arg(
        0.0,
        "probability that a prompt's hint (``try <node>``) names the goal arm (0: no hints); "
        "the explorer ignores hints (unless --follow-cue), so the base model does not learn to use them",
    )
    follow_cue: float = arg(
        0.0,
        "probability that the explorer's first walk takes the hinted arm in a hinted "
        "prompt (0: it ignores hints; > 0 gives a base that uses the hint part of the time)",
    )
    cue_at: str = arg("end", "where a hint is written: end (the prompt's tail), edge (try before the hinted edge), dup")
    cue_fraction: float = arg(
        0.5,
        "share of pretraining prompts that carry a hint when cue > 0 (the others "
        "have none, so the model serves settings with and without hints)",
    )


def make_batch(step: int, cfg: PretrainConfig, tokenizer, task, hinted=None):
    """Token ids and labels for one batch; the loss covers the trace and answer, not the prompt."""
    import torch

    from mrt.tasks import star

    rng = random.Random(f"{cfg.seed}-{step}")
    rows, labels = [], []
    for _ in range(cfg.batch_size):
        seed = PRETRAIN_SEED_NAMESPACE * 1_000_003 + rng.randrange(10**9)
        g = (hinted if hinted is not None and rng.random() < cfg.cue_fraction else task).graph(seed)
        prompt = tokenizer.convert_tokens_to_ids(g.prompt_words())
        first = None
        if g.cue and cfg.follow_cue > 0 and rng.random() < cfg.follow_cue:
            first = next(i for i, arm in enumerate(g.arms) if arm[0] == g.cue)
        trace = tokenizer.convert_tokens_to_ids(star.explore(g, rng, first_arm=first))
        rows.append(prompt + trace)
        labels.append([-100] * len(prompt) + trace)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    lab = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, lab, mask


def load_checkpoint(path: Path) -> dict:
    """A pretraining checkpoint, loaded with ``weights_only=True``: tensors, numbers, strings and
    containers of them; a file that holds any other pickled object is refused (ValueError)."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"refusing to load {path}: it holds pickled objects besides tensors and plain data "
            f"({str(e).splitlines()[0][:200]}); load only checkpoints you trust, or delete it to start over"
        ) from None


@one_writer
def pretrain(cfg: PretrainConfig) -> Path:
    import torch
    from tqdm import tqdm

    from mrt.tasks import StarTask
    from mrt.tasks.tiny import build_model, build_tokenizer

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = lock_run_dir(cfg.out)  # one writer; a second process is refused, naming the first
    task = StarTask(arms=cfg.arms, arm_len=cfg.arm_len)
    small = StarTask(arms=f"{task._arms[0]}-{min(task._arms[1], 3)}", arm_len=f"{task._len[0]}-{min(task._len[1], 3)}")
    if not 0 <= cfg.cue <= 1 or not 0 <= cfg.cue_fraction <= 1 or not 0 <= cfg.follow_cue <= 1:
        raise ValueError(
            f"--cue, --cue-fraction and --follow-cue must be in [0, 1], got {cfg.cue}, "
            f"{cfg.cue_fraction} and {cfg.follow_cue}"
        )
    hinted = StarTask(arms=cfg.arms, arm_len=cfg.arm_len, cue=cfg.cue, cue_at=cfg.cue_at) if cfg.cue > 0 else None
    tokenizer = build_tokenizer()
    if cfg.init:
        from transformers import AutoModelForCausalLM

        if not Path(cfg.init).exists():
            raise FileNotFoundError(f"--init model {cfg.init!r} does not exist")
        model = AutoModelForCausalLM.from_pretrained(cfg.init)
    else:
        model = build_model(tokenizer, cfg.n_layer, cfg.n_embd, cfg.n_head, seed=cfg.seed, arch=cfg.arch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))

    def lr_at(step):
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    ckpt = out / "checkpoint.pt"
    start, history = 0, []
    if ckpt.exists():
        state = load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, history = state["step"], state["history"]
        log.info("resuming pretraining from step %d", start)
    model.train()
    t0 = time.time()
    bar = tqdm(range(start, cfg.steps), desc="pretrain", initial=start, total=cfg.steps)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        ids, lab, mask = make_batch(
            step,
            cfg,
            tokenizer,
            small if step < cfg.curriculum_steps else task,
            None if step < cfg.curriculum_steps else hinted,
        )
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}; last checkpoint kept in {ckpt}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append(round(loss.item(), 4))
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            with atomic_path(ckpt) as tmp:  # whole or absent: a kill while saving keeps the last one
                torch.save(
                    {"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1, "history": history}, tmp
                )
    # the run directory holds the lock and the checkpoint: the model is saved beside it, then moved in
    # file by file with config.json last, so config.json and weights together mean a whole model
    with atomic_dir(out / "model.tmp") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    move_in(out / "model.tmp", out, last=("config.json",))
    write_json(
        out / "pretrain.json",
        {
            "config": asdict(cfg),
            "final_loss": sum(history[-50:]) / max(1, len(history[-50:])),
            "wall_seconds_this_run": round(time.time() - t0, 1),
            "loss_history": history,
        },
    )
    if ckpt.exists():
        ckpt.unlink()
    return out
