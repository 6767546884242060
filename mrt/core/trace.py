"""The trace record: one line of an analysis's ``traces.jsonl`` (docs/concepts.md), typed.

``mrt analyze`` writes one per sampled (or given) trace; the summary, the report, the viewer, the
progress estimator, the stop-rule replay, the studies and the benchmarks read them. They all go
through :class:`TraceRecord`: :meth:`TraceRecord.to_json` is the line written, and
:meth:`TraceRecord.from_json` the line read back, with a clear error naming what is missing.
Keys this version does not know are kept (``extra``) and written back unchanged.

The per-prefix entries (``prefixes``: J after 0..k episodes with its interval, the forced
answers, their grades, maj@k and pass@k, token counts) and the budget-forcing entries
(``extension``) stay plain JSON objects: they are written by the meta-prover
(``PrefixEstimate.to_json``) and read by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

# what every figure needs; the other fields default (records of older versions, test records)
REQUIRED = ("problem_id", "n_output_tokens", "n_thinking_tokens", "status", "correct", "episodes", "prefixes")


@dataclass
class TraceRecord:
    problem_id: str
    trace: int = 0  # index of the trace among its problem's
    reference: str = ""  # the reference answer
    meta: dict = field(default_factory=dict)  # the problem's own data (task-specific)
    output: str = ""  # the model's text after the prompt
    n_output_tokens: int = 0
    n_thinking_tokens: int = 0
    finish_reason: str = ""  # stop | length
    status: str = "ok"  # ok | truncated | empty
    closed_thinking: bool = False  # the thinking was closed (an answer part follows)
    answer: str | None = None  # the answer extracted from the answer part
    correct: bool = False
    prompt_ids: list[int] = field(default_factory=list)
    thinking_ids: list[int] = field(default_factory=list)
    episodes: list[dict] = field(default_factory=list)  # {"start", "end", "text"}: token offsets in the thinking
    prefixes: list[dict] = field(default_factory=list)  # J after 0, 1, ..., k episodes
    progress: list[float] = field(default_factory=list)  # J after episode i minus J before it
    extension: list[dict] | None = None  # budget forcing: J after each extension (None: not run)
    grader_failures: dict | None = None  # on a problem's first record: grader failures while it ran
    sampler_faults: dict | None = None  # on a problem's first record: sampler faults met and retried
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept as they were

    # ------------------------------------------------------------------ derived, read-only

    @property
    def episode_ends(self) -> list[int]:
        """Thinking-token ends of the episodes."""
        return [e["end"] for e in self.episodes]

    @property
    def j_curve(self) -> list[float]:
        """J after 0, 1, ..., k episodes."""
        return [p["j"] for p in self.prefixes]

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict:
        """The line written to ``traces.jsonl``: fields in order, optional ones left out when unset."""
        out = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.name in ("extension", "grader_failures", "sampler_faults"):
                continue
            out[f.name] = value
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, row: dict, where: str = "") -> TraceRecord:
        """A record from its JSON object; ValueError naming ``where`` (e.g. ``traces.jsonl:12``) and
        the missing fields for a line that is not a trace record."""
        if not isinstance(row, dict):
            raise ValueError(f"{where or 'trace record'}: not a JSON object")
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise ValueError(
                f"{where or 'trace record'}: not a trace record of mrt analyze (missing {', '.join(missing)})"
            )
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in row.items() if k in names}
        return cls(**known, extra={k: v for k, v in row.items() if k not in names})


def as_records(rows: list, where: str = "") -> list[TraceRecord]:
    """``rows`` (trace records or their JSON objects) as trace records."""
    return [r if isinstance(r, TraceRecord) else TraceRecord.from_json(r, f"{where}[{i}]") for i, r in enumerate(rows)]
