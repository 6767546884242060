"""Cut an output stream into episodes. Pure functions, no I/O.

An episode segmentation is returned as the *end offsets* of the episodes: episode ``j`` covers
``[ends[j-1], ends[j])`` (``ends[-1]`` is the length of the thinking part). Offsets are in tokens
for token-level splitters and in characters for the R1 text splitter (``Task.episode_ends`` maps
those to token offsets exactly, through the characters each token adds to the decoded text; an R1
episode's character end is before the newlines that close it, and ``Task.episode_ends`` puts the
last end at the length of the thinking).
"""

from __future__ import annotations

from dataclasses import dataclass

R1_MARKERS = (
    "Wait",
    "But wait",
    "Alternatively",
    "Is there another way to think about this?",
    "But let me double-check",
    "But hold on",
)
PARAGRAPH_SEP = "\n\n"


def didactic_ends(tokens: list[str], markers=("try", "check")) -> list[int]:
    """Episodes of the didactic syntax: a new episode starts at every marker token.

    Tokens before the first marker belong to the first episode. An empty stream has no episodes.
    """
    starts = [i for i, t in enumerate(tokens) if t in markers and i > 0]
    return starts + ([len(tokens)] if tokens else [])


def chunk_ends(n_tokens: int, chunk: int) -> list[int]:
    """Fallback: fixed chunks of ``chunk`` tokens (the last one may be shorter)."""
    if chunk <= 0:
        raise ValueError(f"chunk size must be positive, got {chunk}")
    return list(range(chunk, n_tokens, chunk)) + ([n_tokens] if n_tokens else [])


@dataclass(frozen=True)
class R1Segmentation:
    episodes: list[str]  # episode texts, the authors' way (see segment_r1)
    char_ends: list[int]  # where each episode ends in the original text (its last non-newline character)

    def prefix(self, j: int) -> str:
        """Thinking prefix after ``j`` episodes, the authors' way: joined by \\n\\n plus \\n\\n."""
        return PARAGRAPH_SEP.join(self.episodes[:j]) + PARAGRAPH_SEP if j else ""


def r1_episode_starts(paragraphs: list[str], markers=R1_MARKERS, min_gap: int = 3, max_steps: int = 49) -> list[int]:
    """Paragraph indices where a new episode starts (MRT-NOTES §2).

    A paragraph opening with a marker (its very first characters: a paragraph that starts with a
    space or a newline before the marker does not count, as in the authors' code) starts an
    episode only if it is at least ``min_gap``
    paragraphs after the previous start (the stream's start counts as one, at index 0); at most
    ``max_steps`` starts are kept, the rest of the stream is the last episode.
    """
    starts, last = [], 0
    for i, par in enumerate(paragraphs):
        if len(starts) >= max_steps:
            break
        if i > 0 and par.startswith(tuple(markers)) and i - last >= min_gap:  # the authors': no strip
            starts.append(i)
            last = i
    return starts


def segment_r1(
    text: str, max_steps: int = 49, group_size: int = 5, markers=R1_MARKERS, min_gap: int = 3
) -> R1Segmentation:
    """Split an R1-style thinking trace into episodes, then merge them in groups of ``group_size``.

    As the authors' ``break_into_meta_steps`` and ``merge_meta_steps``: each episode's paragraphs
    are joined by \\n\\n and its trailing newlines dropped (an empty paragraph right before a
    boundary, or newlines that end the thinking), then ``group_size`` episodes are joined by
    \\n\\n. ``char_ends[j]`` is where episode ``j`` ends in ``text``: after its last
    non-newline character. Thinking with no text (empty or whitespace only) has no episode
    (the authors made one empty episode of it; docs/concepts.md).

    The authors used max_steps=49, group_size=5 on Omni-MATH and max_steps=45, group_size=3 on AIME.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if not text.strip():
        return R1Segmentation([], [])
    paragraphs = text.split(PARAGRAPH_SEP)
    starts = r1_episode_starts(paragraphs, markers, min_gap, max_steps)
    cuts = [0] + starts + [len(paragraphs)]
    raw, ends, pos = [], [], 0  # pos: where the raw episode starts in text
    for a, b in zip(cuts[:-1], cuts[1:]):
        span = PARAGRAPH_SEP.join(paragraphs[a:b])
        raw.append(span.rstrip("\n"))
        ends.append(pos + len(raw[-1]))
        pos += len(span) + len(PARAGRAPH_SEP)
    groups = range(0, len(raw), group_size)
    return R1Segmentation(
        [PARAGRAPH_SEP.join(raw[i : i + group_size]) for i in groups],
        [ends[min(i + group_size, len(raw)) - 1] for i in groups],
    )


def find_subsequence(seq: list[int], sub: list[int], start: int = 0) -> int:
    """Index of the first occurrence of ``sub`` in ``seq`` at or after ``start`` (-1 if none)."""
    n = len(sub)
    for i in range(start, len(seq) - n + 1):
        if seq[i : i + n] == sub:
            return i
    return -1
