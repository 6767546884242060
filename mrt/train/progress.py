"""Where dense MRT's J comes from: Monte Carlo, a learned estimator, or both (``--j-source``).

``mc``: J at every episode boundary is the success rate of ``mc_answers`` answers forced there
(the meta-prover; every forced token is sampled and counted).

``estimator``: J at every boundary is predicted by a trained progress estimator
(``mrt estimator train``, a value head on prompt + thinking-prefix ids). One forward pass per
boundary; nothing is sampled; the estimator stays as trained.

``mixed`` (the on-policy form): each step, Monte Carlo J is sampled at a random share
``mc_share`` of the step's boundaries (at least one). Those targets are the estimator's
training data: it is updated on them (and on a small buffer of recent targets). Then it predicts
J at every boundary. The Monte Carlo answers count in the token budget like every other sample.
Before the update, its predictions at the fresh Monte Carlo boundaries are scored against them
(Brier, ECE, correlation): the per-step calibration in the training log.

Two estimator forms (``--estimator-form``):
- ``head``: a linear head on the policy's own last hidden state at the prefix's last token,
  read with no gradient into the policy (a stop-gradient critic head: the policy's loss is
  GRPO's, unchanged). It follows the policy because its features are the policy's.
- ``model``: a separate value model (``AutoModelForSequenceClassification``), initialised from
  ``--estimator DIR`` or from the starting policy, updated with its own optimizer.
"""

from __future__ import annotations

import json
import logging
import math
import random
from pathlib import Path

log = logging.getLogger(__name__)

J_SOURCES = ("mc", "estimator", "mixed")
FORMS = ("head", "model")
STATE_FILE = "progress_estimator.pt"


def mc_count(n_boundaries: int, share: float) -> int:
    """Boundaries measured by Monte Carlo in one step: ``ceil(share * n)``, at least one when
    there is any boundary and the share is positive."""
    if not 0 <= share <= 1:
        raise ValueError(f"mc_share must be in [0, 1], got {share}")
    if n_boundaries <= 0 or share == 0:
        return 0
    return max(1, min(n_boundaries, math.ceil(share * n_boundaries - 1e-9)))


def choose_mc(n_boundaries: int, share: float, rng: random.Random) -> list[int]:
    """Indices of the boundaries measured by Monte Carlo this step, drawn without replacement."""
    return sorted(rng.sample(range(n_boundaries), mc_count(n_boundaries, share)))


def check_estimator_dir(path: str, tokenizer, task_name: str) -> None:
    """A trained estimator usable with this policy's tokenizer and task, or a clear error."""
    from mrt.rundir import has_weights

    p = Path(path)
    if not has_weights(p):
        raise ValueError(f"--estimator {path}: no trained estimator there (mrt estimator train --out {path})")
    from transformers import AutoTokenizer

    theirs = AutoTokenizer.from_pretrained(str(p)).get_vocab()
    if theirs != tokenizer.get_vocab():
        raise ValueError(
            f"--estimator {path}: its tokenizer differs from the policy's "
            f"({len(theirs)} vs {len(tokenizer.get_vocab())} tokens); train it on this model's analyses"
        )
    meta = p / "calibration.json"
    if meta.is_file():
        task = json.loads(meta.read_text()).get("task")
        if task and task != task_name:
            raise ValueError(f"--estimator {path}: trained on task {task!r}, this run trains on {task_name!r}")


