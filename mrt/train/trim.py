"""The policy update's forward on rows grouped by length, each group without its padding columns.

TRL scores a step's rows as one batch: every prompt left-padded to the longest prompt, every
completion right-padded to the longest completion. MRT's prompts carry prefixes of 0 to B thinking
tokens and half its completions are short forced answers, so most of such a batch is padding. Rows
sorted by where their tokens start and end, in groups of a few, each group cut to the columns any of
its rows uses, give the same log-probs (a row's positions all move by the same number of columns,
which rotary position embeddings do not see) for a fraction of the work.
"""

from __future__ import annotations


def rotary(model) -> bool:
    """Whether the model's positions are rotary (relative), so that dropping left-padding columns
    leaves its log-probs as they were; models with learned absolute positions are scored as TRL
    scores them."""
    cfg = getattr(model, "config", None)
    return any(getattr(cfg, k, None) is not None for k in ("rope_parameters", "rope_theta", "rope_scaling"))


def length_groups(starts: list[int], ends: list[int], prompt_width: int, rows: int) -> list[tuple[list[int], int, int]]:
    """Groups of at most ``rows`` row indices, sorted by (start, end), each with the column span
    ``[lo, hi)`` its rows use: ``lo`` the first real column of any of them, ``hi`` one past the
    last, and at least one completion column (``hi > prompt_width``). A row's real tokens are the
    columns ``[starts[i], ends[i])`` of the prompt and completion laid side by side."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    order = sorted(range(len(starts)), key=lambda i: (starts[i], ends[i]))
    out = []
    for k in range(0, len(order), rows):
        idx = order[k : k + rows]
        lo = min(starts[i] for i in idx)
        hi = max(prompt_width + 1, max(ends[i] for i in idx))
        out.append((idx, min(lo, prompt_width - 1), hi))
    return out


def spans(attention_mask) -> tuple[list[int], list[int]]:
    """(first real column, one past the last) of each row of a 0/1 attention mask."""
    real = attention_mask.bool()
    width = real.shape[1]
    starts = real.int().argmax(1).tolist()
    ends = (width - real.flip(1).int().argmax(1)).tolist()
    return starts, ends


def grouped_logps(score, input_ids, attention_mask, logits_to_keep: int, rows: int, compute_entropy: bool):
    """``score(ids, mask, keep)`` -> (log-probs, entropies or None) of the last ``keep`` columns,
    run on length groups of ``rows`` rows and put back in the rows' order, zero past each group's
    span (columns the completion mask zeroes anyway)."""
    import torch
    import torch.nn.functional as F

    prompt_width = input_ids.shape[1] - logits_to_keep
    starts, ends = spans(attention_mask)
    logps, ents, order = [], [], []
    for idx, lo, hi in length_groups(starts, ends, prompt_width, rows):
        sel = torch.tensor(idx, device=input_ids.device)
        keep = hi - prompt_width
        lp, ent = score(input_ids[sel, lo:hi], attention_mask[sel, lo:hi], keep)
        logps.append(F.pad(lp, (0, logits_to_keep - keep)))
        if compute_entropy:
            ents.append(F.pad(ent, (0, logits_to_keep - keep)))
        order += idx
    back = torch.tensor(sorted(range(len(order)), key=order.__getitem__), device=input_ids.device)
    logps = torch.cat(logps).index_select(0, back)
    return logps, (torch.cat(ents).index_select(0, back) if compute_entropy else None)
