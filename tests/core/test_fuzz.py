"""Property-based tests (Hypothesis) of the parsers that meet outside text: episode segmentation
(didactic and R1), answer extraction, task knobs, JSONL trace reading and the report's HTML
escaping. Each may fail only with its documented error, and the segmentations keep their
invariants (episodes make up the text, ends increase)."""

from __future__ import annotations

import html.parser
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrt import grading
from mrt.core.episodes import R1_MARKERS, didactic_ends, segment_r1
from mrt.tasks import get_task, parse_knobs
from mrt.tasks.star import StarTask, vocabulary

# derandomize: CI sees the same examples every run (a found failure is kept reproducible, never flaky)
FAST = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
MARKERS = ("try", "check")


# ---------------------------------------------------------------------------- segmentation


@FAST
@given(st.lists(st.sampled_from(["try", "check", "v1", "v7", "dead", "found", "</think>", "answer"]), max_size=60))
def test_didactic_episodes_make_up_the_stream(tokens):
    ends = didactic_ends(tokens, MARKERS)
    if not tokens:
        assert ends == []
        return
    assert ends[-1] == len(tokens) and all(a < b for a, b in zip(ends, ends[1:])) and ends[0] > 0
    pieces = [tokens[a:b] for a, b in zip([0] + ends[:-1], ends)]
    assert [t for p in pieces for t in p] == tokens  # the episodes concatenate to the stream
    assert all(p[0] in MARKERS for p in pieces[1:])  # every later episode opens with a marker


@FAST
@given(st.lists(st.integers(min_value=0, max_value=len(vocabulary()) - 1), max_size=80))
def test_star_task_episode_ends_on_any_token_ids(ids):
    ends = StarTask().episode_ends(ids, _star_tok())
    assert (ends == []) == (not ids)
    if ids:
        assert ends[-1] == len(ids) and all(0 < a < b for a, b in zip(ends, ends[1:]))


_TOK = {}


def _star_tok():
    if "star" not in _TOK:
        from mrt.tasks.tiny import build_tokenizer

        _TOK["star"] = build_tokenizer()
    return _TOK["star"]


paragraph = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(R1_MARKERS).flatmap(lambda m: st.text(max_size=20).map(lambda t, m=m: m + t)),
    st.sampled_from(["", "\n", " Wait", "\nWait", "Wait\n"]),
)


@FAST
@given(st.lists(paragraph, max_size=25), st.integers(1, 6), st.integers(1, 8), st.integers(0, 4))
def test_r1_segmentation_invariants(paragraphs, group, max_steps, min_gap):
    text = "\n\n".join(paragraphs)
    seg = segment_r1(text, max_steps=max_steps, group_size=group, min_gap=min_gap)
    if not text.strip():
        assert seg.episodes == [] and seg.char_ends == []
        return
    ends = seg.char_ends
    assert len(ends) == len(seg.episodes) >= 1
    assert all(a < b for a, b in zip(ends, ends[1:])) and 0 < ends[-1] <= len(text)
    assert set(text[ends[-1] :]) <= {"\n"}  # only the newlines that close the thinking are left
    one = segment_r1(text, max_steps=max_steps, group_size=1, min_gap=min_gap)
    covered = [False] * len(text)
    for ep, end in zip(one.episodes, one.char_ends):
        assert text[end - len(ep) : end] == ep  # each episode stands in the text where it ends
        for i in range(end - len(ep), end):
            covered[i] = True
    assert all(c or ch == "\n" for c, ch in zip(covered, text))  # the episodes make up the text
    assert [e for e in seg.episodes] == [
        "\n\n".join(one.episodes[i : i + group]) for i in range(0, len(one.episodes), group)
    ]
    assert seg.prefix(len(seg.episodes)).endswith("\n\n")


@pytest.fixture(scope="module")
def r1_tok_task(smollm2_tok):
    from mrt.tasks.base import Task

    return smollm2_tok, Task()


@SLOW
@given(st.lists(paragraph, max_size=12))
def test_r1_token_ends_on_a_real_tokenizer(r1_tok_task, paragraphs):
    tok, task = r1_tok_task
    text = "\n\n".join(paragraphs)
    ids = tok.encode(text, add_special_tokens=False)
    ends = task.episode_ends(ids, tok)
    if not ids or not text.strip():
        assert ends == [] or ends[-1] == len(ids)
        return
    assert ends and ends[-1] == len(ids)
    assert all(0 < a < b for a, b in zip(ends, ends[1:]))  # token ends increase
    full = tok.decode(ids, skip_special_tokens=False)
    for e in ends:  # a prefix of whole episodes decodes to the start of the text
        assert full.startswith(tok.decode(ids[:e], skip_special_tokens=False).rstrip("\ufffd"))