class ProgressEstimator:
    """J at a prefix (prompt + thinking ids) from one forward pass, trainable on Monte Carlo J."""

    def __init__(
        self,
        form: str,
        policy_fn,
        tokenizer,
        init: str = "",
        lr: float = 1e-3,
        updates: int = 4,
        buffer: int = 256,
        seed: int = 0,
    ):
        import torch

        if form not in FORMS:
            raise ValueError(f"estimator_form must be one of {FORMS}, got {form!r}")
        self.form, self.tok, self.updates, self.buffer_size = form, tokenizer, updates, buffer
        self.policy_fn = policy_fn  # () -> the current policy model (unwrapped)
        self.buffer: list[tuple[list[int], float]] = []
        self.rng = random.Random(seed)
        self.tokens_processed = 0  # token positions run through the estimator (forward and update)
        g = torch.Generator().manual_seed(seed)
        if form == "head":
            hidden = policy_fn().config.hidden_size
            self.net = torch.nn.Linear(hidden, 1)
            with torch.no_grad():
                self.net.weight.copy_(torch.randn(1, hidden, generator=g) * 0.01)
                self.net.bias.zero_()
        else:
            from transformers import AutoModelForSequenceClassification

            src = init or policy_fn().name_or_path
            self.net = AutoModelForSequenceClassification.from_pretrained(
                src, num_labels=1, problem_type="multi_label_classification"
            )
            self.net.config.pad_token_id = tokenizer.pad_token_id
        self.device = next(policy_fn().parameters()).device
        self.net.to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)

    # ---------------------------------------------------------------- forward
    def _batch(self, seqs: list[list[int]]):
        import torch

        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for j, s in enumerate(seqs):  # right padding: the value is read at the last real token
            ids[j, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[j, : len(s)] = 1
        self.tokens_processed += sum(map(len, seqs))
        return ids.to(self.device), mask.to(self.device)

    def _logits(self, seqs: list[list[int]]):
        import torch

        ids, mask = self._batch(seqs)
        if self.form == "model":
            return self.net(input_ids=ids, attention_mask=mask).logits[:, 0]
        policy = self.policy_fn()
        was = policy.training
        policy.eval()
        with torch.no_grad():  # the policy's features, no gradient into the policy
            h = policy(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        policy.train(was)
        last = mask.sum(dim=1) - 1
        feats = h[torch.arange(len(seqs), device=h.device), last].float()
        return self.net(feats)[:, 0]

    def predict(self, seqs: list[list[int]], batch_size: int = 64) -> list[float]:
        import torch

        self.net.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(seqs), batch_size):
                out += torch.sigmoid(self._logits(seqs[i : i + batch_size])).tolist()
        return out

    # ---------------------------------------------------------------- update
    def update(self, seqs: list[list[int]], targets: list[float]) -> float:
        """Add the pairs to the buffer, then ``updates`` Adam steps of binary cross-entropy on the
        new pairs plus an equal number drawn from the buffer; returns the last loss."""
        import torch

        new = list(zip(seqs, targets))
        old = self.rng.sample(self.buffer, min(len(self.buffer), len(new)))
        self.buffer = (self.buffer + new)[-self.buffer_size :]
        data = new + old
        if not data:
            return float("nan")
        self.net.train()
        loss = torch.tensor(float("nan"))
        for _ in range(self.updates):
            logits = self._logits([s for s, _ in data])
            y = torch.tensor([t for _, t in data], dtype=logits.dtype, device=logits.device)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return float(loss.detach())

    # ---------------------------------------------------------------- resume
    def save(self, directory: str | Path) -> None:
        import torch

        state = {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "buffer_ids": [s for s, _ in self.buffer],
            "buffer_targets": [t for _, t in self.buffer],
            "tokens_processed": self.tokens_processed,
            "rng": list(self.rng.getstate()[1]),
            "form": self.form,
        }
        path = Path(directory) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def load(self, directory: str | Path) -> bool:
        """Restore from a checkpoint directory; False when it holds no estimator state."""
        import torch

        path = Path(directory) / STATE_FILE
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state["form"] != self.form:
            raise ValueError(f"{path}: an estimator of form {state['form']!r}, this run uses {self.form!r}")
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.buffer = list(zip(state["buffer_ids"], state["buffer_targets"]))
        self.tokens_processed = int(state["tokens_processed"])
        self.rng.setstate((3, tuple(state["rng"]), None))
        return True
