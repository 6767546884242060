"""Cut an output stream into episodes. Pure functions, no I/O.

An episode segmentation is returned as the *end offsets* of the episodes: episode ``j`` covers
``[ends[j-1], ends[j])`` (``ends[-1]`` is the length of the thinking part). Offsets are in tokens
for token-level splitters and in characters for the R1 text splitter (``Task.episode_ends`` maps
those to token offsets exactly, through the characters each token adds to the decoded text).
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
    episodes: list[str]  # episode texts (paragraphs joined by "\n\n")
    char_ends: list[int]  # end offset of each episode in the original text

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

    The authors used max_steps=49, group_size=5 on Omni-MATH and max_steps=45, group_size=3 on AIME.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if not text.strip():
        return R1Segmentation([], [])
    paragraphs = text.split(PARAGRAPH_SEP)
    starts = r1_episode_starts(paragraphs, markers, min_gap, max_steps)
    cuts = [0] + starts + [len(paragraphs)]
    raw = [paragraphs[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    grouped = [sum(raw[i : i + group_size], []) for i in range(0, len(raw), group_size)]
    episodes, ends, pos = [], [], 0
    for g in grouped:
        ep = PARAGRAPH_SEP.join(g)
        pos += len(ep) + (len(PARAGRAPH_SEP) if ends else 0)
        episodes.append(ep)
        ends.append(pos)
    return R1Segmentation(episodes, ends)


def find_subsequence(seq: list[int], sub: list[int], start: int = 0) -> int:
    """Index of the first occurrence of ``sub`` in ``seq`` at or after ``start`` (-1 if none)."""
    n = len(sub)
    for i in range(start, len(seq) - n + 1):
        if seq[i : i + n] == sub:
            return i
    return -1
