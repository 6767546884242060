"""The trace viewer: every analysed trace, its text with each episode shaded by its progress.

:func:`trace_rows` turns ``mrt analyze`` records into compact rows; :func:`viewer_html` returns
an HTML fragment (styles, the data as JSON, a script; no network) that lists the traces with
filters (correct/wrong, problem, length) and sorting (regret, tokens), 50 to a page, and shows
a chosen trace: its text with every episode coloured by its progress (green: J rose, red: J
fell, grey: no change), J before and after each episode with its interval, the forced answers
sampled at each prefix with their grades, and budget forcing past the natural end. Episodes
longer than 600 characters are collapsed (click to expand). With several runs (``mrt compare``)
a problem's traces from every run are shown side by side.
"""

from __future__ import annotations

import json
from collections import Counter

ANSWER_CHARS = 120  # forced answers are shown cut to this length
MAX_TEXT = 20000  # an episode's text is cut to this many characters (its start and end)


def _answers(prefix: dict) -> list:
    """Distinct forced answers at a prefix: [answer, count, correct], most frequent first."""
    ans = prefix.get("answers") or []
    grades = prefix.get("grades") or []
    counts = Counter(zip([(a if a is not None else "(no answer)")[:ANSWER_CHARS] for a in ans], grades))
    return [[a, n, bool(g)] for (a, g), n in counts.most_common()]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT // 2] + " […] " + text[-MAX_TEXT // 2 :]


def trace_rows(records: list, budget: float | None = None) -> list[dict]:
    """Compact viewer rows of analysis trace records; ``budget``: the token budget of the regret shown."""
    from mrt.core.figures import trace_regret
    from mrt.core.trace import as_records

    rows = []
    for r in as_records(records):
        pre, output, pos = r.prefixes, r.output, 0
        eps = []
        for i, e in enumerate(r.episodes):
            after = pre[i + 1]
            at = output.find(e["text"], pos)
            if at >= 0:  # the episode as it stands in the output, with the space before it
                shown, pos = output[pos : at + len(e["text"])], at + len(e["text"])
            else:
                shown = (" " if i else "") + e["text"]
            eps.append(
                {
                    "x": _cut(shown),
                    "t": e["end"] - e["start"],
                    "j": after["j"],
                    "ci": after.get("ci"),
                    "p": r.progress[i],
                    "a": _answers(after),
                    "n": bool(after.get("natural_end")),
                }
            )
        rest = output[pos:]
        rows.append(
            {
                "pid": r.problem_id,
                "tr": r.trace,
                "ok": bool(r.correct),
                "n": r.n_output_tokens,
                "th": r.n_thinking_tokens,
                "st": r.status,
                "ans": (r.answer or "")[:200],
                "ref": str(r.reference)[:200],
                "reg": round(trace_regret(r, budget, "thinking"), 4) if budget else None,
                "j0": {"j": pre[0]["j"], "ci": pre[0].get("ci"), "a": _answers(pre[0])},
                "eps": eps,
                "rest": _cut(rest),
                "ext": [{"t": x["tokens"], "j": x["j"], "ci": x.get("ci")} for x in r.extension or []],
            }
        )
    return rows


