"""Tasks for real language models: problems in words, prompts through the chat template,
R1-style thinking, math answers graded with math-verify on the answer part only.

* :class:`DataTask` (``data``, and the presets ``math500``, ``aime24``, ``aime25``, ``amc23``,
  ``gsm8k``, ``numina``): problems and reference answers loaded with ``datasets`` from a hub id
  or a local JSON/JSONL/parquet/CSV file, with a field mapping.
* :class:`GymTask` (``gym``): problems generated offline by ``reasoning-gym``, graded by its own
  scorer (no download at all).

Thinking modes (knob ``thinking``):

* ``r1`` (default): the prompt opens ``<think>``; thinking ends at ``</think>``; the answer part
  is what follows it; the forced-termination text is the authors' exact text (MRT-NOTES §2).
* ``none``: a model that does not think in tags. The whole output is both the thinking stream
  (split into episodes) and, once finished, the answer part; the termination text is the same
  text without ``</think>``.
"""

from __future__ import annotations

import bisect
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from mrt import grading
from mrt.chat import THINK_OPEN, render_chat
from mrt.core.backtrack import BACKTRACK_INSTRUCTION, text_episode_ends
from mrt.tasks.base import R1_ANSWER_OPENER, R1_TERMINATION, Problem, Task, decoded_char_ends

log = logging.getLogger(__name__)

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
NO_THINK_TERMINATION = (
    "Time is up.\n\nGiven the time I've spent and the approaches I've tried, I should "
    "stop thinking and formulate a final answer based on what I already have.\n\n"
    "**Final Answer**\n"
)

# name -> data-set knobs (hub id, subset, split, fields, how to read the reference answer)
PRESETS: dict[str, dict] = {
    "math500": dict(
        source="HuggingFaceH4/MATH-500",
        split="test",
        problem_field="problem",
        answer_field="answer",
        id_field="unique_id",
    ),
    "aime24": dict(
        source="HuggingFaceH4/aime_2024",
        split="train",
        problem_field="problem",
        answer_field="answer",
        id_field="id",
        episode_max_steps="45",
        episode_group_size="3",
    ),
    "aime25": dict(
        source="math-ai/aime25",
        split="test",
        problem_field="problem",
        answer_field="answer",
        id_field="id",
        episode_max_steps="45",
        episode_group_size="3",
    ),
    "amc23": dict(source="math-ai/amc23", split="test", problem_field="question", answer_field="answer", id_field="id"),
    "gsm8k": dict(
        source="openai/gsm8k",
        subset="main",
        split="test",
        problem_field="question",
        answer_field="answer",
        answer_from="gsm8k",
    ),
    "numina": dict(
        source="AI-MO/NuminaMath-CoT",
        split="train",
        problem_field="problem",
        answer_field="solution",
        answer_from="boxed",
    ),
}