# ---------------------------------------------------------------------------- answers


@FAST
@given(st.text(max_size=200))
def test_answer_extraction_never_crashes(text):
    b = grading.last_boxed(text)
    assert b is None or isinstance(b, str)
    n = grading.last_number(text)
    assert n is None or re.fullmatch(r"-?\d+(?:\.\d+)?", n)
    a = StarTask().extract_answer(text)
    assert a is None or (a and "<eos>" not in a.split())


balanced = st.recursive(
    st.text(alphabet=st.characters(blacklist_characters="{}\\"), max_size=8),
    lambda inner: st.tuples(inner, inner).map(lambda t: t[0] + "{" + t[1] + "}"),
    max_leaves=5,
)


@FAST
@given(st.text(max_size=40), balanced, st.text(alphabet=st.characters(blacklist_characters="\\"), max_size=40))
def test_the_last_boxed_answer_is_found(before, inner, after):
    assert grading.last_boxed(before + "\\boxed{" + inner + "}" + after) == inner.strip()


@SLOW
@given(st.lists(st.integers(min_value=0, max_value=len(vocabulary()) - 1), max_size=40))
def test_star_grading_of_any_output(ids):
    task = StarTask(arms="2", arm_len="2")
    p = task.problems(1)[0]
    tok = _star_tok()
    thinking, answer = task.split_output(ids, tok)
    if answer is None:  # thinking never ended: all of it, less EOS tokens
        assert thinking == [i for i in ids if i != tok.eos_token_id]
    else:  # thinking, the end-of-thinking token(s), the answer part
        end = tok.encode(task.think_end_text, add_special_tokens=False)
        assert thinking + end + answer == ids and end not in [thinking[i : i + len(end)] for i in range(len(thinking))]
    ans, ok = task.grade_answer_ids(p, answer, _star_tok())
    assert isinstance(ok, bool) and (ans is None or isinstance(ans, str))


# ---------------------------------------------------------------------------- knobs


@FAST
@given(st.lists(st.text(max_size=20), max_size=4))
def test_knob_parsing_fails_only_with_value_error(items):
    try:
        knobs = parse_knobs(items)
    except ValueError:
        return
    assert all("=" in i for i in items) and isinstance(knobs, dict)
    try:
        task = get_task("star", **knobs)
    except ValueError:
        return
    assert set(knobs) <= {"arms", "arm_len", "cue"} and task.problems(1)


@FAST
@given(
    st.one_of(
        st.text(max_size=8),
        st.integers(-3, 40).map(str),
        st.tuples(st.integers(-2, 9), st.integers(-2, 9)).map(lambda t: f"{t[0]}-{t[1]}"),
    ),
    st.one_of(st.text(max_size=8), st.integers(-3, 12).map(str)),
    st.one_of(st.text(max_size=6), st.floats(allow_nan=True).map(str)),
)
def test_star_knob_values_fail_only_with_value_error(arms, arm_len, cue):
    try:
        task = get_task("star", arms=arms, arm_len=arm_len, cue=cue)
    except ValueError:
        return
    p = task.problems(2, seed=1)
    assert len(p) == 2 and all(x.answer for x in p)


# ---------------------------------------------------------------------------- JSONL


line = st.one_of(
    st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=30),  # one line, encodable
    st.dictionaries(
        st.sampled_from(["output", "answer", "problem", "prompt", "problem_id", "x"]),
        st.one_of(st.text(max_size=10), st.integers(), st.none()),
        max_size=5,
    ).map(json.dumps),
    st.just('{"output": "try v1", "answer": "v1", "problem": "q"}'),
)


@FAST
@given(st.lists(line, max_size=8), st.booleans())
def test_trace_files_fail_only_with_a_named_error(tmp_path_factory, lines, final_newline):
    from mrt.config import read_jsonl
    from mrt.measure.analyze import read_traces
    from mrt.rundir import read_jsonl_whole
    from mrt.runloop import load_finished

    path = tmp_path_factory.mktemp("j") / "t.jsonl"
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""))
    try:
        groups = read_traces(str(path))
        assert groups and all(outs for _, outs in groups)
    except ValueError as e:
        assert str(path) in str(e)
    try:
        list(read_jsonl(path, ("output",)))
    except ValueError as e:
        assert re.search(r":\d+: ", str(e))
    rows, bad = read_jsonl_whole(path)  # never fails
    assert all(isinstance(r, dict) for _, r in rows)
    assert len(rows) + len(bad) <= len(lines)
    if lines and not final_newline and lines[-1].strip():
        assert len(lines) in bad  # a last line without its newline is torn, even if it parses
    done, _ = load_finished(path, 1)  # never fails; keeps only whole problems, rewrites the file
    assert all(len(v) == 1 for v in done.values())
    assert read_jsonl_whole(path)[1] == []