def _json(data) -> str:
    """JSON to embed in a ``<script>`` element: no ``<``, ``>`` or ``&`` in it (as ``\\u`` escapes,
    the same data to ``JSON.parse``), so no trace text, problem id or model name can close the
    element or open a comment there."""
    text = json.dumps(data, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


CSS = """
.mv{font-family:system-ui,sans-serif;font-size:14px}
.mv .bar{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:6px 0}
.mv table.list{border-collapse:collapse;width:100%}
.mv table.list td,.mv table.list th{border-bottom:1px solid #e4e4e4;padding:3px 6px;text-align:left}
.mv table.list tr.row{cursor:pointer}.mv table.list tr.row:hover{background:#f3f6ff}
.mv table.list tr.sel{background:#e6edff}
.mv .ok{color:#1a7f37}.mv .bad{color:#c62828}
.mv .trace{border:1px solid #ddd;border-radius:6px;padding:10px;margin:8px 0;background:#fff}
.mv .text{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:13px;line-height:1.6}
.mv .ep{border-radius:3px;padding:1px 0;cursor:pointer;outline:1px solid rgba(0,0,0,.08)}
.mv .ep.on{outline:2px solid #1f4fd1}
.mv .more{color:#1f4fd1;cursor:pointer;font-style:italic}
.mv .detail{background:#fafafa;border:1px solid #e4e4e4;border-radius:4px;padding:6px 8px;margin-top:8px}
.mv .legend span{display:inline-block;padding:0 6px;border-radius:3px;margin-right:4px}
.mv .cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:10px}
.mv .muted{color:#666}.mv .rest{color:#444}
.mv .listbox{max-height:330px;overflow:auto;border:1px solid #eee}
"""

JS = r"""
(function(){
const D = JSON.parse(document.getElementById('mrt-viewer-data').textContent);
const root = document.getElementById('mrt-viewer');
const runs = D.runs, multi = runs.length > 1, PAGE = 50;
const st = {ok: 'all', pid: '', minT: '', maxT: '', sort: 'reg-desc', page: 0, sel: null};
function el(tag, attrs, ...kids){
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'style') e.style.cssText = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
function f2(x){ return x === null || x === undefined ? '–' : Number(x).toFixed(2); }
function ci(c){ return c ? ' [' + f2(c[0]) + ', ' + f2(c[1]) + ']' : ''; }
function shade(p){
  if (Math.abs(p) < 1e-9) return 'rgba(150,150,150,0.18)';
  const a = 0.15 + 0.6 * Math.min(1, Math.abs(p));
  return p > 0 ? 'rgba(30,160,60,' + a + ')' : 'rgba(210,40,40,' + a + ')';
}
function answers(list){
  const d = el('div', {class: 'answers'});
  for (const [a, n, g] of list) d.append(el('div', {class: g ? 'ok' : 'bad'}, (g ? '✓ ' : '✗ ') + n + '× ', el('code', {}, a)));
  return d;
}
function episodeDetail(t, i){
  const before = i === 0 ? t.j0 : t.eps[i - 1], e = t.eps[i];
  return el('div', {class: 'detail'},
    el('div', {}, 'episode ' + (i + 1) + ' of ' + t.eps.length + ' · ' + e.t + ' tokens · progress ',
       el('b', {class: e.p > 0 ? 'ok' : (e.p < 0 ? 'bad' : '')}, (e.p >= 0 ? '+' : '') + f2(e.p))),
    el('div', {}, 'J before: ' + f2(before.j) + ci(before.ci) + ' → J after: ' + f2(e.j) + ci(e.ci)
       + (e.n ? ' (natural end: the answer follows)' : '')),
    el('div', {class: 'muted'}, 'forced answers after this episode:'), answers(e.a));
}
function traceView(t, run){
  const box = el('div', {class: 'trace'});
  const head = el('div', {},
    el('b', {}, (multi ? run + ' · ' : '') + t.pid + ' / trace ' + t.tr), ' · ',
    el('span', {class: t.ok ? 'ok' : 'bad'}, t.ok ? 'correct' : 'wrong'),
    ' · ' + t.n + ' output tokens (' + t.th + ' thinking) · ' + t.eps.length + ' episodes'
    + (t.reg !== null ? ' · regret ' + f2(t.reg) : '') + (t.st !== 'ok' ? ' · ' + t.st : ''));
  box.append(head, el('div', {class: 'muted'}, 'reference: ', el('code', {}, t.ref), ' · answer: ', el('code', {}, t.ans)));
  const j0 = el('div', {class: 'muted'}, 'J with no thinking: ' + f2(t.j0.j) + ci(t.j0.ci) + ' ');
  const detail = el('div', {});
  const show0 = el('span', {class: 'more'}, '(answers)');
  show0.addEventListener('click', () => { detail.replaceChildren(el('div', {class: 'detail'}, 'forced answers with no thinking:', answers(t.j0.a))); });
  j0.append(show0);
  box.append(j0);
  const text = el('div', {class: 'text'});
  t.eps.forEach((e, i) => {
    const long = e.x.length > 600;
    const span = el('span', {class: 'ep', style: 'background:' + shade(e.p), title: 'episode ' + (i + 1) + ': J ' + f2(i ? t.eps[i - 1].j : t.j0.j) + ' → ' + f2(e.j) + ' (progress ' + f2(e.p) + ')', 'data-ep': i});
    if (long) {
      span.append(e.x.slice(0, 250));
      const more = el('span', {class: 'more'}, ' […' + (e.x.length - 500) + ' characters: show] ');
      more.addEventListener('click', ev => { ev.stopPropagation(); more.replaceWith(e.x.slice(250, e.x.length - 250)); });
      span.append(more, e.x.slice(e.x.length - 250));
    } else span.append(e.x);
    span.addEventListener('click', () => {
      text.querySelectorAll('.ep.on').forEach(s => s.classList.remove('on'));
      span.classList.add('on');
      detail.replaceChildren(episodeDetail(t, i));
    });
    text.append(span);
  });
  if (t.rest) text.append(el('span', {class: 'rest'}, t.rest));
  box.append(text, detail);
  if (t.ext.length) box.append(el('div', {class: 'muted'}, 'budget forcing past the natural end: '
    + t.ext.map(x => '+' + x.t + ' tokens → J ' + f2(x.j)).join(' · ')));
  return box;
}
function filtered(){
  let rows = [];
  runs.forEach((r, ri) => r.traces.forEach((t, ti) => rows.push([ri, ti, t])));
  rows = rows.filter(([ri, ti, t]) => (st.ok === 'all' || (st.ok === 'correct') === t.ok)
    && (!st.pid || t.pid.includes(st.pid)) && (st.minT === '' || t.n >= +st.minT) && (st.maxT === '' || t.n <= +st.maxT));
  const [key, dir] = st.sort.split('-'), sgn = dir === 'desc' ? -1 : 1;
  rows.sort((a, b) => sgn * (((key === 'reg' ? a[2].reg : a[2].n) || 0) - ((key === 'reg' ? b[2].reg : b[2].n) || 0)));
  return rows;
}
const bar = el('div', {class: 'bar'});
const list = el('div', {}), pager = el('div', {class: 'bar'}), view = el('div', {});
function input(label, key, attrs){
  const i = el('input', Object.assign({value: st[key]}, attrs || {}));
  i.addEventListener('input', () => { st[key] = i.value; st.page = 0; draw(); });
  return el('label', {}, label + ' ', i);
}
function select(label, key, opts){
  const s = el('select', {name: key});
  for (const [v, t] of opts) { const o = el('option', {value: v}, t); if (v === st[key]) o.selected = true; s.append(o); }
  s.addEventListener('change', () => { st[key] = s.value; st.page = 0; draw(); });
  return el('label', {}, label + ' ', s);
}
bar.append(select('show', 'ok', [['all', 'all traces'], ['correct', 'correct'], ['wrong', 'wrong']]),
  input('problem', 'pid', {size: 12, placeholder: 'id contains', name: 'pid'}),
  input('tokens ≥', 'minT', {size: 5, name: 'minT'}), input('≤', 'maxT', {size: 5, name: 'maxT'}),
  select('sort by', 'sort', [['reg-desc', 'regret, highest first'], ['reg-asc', 'regret, lowest first'],
                             ['n-desc', 'tokens, most first'], ['n-asc', 'tokens, fewest first']]),
  el('span', {class: 'legend'}, 'episodes: ', el('span', {style: 'background:' + shade(0.6)}, 'J rose'),
     el('span', {style: 'background:' + shade(0)}, 'no change'), el('span', {style: 'background:' + shade(-0.6)}, 'J fell')));
function openTrace(ri, ti){
  st.sel = ri + ':' + ti;
  const t = runs[ri].traces[ti];
  if (multi) {
    const cols = el('div', {class: 'cols', style: 'grid-template-columns:repeat(' + runs.length + ',minmax(0,1fr))'});
    runs.forEach(r => {  // one column per run, its traces of the problem stacked
      const col = el('div', {class: 'col'}, el('h4', {}, r.name));
      r.traces.filter(x => x.pid === t.pid).slice(0, 4).forEach(x => col.append(traceView(x, r.name)));
      cols.append(col);
    });
    view.replaceChildren(el('h3', {}, 'problem ' + t.pid + ' in every run'), cols);
  } else view.replaceChildren(traceView(t, runs[ri].name));
  draw(true);
}
function draw(keepView){
  const rows = filtered(), pages = Math.max(1, Math.ceil(rows.length / PAGE));
  st.page = Math.min(st.page, pages - 1);
  const tbl = el('table', {class: 'list'});
  tbl.append(el('tr', {}, ...(multi ? ['run'] : []).concat(['problem', 'trace', 'result', 'tokens', 'episodes', 'regret']).map(h => el('th', {}, h))));
  for (const [ri, ti, t] of rows.slice(st.page * PAGE, (st.page + 1) * PAGE)) {
    const tr = el('tr', {class: 'row' + (st.sel === ri + ':' + ti ? ' sel' : ''), 'data-pid': t.pid});
    if (multi) tr.append(el('td', {}, runs[ri].name));
    tr.append(el('td', {}, t.pid), el('td', {}, t.tr), el('td', {class: t.ok ? 'ok' : 'bad'}, t.ok ? 'correct' : 'wrong'),
              el('td', {}, t.n), el('td', {}, t.eps.length), el('td', {}, f2(t.reg)));
    tr.addEventListener('click', () => openTrace(ri, ti));
    tbl.append(tr);
  }
  list.replaceChildren(el('div', {class: 'listbox'}, tbl));
  const prev = el('button', {}, '← previous'), next = el('button', {}, 'next →');
  prev.disabled = st.page === 0; next.disabled = st.page >= pages - 1;
  prev.addEventListener('click', () => { st.page--; draw(true); });
  next.addEventListener('click', () => { st.page++; draw(true); });
  pager.replaceChildren(prev, el('span', {class: 'count'}, rows.length + ' traces · page ' + (st.page + 1) + ' of ' + pages), next);
  if (!keepView && !rows.length) view.replaceChildren(el('p', {class: 'muted'}, 'no trace matches the filters'));
}
root.append(bar, pager, list, view);
draw();
const first = filtered()[0];
if (first) openTrace(first[0], first[1]);
root.setAttribute('data-ready', '1');
})();
"""


def viewer_html(runs: list[tuple[str, list[dict]]]) -> str:
    """The viewer for ``[(run name, trace_rows(...)), ...]`` as one HTML fragment."""
    data = {"runs": [{"name": name, "traces": rows} for name, rows in runs]}
    return (
        f'<style>{CSS}</style><div id="mrt-viewer" class="mv"></div>'
        f'<script type="application/json" id="mrt-viewer-data">{_json(data)}</script>'
        f"<script>{JS}</script>"
    )