@dataclass
class TextTask(Task):
    """Shared prompt, thinking and grading settings of the word-problem tasks."""

    template: str = "chat"  # chat: the tokenizer's chat template; raw: plain text
    thinking: str = "r1"  # r1 or none (see the module doc)
    instruction: str = INSTRUCTION  # appended to each problem in the user message
    system: str = ""  # system message (chat template only)
    grader_timeout: object = 5  # seconds per answer for math-verify; a time-out grades wrong
    extract: str = "boxed"  # boxed: the last \boxed{}; last-number: that, else the last number (small models)
    episode_max_steps: object = 49  # R1 segmentation: at most this many episode boundaries
    episode_group_size: object = 5  # R1 segmentation: merge episodes in groups of this size
    format: str = "plain"  # plain, or backtrack: MRT's backtracking format (docs/backtracking.md)

    def __post_init__(self):
        if self.format not in ("plain", "backtrack"):
            raise ValueError(f"knob 'format' must be 'plain' or 'backtrack', got {self.format!r}")
        if self.format == "backtrack":  # no <think> tags; the authors' backtracking instruction
            self.thinking = "none"
            if self.instruction == INSTRUCTION:
                self.instruction = ""
        if self.template not in ("chat", "raw"):
            raise ValueError(f"knob 'template' must be 'chat' or 'raw', got {self.template!r}")
        if self.extract not in ("boxed", "last-number"):
            raise ValueError(f"knob 'extract' must be 'boxed' or 'last-number', got {self.extract!r}")
        if self.thinking not in ("r1", "none"):
            raise ValueError(f"knob 'thinking' must be 'r1' or 'none', got {self.thinking!r}")
        for name in ("grader_timeout", "episode_max_steps", "episode_group_size"):
            try:
                value = int(getattr(self, name))
            except (TypeError, ValueError):
                value = 0
            if value < 1:
                raise ValueError(f"knob {name!r} must be a positive integer, got {getattr(self, name)!r}")
            setattr(self, name, value)
        self.r1_max_steps, self.r1_group_size = self.episode_max_steps, self.episode_group_size
        if self.thinking == "none":
            self.think_end_text = ""
            self.termination_text = "\n\n" + NO_THINK_TERMINATION
            self.natural_end_text = None
            self.extension_stop_texts = ()
        else:
            self.termination_text = "\n\n" + R1_TERMINATION + R1_ANSWER_OPENER

    def base_knobs(self) -> dict:
        return {
            "template": self.template,
            "thinking": self.thinking,
            "instruction": self.instruction,
            "system": self.system,
            "grader_timeout": self.grader_timeout,
            "extract": self.extract,
            "episode_max_steps": self.episode_max_steps,
            "episode_group_size": self.episode_group_size,
            **({"format": self.format} if self.format != "plain" else {}),
        }

    def render(self, problem: Problem, tokenizer) -> str:
        if problem.meta.get("rendered"):  # an exact prompt given with traces made elsewhere
            return problem.prompt
        user = problem.prompt + ("\n" + self.instruction if self.instruction else "")
        if self.format == "backtrack":
            user = BACKTRACK_INSTRUCTION + user
        think = THINK_OPEN if self.thinking == "r1" else ""
        if self.template == "chat":
            return render_chat(tokenizer, user, self.system, think)
        return user + "\n" + think

    def extract_answer(self, completion: str) -> str | None:
        boxed = grading.last_boxed(completion)
        if boxed is None and self.extract == "last-number":
            return grading.last_number(completion)
        return boxed

    def grade(self, problem: Problem, answer: str | None) -> bool:
        return grading.math_equal(answer, problem.answer, self.grader_timeout)

    def episode_ends(self, thinking_ids: list[int], tokenizer) -> list[int]:
        """R1 episodes, or with ``format=backtrack`` the attempt, each marker and each revision."""
        if self.format != "backtrack":
            return super().episode_ends(thinking_ids, tokenizer)
        text, tok_ends = decoded_char_ends(tokenizer, thinking_ids)
        ends = sorted({min(bisect.bisect_left(tok_ends, c) + 1, len(thinking_ids)) for c in text_episode_ends(text)})
        if ends:
            ends[-1] = len(thinking_ids)
        return ends

    def same_answer(self, a: str, b: str) -> bool:
        return grading.equivalent(a, b, self.grader_timeout)


@dataclass
class MathTask(TextTask):
    """Math grading, prompts and thinking settings with no problems of its own: for
    ``mrt analyze --traces FILE`` (the file brings problems and reference answers)."""

    name: str = "math"

    def knobs(self) -> dict:
        return self.base_knobs()

    def problems(self, n: int, seed: int = 0) -> list[Problem]:
        raise ValueError(
            "task 'math' has no problems of its own; use it with --traces FILE, "
            "or use a data task (data, math500, gsm8k, ...)"
        )


# ---------------------------------------------------------------------------- data sets


def reference_answer(value, how: str) -> str:
    """The reference answer of a row: the field as is, the last ``\\boxed{}`` of a worked
    solution (NuminaMath), or what follows ``####`` (GSM8K)."""
    text = str(value).strip()
    if how == "field":
        return text
    if how == "boxed":
        boxed = grading.last_boxed(text)
        if boxed is None:
            raise ValueError("no \\boxed{} answer in the solution")
        return boxed
    if how == "gsm8k":
        if "####" not in text:
            raise ValueError("no '####' answer in the solution")
        return text.rsplit("####", 1)[1].strip().replace(",", "")
    raise ValueError(f"knob 'answer_from' must be field, boxed or gsm8k, got {how!r}")


