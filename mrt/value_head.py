"""A language model with a scalar value head, trained on (token ids, target in [0, 1]) pairs with
binary cross-entropy (soft targets allowed): the outcome verifier (0/1 labels) and the learned
progress estimator (Monte Carlo J targets) are both this. transformers'
``AutoModelForSequenceClassification`` (one logit, read at the last non-pad token) and
``Trainer``."""

from __future__ import annotations

from pathlib import Path


def train_value_head(
    base_model: str,
    examples: list[tuple[list[int], float]],
    out: str | Path,
    steps: int = 200,
    batch_size: int = 32,
    learning_rate: float = 3e-4,
    seed: int = 0,
    threads: int = 0,
):
    """Train on ``examples`` and save to ``out``; returns (model, tokenizer). A finished head in
    ``out`` (its weights written: ``rundir.has_weights``) is loaded instead of retrained; the save
    is atomic (a temporary directory, then a rename), so a kill never leaves a half-written head."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from mrt.rundir import atomic_dir, has_weights

    out = Path(out)
    if has_weights(out):
        tok = AutoTokenizer.from_pretrained(str(out))
        return AutoModelForSequenceClassification.from_pretrained(str(out)), tok
    tok = AutoTokenizer.from_pretrained(base_model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not examples:
        raise ValueError("no examples to train the value head on")
    if threads:
        torch.set_num_threads(threads)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model, num_labels=1, problem_type="multi_label_classification"
    )
    model.config.pad_token_id = tok.pad_token_id
    ds = Dataset.from_list([{"input_ids": list(ids), "labels": [float(y)]} for ids, y in examples])
    args = TrainingArguments(
        output_dir=str(out.with_name(out.name + ".ckpt")),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=min(10, steps // 10),
        weight_decay=0.0,
        logging_steps=max(1, steps // 10),
        save_strategy="no",
        report_to=[],
        seed=seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok))
    trainer.train()
    with atomic_dir(out) as tmp:
        trainer.save_model(str(tmp))
        tok.save_pretrained(str(tmp))
    return trainer.model, tok


def score_sequences(model, tok, seqs: list[list[int]], batch_size: int = 64) -> list[float]:
    """sigmoid(head) of each token-id sequence: one forward pass each, batched."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    scores = []
    with torch.inference_mode():
        for i in range(0, len(seqs), batch_size):
            chunk = seqs[i : i + batch_size]
            width = max(map(len, chunk))
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, s in enumerate(chunk):  # right padding: the head reads the last non-pad token
                ids[j, : len(s)] = torch.tensor(s)
                mask[j, : len(s)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0]
            scores += torch.sigmoid(logits.float()).tolist()
    return scores