# ---------------------------------------------------------------------------- HTML


@pytest.fixture(scope="module")
def analysed(tiny_sampler, tiny_model_dir, tmp_path_factory):
    from mrt.measure.analyze import AnalyzeConfig
    from mrt.pipelines import analyze as run_analysis

    out = tmp_path_factory.mktemp("fuzz-report") / "run"
    cfg = AnalyzeConfig(
        model=str(tiny_model_dir),
        out=str(out),
        n_problems=2,
        traces_per_problem=2,
        answers_per_prefix=2,
        max_new_tokens=16,
        answer_tokens=4,
        extensions=0,
        maj_k=[1, 2],
        knobs=["arms=2", "arm_len=2"],
        progress_seconds=0,
    )
    summary = run_analysis(cfg, sampler=tiny_sampler)
    records = [json.loads(x) for x in (out / "traces.jsonl").read_text().splitlines()]
    return out, summary, records


ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "b", "i", "code", "div", "span",
    "table", "tr", "td", "th", "details", "summary", "img", "script", "a", "ul", "li", "br", "small", "thead",
    "tbody", "em", "sup", "svg", "button", "input", "select", "option", "label", "pre", "hr", "strong",
}  # fmt: skip


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self._in = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag == "script" else None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts.append(data)

    def handle_endtag(self, tag):
        self._in = None


nasty = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "</script><script>alert(1)</script>",
            "<!--<script>",
            '"><img src=x onerror=alert(1)>',
            "<b id='injected'>",
            "&amp;&lt;",
            "\u2028\u2029",
            "]]></style>",
        ]
    ),
)


def _fuzzed(records, pid, output, episode, answer):
    recs = json.loads(json.dumps(records))
    for r in recs:
        r["problem_id"] = pid + r["problem_id"]
        r["output"] = output + r["output"]
        r["answer"] = answer
        for e in r["episodes"][:1]:
            e["text"] = episode
        r["prefixes"][0]["answers"] = [answer] * len(r["prefixes"][0]["answers"])
    return recs


def _check_page(page: str, recs: list[dict], answer: str) -> None:
    parser = _Tags()
    parser.feed(page)
    assert {t for t, _ in parser.tags} <= ALLOWED_TAGS
    assert not any(a.get("id") == "injected" or any(k.startswith("on") for k in a) for _, a in parser.tags)
    data = [x for x in parser.scripts if x.startswith('{"runs"')]
    assert len(data) == 1 and "<" not in data[0]  # nothing in the data can end the script element
    rows = json.loads(data[0])["runs"][0]["traces"]  # the same data, unescaped by JSON
    assert {r["pid"] for r in rows} == {r["problem_id"] for r in recs}
    assert all(r["ans"] == answer[:200] for r in rows)


FUZZ_PAGE = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@settings(max_examples=150, **FUZZ_PAGE)
@given(pid=nasty, run=nasty, output=nasty, episode=nasty, answer=nasty)
def test_viewer_escapes_ids_run_names_and_trace_text(analysed, pid, run, output, episode, answer):
    from mrt.report.analysis import page
    from mrt.report.viewer import trace_rows, viewer_html

    recs = _fuzzed(analysed[2], pid, output, episode, answer)
    _check_page(page(run, viewer_html([(run, trace_rows(recs, 16))])), recs, answer)


@settings(max_examples=4, **FUZZ_PAGE)
@given(pid=nasty, model=nasty, output=nasty, episode=nasty, answer=nasty)
def test_report_escapes_ids_model_names_and_trace_text(analysed, tmp_path_factory, pid, model, output, episode, answer):
    """The whole report.html (plots too, so few examples)."""
    from mrt.report.analysis import write_report

    _, summary, records = analysed
    recs = _fuzzed(records, pid, output, episode, answer)
    s = {**summary, "model": model, "task": model}
    _check_page(write_report(tmp_path_factory.mktemp("page"), s, recs).read_text(), recs, answer)