def load_rows(source: str, split: str = "", subset: str = ""):
    """A ``datasets.Dataset`` from a local file/directory or a hub id (with advice when offline)."""
    import datasets

    path = Path(source).expanduser()
    kinds = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
    if path.exists():
        if path.is_file():
            kind = kinds.get(path.suffix.lower())
            if kind is None:
                raise ValueError(f"{source}: unknown file type; use .json, .jsonl, .parquet or .csv")
            try:
                return datasets.load_dataset(kind, data_files=str(path), split=split or "train")
            except Exception as e:  # malformed file: name it
                raise ValueError(f"{source}: could not read it as {kind} ({type(e).__name__}: {e})") from None
        return (
            datasets.load_from_disk(str(path))
            if (path / "dataset_info.json").exists() or (path / "state.json").exists()
            else datasets.load_dataset(str(path), subset or None, split=split or "train")
        )
    if source.startswith((".", "/", "~")) or Path(source).suffix.lower() in kinds:
        raise FileNotFoundError(f"data file {source!r} does not exist")
    try:
        return datasets.load_dataset(source, subset or None, split=split or "train")
    except Exception as e:
        raise ValueError(
            f"could not load {source!r} from the Hugging Face hub ({type(e).__name__}: {str(e)[:200]}). "
            "Without hub access, save the data set elsewhere (e.g. datasets.load_dataset(...).to_json"
            "('file.jsonl')) and pass it as a local file: source=file.jsonl problem_field=... "
            "answer_field=... (HF_HUB_OFFLINE=1 makes this fail at once instead of after retries)"
        ) from None


