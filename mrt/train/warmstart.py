"""``mrt warmstart``: warm-start SFT data. For the backtracking format, the three schemes the MRT
paper compares (docs/backtracking.md):

* ``backtrack`` (the authors'): a failed attempt and a correct one that share a prefix, joined by a
  marker naming the step where they part; the revision is the correct attempt from there;
* ``rise``: a failed attempt, a marker back to the beginning, a fresh correct attempt;
* ``star``: rejection sampling: correct attempts alone.

Each line of ``data.jsonl`` is ``{"prompt", "completion"}``: the prompt holds the problem and the
failed attempt, the completion the marker, the revision and the answer, so ``mrt train --algo sft
--sft-data FILE`` (TRL's completion-only loss) puts the loss on the suffix only, as the authors'
``sft_suffix``.

With ``--scheme think``, thinking traces in R1's format for a real instruct model that does not
think in episodes: written by a program (:mod:`mrt.tasks.think_traces`) for reasoning-gym's
chains of sums and differences, with forced-answer examples after the authors' termination text
(docs/real-models.md, "MRT on SmolLM2").

Attempts come from search traces in the tree world (random walks to leaves, the goal's walk is the
correct one) and, for text tasks in ``format=backtrack``, from the model's own sampled attempts,
graded by the task's verifier on each attempt's last ``\\boxed{}``. ``problems.jsonl`` holds one
record per problem as it finishes (its examples, or why it gave none), so a rerun with the same
settings resumes, and one with more problems extends the set.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from mrt.config import arg, claim_run_dir
from mrt.core import backtrack as bt
from mrt.rundir import one_writer, write_atomic, write_json
from mrt.runloop import ProblemLoop
from mrt.samplers import ENGINE_FIELDS, SamplerArgs, sampler_from
from mrt.samplers.base import SamplingParams

log = logging.getLogger(__name__)
SCHEMES = ("backtrack", "rise", "star", "think")
THINK_FIELDS = ("third", "forced_share", "slips")


@dataclass
class WarmstartConfig(SamplerArgs):
    scheme: str = arg(
        "backtrack",
        "backtrack (shared prefix, the authors'), rise (restart), star (correct attempts), or think "
        "(program-written R1 thinking traces for reasoning-gym sums, for a real model's thinking warm start)",
    )
    task: str = arg("tree", "tree, or a text task with --knobs format=backtrack; think: gym (chain_sum)")
    knobs: list[str] = arg([], "task knobs as name=value")
    out: str = arg("runs/warmstart", "output directory (data.jsonl, summary.json)")
    n_problems: int = arg(1024, "training problems to write examples for")
    problem_seed: int = arg(11, "problem-set seed (mrt train's default train_seed; evaluation uses others)")
    attempts: int = arg(4, "attempts drawn per problem (star keeps the correct ones; pairs need one of each)")
    model: str = arg("", "text tasks: the model whose sampled attempts are graded (default: the shipped base)")
    attempt_tokens: int = arg(512, "text tasks: token cap of one sampled attempt")
    temperature: float = arg(0.7, "text tasks: sampling temperature of attempts")
    seed: int = arg(0, "random seed (walks in the tree world, sampling for text)")
    third: float = arg(0.5, "think: probability that a trace has a third episode (a check by signs)")
    forced_share: float = arg(
        0.5,
        "think: forced-answer examples per trace (after j episodes and the termination text, the value the "
        "prefix reached)",
    )
    slips: float = arg(
        0.0,
        "think: probability that the quick attempt slips once (off by 1 or 10); the check by place value "
        "then disagrees and a third check (by signs, or right to left) settles it",
    )

    def check(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        for name in ("n_problems", "attempts", "attempt_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in THINK_FIELDS:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


# ---------------------------------------------------------------------------- tree world


def tree_examples(task, problem, scheme: str, attempts: int, rng: random.Random) -> list[dict]:
    """Examples of one tree-world problem. Attempts are walks to leaves drawn at random; a pair is
    the failed walk that shares the longest prefix with the goal's walk, and the goal's walk."""
    from mrt.tasks.tree import answer_words

    g = task.graph(problem.meta["seed"])
    leaves = [rng.randrange(len(g.arms)) for _ in range(attempts)]
    path = [g.start] + g.arms[g.goal_arm]
    answer = ["</think>"] + answer_words(g, g.goal_arm)
    if scheme == "star":
        good = [leaf for leaf in leaves if leaf == g.goal_arm]
        return [
            {"prompt": problem.prompt, "completion": " " + " ".join(bt.render_words(path, bt.FOUND) + answer)}
            for _ in good
        ]
    bad = [leaf for leaf in leaves if leaf != g.goal_arm]
    if not bad:
        return []
    # the failed attempt that shares the longest prefix with the goal's walk (the first drawn on ties)
    failed = max(([g.start] + g.arms[leaf] for leaf in bad), key=lambda f: bt.shared_prefix(f, path))
    keep = bt.backtrack_point(failed, path, scheme, min_keep=1)
    suffix = bt.render_word_round(failed[keep - 1], path[keep:], bt.FOUND) + answer
    return [
        {
            "prompt": problem.prompt + " " + " ".join(bt.render_words(failed, bt.DEAD)),
            "completion": " " + " ".join(suffix),
            "keep": keep,
            "shared": bt.shared_prefix(failed, path),
        }
    ]


# ---------------------------------------------------------------------------- text tasks


def text_examples(task, problem, scheme: str, attempts: list[tuple[str, bool]], prompt: str) -> list[dict]:
    """Examples of one text problem from its graded attempts (text, correct)."""
    good = [a for a, ok in attempts if ok and a.strip()]
    bad = [a for a, ok in attempts if not ok and a.strip()]
    if scheme == "star":
        return [{"prompt": prompt, "completion": a} for a in good]
    if not good or not bad:
        return []
    out = []
    for failed in bad[:1]:
        f_steps = [s for _, s in bt.text_steps(failed)]
        # the correct attempt that shares the longest prefix of steps with the failed one
        best = max(good, key=lambda a: bt.shared_prefix(f_steps, [s for _, s in bt.text_steps(a)]))
        c_steps = bt.text_steps(best)
        try:
            keep = bt.backtrack_point(f_steps, [s for _, s in c_steps], scheme)
        except ValueError:
            continue
        revision = "\n".join(s for _, s in c_steps[keep:])
        out.append(
            {
                "prompt": prompt + failed.rstrip() + "\n",
                "completion": bt.render_text_round(keep, revision),
                "keep": keep,
            }
        )
    return out


def sample_text_attempts(sampler, task, problem, cfg: WarmstartConfig, seed: int) -> list[tuple[str, bool]]:
    tok = sampler.tokenizer
    params = SamplingParams(
        n=cfg.attempts,
        max_new_tokens=cfg.attempt_tokens,
        temperature=cfg.temperature,
        stop=("Backtrack to", bt.RL_MARKER),
        seed=seed,
    )
    out = []
    for c in sampler.sample([task.prompt_ids(problem, tok)], params)[0]:
        text = c.text.replace(tok.eos_token or "\0", "")
        try:
            a = task.extract_answer(text)
            ok = a is not None and bool(task.grade(problem, a))
        except Exception as e:  # noqa: BLE001 - a grader that chokes grades wrong
            log.warning("grading failed on problem %s: %.80s", problem.id, str(e))
            ok = False
        out.append((text, ok))
    return out


# ---------------------------------------------------------------------------- thinking traces


def think_examples(
    task, problem, tokenizer, rng: random.Random, third: float, forced_share: float, slips: float = 0.0
) -> list[dict]:
    """One whole trace (thinking, ``</think>``, the boxed answer) and, with probability
    ``forced_share``, one forced answer after ``j`` of its episodes (``j`` uniform, 0 included):
    the prompt ends with the task's termination text, the completion is the value the prefix
    reached (the answer itself after no episode)."""
    from mrt.tasks import think_traces as tt

    expression = task.entry(problem).get("metadata", {}).get("expression", "")
    terms = tt.parse_chain(expression)
    if sum(terms) != int(problem.answer):
        raise ValueError(f"problem {problem.id}: {expression} does not equal its answer {problem.answer}")
    eps, values = tt.think_trace(terms, rng, third, slips)
    prompt = task.render(problem, tokenizer)
    out = [
        {
            "prompt": prompt,
            "completion": tt.episode_text(eps) + task.natural_end_text + "\n\n" + tt.answer_text(problem.answer),
            "episodes": len(eps),
        }
    ]
    if rng.random() < forced_share:
        j = rng.randrange(len(eps))
        prefix = tt.episode_text(eps[:j]) + task.termination_text if j else task.termination_text.lstrip("\n")
        value = values[j - 1] if j else problem.answer
        out.append({"prompt": prompt + prefix, "completion": tt.forced_answer_text(value), "episodes": j})
    return out


def _check_think_task(task, name: str) -> None:
    from mrt.tasks.text import GymTask

    if not isinstance(task, GymTask):
        raise ValueError(f"--scheme think writes traces for reasoning-gym sums: use --task gym, not {name!r}")
    if task.thinking != "r1" or task.format != "plain":
        raise ValueError("--scheme think writes R1 thinking: use the task's default knobs thinking=r1 format=plain")
    if task.episode_group_size != 1:
        raise ValueError(
            "--scheme think writes 2-3 short episodes, which R1 segmentation in groups of "
            f"{task.episode_group_size} merges into one: use --knobs episode_group_size=1"
        )


# ---------------------------------------------------------------------------- the command


@one_writer
def run_warmstart(cfg: WarmstartConfig, sampler=None) -> dict:
    from mrt.tasks import get_task, parse_knobs
    from mrt.tasks.tiny import shipped_model_path
    from mrt.tasks.tree import TreeTask

    cfg.check()
    task = get_task(cfg.task, **parse_knobs(cfg.knobs))
    is_tree = isinstance(task, TreeTask)
    think = cfg.scheme == "think"
    if think:
        _check_think_task(task, cfg.task)
    elif is_tree and task.format != "backtrack":
        raise ValueError("warm-start data is in the backtracking format: use the tree world's format=backtrack")
    elif not is_tree and getattr(task, "format", None) != "backtrack":
        raise ValueError(f"task {cfg.task!r} needs --knobs format=backtrack")
    out = Path(cfg.out)
    problems = task.problems(cfg.n_problems, seed=cfg.problem_seed)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out", "n_problems", "base_url", *ENGINE_FIELDS)}
    tokenizer = None
    if think:  # written by a program: the model's tokenizer renders the prompts, nothing is sampled
        from transformers import AutoTokenizer

        from mrt.samplers.hf import check_model_path

        cfg.model = cfg.model or str(shipped_model_path())
        check_model_path(cfg.model)
        tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        if problems:  # a task whose problems are not chains of sums is refused before anything is written
            think_examples(task, problems[0], tokenizer, random.Random(0), cfg.third, cfg.forced_share, cfg.slips)
        sampler_fields = {f.name for f in fields(SamplerArgs)}
        for k in ("attempts", "attempt_tokens", "temperature", *sampler_fields):
            settings.pop(k, None)  # nothing is sampled: these do not matter to a resume
        if not cfg.slips:
            settings.pop("slips")  # think runs from before slips existed resume
    else:  # the think scheme's own settings; older runs of the other schemes resume
        for k in THINK_FIELDS:
            settings.pop(k)
    settings["knobs"] = task.knobs()
    claim_run_dir(out, settings)
    # one record per problem, appended as it finishes: a rerun with the same settings resumes
    loop = ProblemLoop("warmstart", out / "problems.jsonl", problems, 1, cfg)
    if not think and not is_tree:
        cfg.model = cfg.model or str(shipped_model_path())
        sampler = loop.sampler(sampler, lambda: sampler_from(cfg, cfg.model), cfg.max_retries, cfg.model)

    def work(items):
        ((i, p),) = items
        if think:
            rng = random.Random(f"warmstart-{cfg.seed}-{p.id}")
            try:
                ex = think_examples(task, p, tokenizer, rng, cfg.third, cfg.forced_share, cfg.slips)
            except ValueError as e:  # e.g. a bracket or a product among chains: a counted skip
                log.info("problem %s: %s", p.id, e)
                return {p.id: [{"problem_id": p.id, "examples": [], "skipped": "not_a_chain"}]}
        elif is_tree:  # walks drawn from the problem's own seed: the same on a rerun
            rng = random.Random(f"warmstart-{cfg.seed}-{p.id}")
            ex = tree_examples(task, p, cfg.scheme, cfg.attempts, rng)
        else:
            attempts = sample_text_attempts(sampler, task, p, cfg, cfg.seed * 1_000_003 + i)
            ex = text_examples(task, p, cfg.scheme, attempts, task.render(p, sampler.tokenizer))
        skip = "" if ex else ("no_correct_attempt" if cfg.scheme == "star" else "no_failed_and_correct_pair")
        return {p.id: [{"problem_id": p.id, "examples": ex, "skipped": skip}]}

    loop.run(sampler, work, source=cfg.model or "search")
    recs = [r[0] for r in loop.records()]
    rows = [{**e, "problem_id": r["problem_id"]} for r in recs for e in r["examples"]]
    skipped = Counter(r["skipped"] for r in recs if r["skipped"])
    write_atomic(out / "data.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    s = {
        "scheme": cfg.scheme,
        "task": cfg.task,
        "knobs": task.knobs(),
        "n_problems": len(problems),
        "examples": len(rows),
        "skipped_problems": dict(skipped),
        "mean_keep": round(sum(r["keep"] for r in rows) / len(rows), 4)
        if rows and cfg.scheme in ("backtrack", "rise")
        else None,
    }
    if skipped:
        log.info("skipped %d problems: %s", sum(skipped.values()), dict(skipped))
    if loop.gave_up.by_kind:
        s["failed_problems"] = dict(loop.gave_up.by_kind)
    write_json(out / "summary.json", s)
    loop.gave_up.finish()
    return s