@dataclass
class DataTask(TextTask):
    """Math problems from a data set (hub id or local file), graded with math-verify."""

    preset: str = ""  # one of PRESETS: fills in the data-set knobs below
    source: str = ""  # hub id, or a local .json/.jsonl/.parquet/.csv file or saved data set
    split: str = ""  # data-set split (default: the preset's, else train)
    subset: str = ""  # hub configuration name (e.g. 'main' for GSM8K)
    problem_field: str = "problem"  # column with the problem text
    answer_field: str = "answer"  # column with the reference answer (or a solution, see answer_from)
    id_field: str = ""  # column with a problem id (default: the row index)
    answer_from: str = "field"  # field, boxed (last \boxed{} of a solution) or gsm8k (after ####)
    name: str = "data"
    _rows: object = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.preset:
            if self.preset not in PRESETS:
                raise ValueError(f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
            defaults = DataTask.__dataclass_fields__
            for key, value in PRESETS[self.preset].items():
                if getattr(self, key) == defaults[key].default:  # a knob given by the user wins
                    setattr(self, key, value)
        if not self.source:
            raise ValueError("task 'data' needs the knob source=HUB_ID_OR_FILE (or preset=NAME)")
        if self.answer_from not in ("field", "boxed", "gsm8k"):
            raise ValueError(f"knob 'answer_from' must be field, boxed or gsm8k, got {self.answer_from!r}")
        super().__post_init__()

    def knobs(self) -> dict:
        return {
            **self.base_knobs(),
            "preset": self.preset,
            "source": self.source,
            "split": self.split,
            "subset": self.subset,
            "problem_field": self.problem_field,
            "answer_field": self.answer_field,
            "id_field": self.id_field,
            "answer_from": self.answer_from,
        }

    def rows(self):
        if self._rows is None:
            ds = load_rows(self.source, self.split, self.subset)
            missing = [
                f for f in (self.problem_field, self.answer_field, self.id_field) if f and f not in ds.column_names
            ]
            if missing:
                raise ValueError(
                    f"data set {self.source!r} has no field(s) {', '.join(map(repr, missing))}; "
                    f"its fields: {', '.join(ds.column_names)} (set problem_field=, answer_field=, "
                    "id_field=)"
                )
            self._rows = ds
        return self._rows

    def problems(self, n: int, seed: int = 0) -> list[Problem]:
        """``n`` problems (all if ``n`` is larger): in file order for seed 0, else a seeded sample.
        Rows whose reference answer cannot be read are skipped and counted in the log."""
        ds = self.rows()
        order = list(range(len(ds)))
        if seed:
            random.Random(seed).shuffle(order)
        out, bad = [], 0
        for i in order:
            if len(out) >= n:
                break
            row = ds[i]
            try:
                answer = reference_answer(row[self.answer_field], self.answer_from)
            except ValueError as e:
                bad += 1
                log.warning("%s row %d skipped: %s", self.source, i, e)
                continue
            text = str(row[self.problem_field] or "").strip()
            if not text:
                bad += 1
                log.warning("%s row %d skipped: empty %r", self.source, i, self.problem_field)
                continue
            pid = str(row[self.id_field]) if self.id_field else f"{Path(self.source).stem}-{i}"
            out.append(Problem(id=pid, prompt=text, answer=answer, meta={"row": i}))
        if bad:
            log.warning("%s: %d row(s) skipped (no readable reference answer or problem)", self.source, bad)
        if not out:
            raise ValueError(f"data set {self.source!r} gave no usable problems")
        return out


# ---------------------------------------------------------------------------- reasoning-gym


@dataclass
class GymTask(TextTask):
    """Problems generated offline by ``reasoning-gym`` (``pip install reasoning-gym``), graded by
    its own scorer on the last ``\\boxed{}`` (or ``<answer>`` tag) of the answer part."""

    dataset: str = "chain_sum"  # a reasoning-gym data set name, e.g. chain_sum, basic_arithmetic
    options: str = ""  # the data set's own settings, e.g. "max_terms:2,max_digits:1"
    name: str = "gym"
    _entries: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        super().__post_init__()
        rg = _reasoning_gym()
        if self.dataset not in rg.factory.DATASETS:
            raise ValueError(
                f"unknown reasoning-gym data set {self.dataset!r}; e.g. chain_sum, "
                "basic_arithmetic, gsm_symbolic (see reasoning_gym.factory.DATASETS)"
            )

    def knobs(self) -> dict:
        return {**self.base_knobs(), "dataset": self.dataset, "options": self.options}

    def _options(self) -> dict:
        out = {}
        for item in filter(None, (x.strip() for x in self.options.split(","))):
            key, sep, value = item.partition(":")
            if not sep:
                raise ValueError(f"knob 'options': {item!r} must look like name:value")
            try:
                out[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                out[key.strip()] = value.strip()
        return out

    def entry(self, problem: Problem) -> dict:
        """The reasoning-gym entry of a problem this task made (question, answer, metadata)."""
        try:
            _, seed, index = problem.id.rsplit("-", 2)
            seed, index = int(seed), int(index)
        except ValueError:
            raise ValueError(f"problem id {problem.id!r} was not made by task gym/{self.dataset}") from None
        return self._entry(seed, index)

    def _entry(self, seed: int, index: int) -> dict:
        key = f"{self.dataset}-{seed}-{index}"
        if key not in self._entries:
            ds = _reasoning_gym().create_dataset(self.dataset, size=index + 1, seed=gym_seed(seed), **self._options())
            self._entries[key] = ds[index]
        return self._entries[key]

    def problems(self, n: int, seed: int = 0) -> list[Problem]:
        try:
            ds = _reasoning_gym().create_dataset(self.dataset, size=n, seed=gym_seed(seed), **self._options())
        except (TypeError, AssertionError) as e:
            raise ValueError(f"reasoning-gym {self.dataset!r} refused options {self.options!r}: {e}") from None
        out = []
        for i in range(n):
            e = ds[i]
            pid = f"{self.dataset}-{seed}-{i}"
            self._entries[pid] = e
            out.append(Problem(id=pid, prompt=e["question"], answer=str(e["answer"]), meta={"seed": seed, "index": i}))
        return out

    def extract_answer(self, completion: str) -> str | None:
        boxed = grading.last_boxed(completion)
        if boxed is not None or not completion:
            return boxed
        from reasoning_gym.utils import extract_answer

        tagged = extract_answer(completion)
        if tagged is None and self.extract == "last-number":
            return grading.last_number(completion)
        return tagged

    def grade(self, problem: Problem, answer: str | None) -> bool:
        if answer is None:
            return False
        entry = self.entry(problem)
        return _reasoning_gym().get_score_answer_fn(self.dataset)(answer, entry) >= 1.0


GYM_SEED_STRIDE = 1 << 20


def gym_seed(seed: int) -> int:
    """reasoning-gym's seed for a problem seed. Its procedural data sets draw item ``i`` of seed
    ``s`` from ``Random(s + i)``, so seeds ``s`` and ``s + 1`` share all but one item: mrt's default
    training set (seed 11) held 53 of the 64 problems of its default evaluation set (seed 0).
    Problem seeds map ``GYM_SEED_STRIDE`` (2^20) apart, so sets of fewer than 2^20 problems from
    different seeds share no random state; seed 0 is unchanged, and seeds below 4096 stay below
    2^32, which a few data sets (``pool_matrix``) require."""
    return seed * GYM_SEED_STRIDE


def _reasoning_gym():
    try:
        import reasoning_gym
    except ImportError:
        raise ValueError("task 'gym' needs reasoning-gym: pip install 'mrt[gym]'") from None
    return reasoning_gym
