"""The third design's driver (benchmarks/didactic_v3.py): a settings file without a declared
primary endpoint is refused, as are tuning seeds that are final seeds and unequal tuning; the
primary endpoint's arithmetic on hand-built records; the commands it runs."""

from pathlib import Path

import pytest

from benchmarks import didactic_v3 as V

ROOT = Path(__file__).resolve().parents[2]


SETTINGS = (ROOT / "benchmarks" / "didactic_v3_settings.py").read_text()


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "settings.py"
    p.write_text(text)
    return p


def test_the_declared_design_loads_with_equal_tuning_and_disjoint_seeds():
    S = V.load_settings(V.DEFAULT_SETTINGS)
    assert {len(S.tune_grid(m)) for m in S.METHODS} == {9}
    assert not set(S.TUNE_SEEDS) & set(S.FINAL_SEEDS) and len(S.FINAL_SEEDS) >= 10
    assert S.PRIMARY["metric"] == f"regret_C{S.B}" and "grpo" not in S.PRIMARY["methods"]


def test_a_settings_file_without_a_primary_endpoint_is_refused(tmp_path, capsys):
    path = _write(tmp_path, SETTINGS.replace("PRIMARY = {", "SECONDARY = {"))
    with pytest.raises(V.SettingsError, match="no declared primary endpoint"):
        V.load_settings(path)
    with pytest.raises(SystemExit):
        V.parse(["--settings-file", str(path), "--stage", "plan"])
    assert "primary endpoint" in capsys.readouterr().err


def test_tuning_seeds_that_are_final_seeds_and_unequal_grids_are_refused(tmp_path):
    with pytest.raises(V.SettingsError, match="also final seeds"):
        V.load_settings(_write(tmp_path, SETTINGS.replace("TUNE_SEEDS = [100]", "TUNE_SEEDS = [3]")))
    with pytest.raises(V.SettingsError, match="unequal tuning"):
        V.load_settings(
            _write(tmp_path, SETTINGS.replace('("num_generations", [4, 8, 16])', '("num_generations", [8])'))
        )
    with pytest.raises(V.SettingsError, match="holm"):
        V.load_settings(_write(tmp_path, SETTINGS.replace('"correction": "holm"', '"correction": "none"')))


def test_primary_endpoint_by_hand():
    S = V.load_settings(V.DEFAULT_SETTINGS)
    probs = [f"p{i}" for i in range(6)]
    grpo = [{p: 0.40 + 0.01 * i + 0.02 * s for i, p in enumerate(probs)} for s in range(4)]
    per = {
        "grpo": grpo,
        "mrt": [{p: v - 0.03 for p, v in g.items()} for g in grpo],  # 0.03 lower everywhere
        "anytime": [
            {p: v + (0.02 if (i + s) % 2 else -0.02) for i, (p, v) in enumerate(g.items())} for s, g in enumerate(grpo)
        ],
    }
    out = V.primary_endpoint(S, per)
    k = len(S.PRIMARY["methods"])  # the declared methods; those without runs count with p = 1
    assert out["k"] == k and out["level"] == pytest.approx(1 - 0.05 / k)
    assert sorted(out["missing"]) == sorted(m for m in S.PRIMARY["methods"] if m not in per)
    mrt = out["methods"]["mrt"]
    assert mrt["mean"] == pytest.approx(-0.03) and mrt["ci"] == pytest.approx([-0.03, -0.03])
    assert mrt["verdict"] == "better than GRPO"
    assert out["methods"]["anytime"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert out["methods"]["anytime"]["verdict"] == "no difference shown"
    assert V.primary_endpoint(S, {"mrt": per["mrt"]})["missing"] == ["grpo"]


def test_the_commands_carry_each_methods_fixed_flags_and_tuned_values(tmp_path):
    ns = V.parse(["--out", str(tmp_path), "--stage", "plan"])
    cmd = V.train_cmd(ns, "mrt-dense", 100, {"learning_rate": 2e-4, "alpha": 0.5}, tmp_path / "t")
    i = cmd.index("--algo")
    assert cmd[i + 1] == "mrt-dense" and cmd[cmd.index("--j-source") + 1] == "mc"
    assert cmd[cmd.index("--alpha") + 1] == "0.5" and cmd[cmd.index("--token-budget") + 1] == "256000"
    assert "cue_at=" + ns.S.CUE_AT in cmd
    ev = V.eval_cmd(ns, "m", 3, ns.S.TEST, tmp_path / "e")
    assert ev[ev.index("--n-problems") + 1] == "128" and ev[ev.index("--traces-per-problem") + 1] == "8"
    plan = V.plan(ns)
    n = len(ns.S.METHODS)
    assert plan["tuning_runs"] == n * 9 + 1 and plan["final_runs"] == (n + 1) * len(ns.S.FINAL_SEEDS)
    assert not (tmp_path / "final").exists()  # planning starts nothing


def test_every_command_of_the_design_parses_and_validates(tmp_path):
    """Each tuning configuration's mrt train command and the evaluation command are accepted by the
    CLI and the training config's own checks, and the knobs make a star task with the hint inside
    the edge list (what a typo would otherwise stop only hours into the run)."""
    from mrt.cli import build_parser
    from mrt.tasks import get_task, parse_knobs
    from mrt.train.config import TrainConfig, load_config, validate

    ns = V.parse(["--out", str(tmp_path), "--stage", "plan"])
    parser = build_parser()
    for m in ns.S.METHODS:
        for values in ns.S.tune_grid(m):
            args = parser.parse_args(V.train_cmd(ns, m, 100, values, tmp_path / "t")[3:])
            over = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and k != "config"}
            cfg = load_config("", {**over, "config": ""})
            validate(cfg)
            assert cfg.token_budget == 256_000 and cfg.thinking_budget == ns.S.B
            assert cfg.algo == ns.S.METHODS[m]["algo"]
    ev = parser.parse_args(V.eval_cmd(ns, ns.S.SETTING["model"], 0, ns.S.TEST, tmp_path / "e")[3:])
    task = get_task("star", **parse_knobs(ev.knobs))
    assert task.cue_at == "dup" and task.cue == 0.75
    assert (ROOT / ns.S.SETTING["model"] / "model.safetensors").exists()


def test_the_report_reads_records_alone(tmp_path, capsys):
    """--stage report from run records only (no runs, no tuning table): the primary endpoint over
    the methods present, the secondary figures, a plot."""
    import json
    import random

    S = V.load_settings(V.DEFAULT_SETTINGS)
    keys = V.metric_keys(S)
    grid = V.curve_grid(S)
    rng = random.Random(0)
    recs = tmp_path / "records"
    recs.mkdir()
    shift = {"base": 0.05, "grpo": 0.0, "mrt": -0.02}  # regret: mrt lower, the base higher
    for m, d in shift.items():
        for seed in (0, 1, 2):
            pp = {}
            for k in keys:
                base = 0.5 if k.startswith("regret") else 0.6 if k != "output_tokens" else 20.0
                sign = 1 if k.startswith("regret") else -1
                pp[k] = {f"star-0-{i}": base + sign * d + rng.gauss(0, 0.01) for i in range(8)}
            rec = {
                "run": f"{m}-s{seed}",
                "accounting": "strict",
                "per_problem": pp,
                "curve": [min(0.7, 0.3 + 0.01 * g) - d for g in grid],
                "n_traces": 64,
                "skipped_traces": 0,
                "budget_forcing": {"1x": 0.7, "2x": 0.6},
                "train": {"sampled_tokens": 512000, "extra_sampled_tokens": 0, "steps": 300, "wall_seconds": 60},
                "hint": {"traces": 64, "goal_arm_first": 0.5, "hinted_traces": 50, "hinted_arm_first": 0.55},
            }
            (recs / f"{m}-s{seed}.json").write_text(json.dumps(rec))
    args = ["--out", str(tmp_path / "out"), "--records", str(recs), "--tuning", str(tmp_path / "none.json")]
    args += ["--tune-records", str(tmp_path / "no-tune-records")]
    args += [
        "--stage",
        "report",
        "--methods",
        "grpo",
        "mrt",
        "--seeds",
        "0",
        "1",
        "2",
        "--plots",
        str(tmp_path / "img"),
    ]
    V.main(args)
    doc = json.loads((tmp_path / "out" / "didactic_v3.json").read_text())
    r = doc["settings"][S.SETTING["name"]]
    prim = r["primary"]
    assert list(prim["methods"]) == ["mrt"] and prim["k"] == len(S.PRIMARY["methods"])
    assert prim["methods"]["mrt"]["mean"] == pytest.approx(-0.02, abs=0.01)
    assert prim["methods"]["mrt"]["verdict"] == "better than GRPO"
    assert r["methods"]["mrt"]["secondary"] and "token_efficiency_vs_grpo" in r["methods"]["mrt"]
    assert (tmp_path / "img" / f"{S.SETTING['name']}.png").exists()
    # accuracy: base 0.55, GRPO 0.60, MRT 0.62: the paper's ratio (0.62 - 0.55) / (0.60 - 0.55) = 1.4
    gain = r["methods"]["mrt"]["relative_gain_vs_grpo"]
    assert gain["mean"] == pytest.approx(1.4, abs=0.15) and gain["ci"][0] < gain["mean"] < gain["ci"][1]
    assert "relative_gain_vs_grpo" not in r["methods"]["grpo"]
    out = capsys.readouterr().out
    assert "Primary endpoint" in out and "The paper's relative gain" in out


def test_choice_from_the_tuning_table_and_ties():
    S = V.load_settings(V.DEFAULT_SETTINGS)
    grid = S.tune_grid("mrt")
    probs = [f"p{i}" for i in range(10)]

    def row(values, level, spread=0.0):
        pp = {p: level + (spread if i % 2 else -spread) for i, p in enumerate(probs)}
        return {"values": values, "criterion": sum(pp.values()) / len(pp), "per_problem": pp}

    clear = [row(v, 0.4) for v in grid[:-1]] + [row(grid[-1], 0.6)]
    c = V.choose(S, {"mrt": {"grid": clear}}, ["mrt"])["mrt"]
    assert c["values"] == grid[-1] and c["margin"] == pytest.approx(0.2) and not c["tie"]
    close = [row(v, 0.5, spread=0.1) for v in grid[:-1]] + [row(grid[-1], 0.501, spread=-0.1)]
    c = V.choose(S, {"mrt": {"grid": close}}, ["mrt"])["mrt"]
    assert c["values"] == grid[-1] and c["tie"]  # chosen, but reported as a tie
    with pytest.raises(SystemExit, match="8 of 9"):
        V.choose(S, {"mrt": {"grid": clear[:-1]}}, ["mrt"])


def test_a_tuning_run_leaves_a_record_and_the_table_needs_only_records(tiny_model_dir, tmp_path):
    """A finished tuning run (a real analysis of a real model on the validation split) leaves a
    committed record; with the working folder gone, the table is built from the records alone, and
    the run is not planned again."""
    import json
    import shutil

    from mrt.measure.analyze import AnalyzeConfig
    from mrt.pipelines import analyze as run_analysis

    out, recs = tmp_path / "out", tmp_path / "tune-records"
    ns = V.parse(["--out", str(out), "--tune-records", str(recs), "--records", str(tmp_path / "rec")])
    S = ns.S
    run = "grpo-4-s100"
    d = out / "tune" / run
    s = run_analysis(
        AnalyzeConfig(
            model=str(tiny_model_dir),
            out=str(d / "eval"),
            n_problems=3,
            traces_per_problem=2,
            answers_per_prefix=2,
            max_new_tokens=24,
            answer_tokens=6,
            extensions=0,
            knobs=S.SETTING["knobs"],
            budgets=S.SETTING["budgets"],
            problem_seed=S.VALIDATION["problem_seed"],
        )
    )
    (d / "train").mkdir(parents=True)
    (d / "train" / "summary.json").write_text(json.dumps({"steps": 3, "sampled_tokens": 900, "wall_seconds": 5.0}))
    rec = V.write_tune_record(ns, run)
    assert rec["values"] == S.tune_grid("grpo")[4] and rec["n_traces"] == s["n_traces"]
    crit = rec["criterion_per_problem"]
    assert len(crit) == 3 and all(0 <= v <= 1 for v in crit.values())
    shutil.rmtree(out)  # a fresh checkout: only the committed records are there
    table = V.tuning_table(ns)
    row = table["grpo"]["grid"][0]
    assert table["grpo"]["finished"] == "1/9" and row["values"] == S.tune_grid("grpo")[4]
    assert row["criterion"] == pytest.approx(sum(crit.values()) / 3) and row["steps"] == 3
    text = V.tuning_markdown(S, table)
    assert "(best so far)" in text and "| grpo | (1/9 finished)" in text and "| mrt | (0/9 finished)" in text
    assert len({line.count("|") for line in text.splitlines()}) == 1 and "hinted arm" in text  # one width
    S.SETTING = dict(S.SETTING, task="gym")  # a world without the hint: no hint columns
    text = V.tuning_markdown(S, table)
    assert len({line.count("|") for line in text.splitlines()}) == 1 and "hinted arm" not in text
    assert run not in [j[0].split("/")[1] for j in V.tune_jobs(ns)]
    assert len(V.tune_jobs(ns)) == 1 + 6 * 9 - 1  # the base and every other configuration


def test_lead_split_by_hand():
    """Two seeds, B = 2: GRPO's curve 0.5, 0.7, ..., the method's 0.8, 0.8, ...; declared regrets given."""
    S = V.load_settings(ROOT / "benchmarks" / "didactic_v3_settings.py")
    S.PRIMARY = dict(S.PRIMARY, metric="regret_C2")

    def rec(run, curve, regret, acc=0.8):
        pp = {"regret_C2": {"p": regret}, "accuracy": {"p": acc}, "natural_accuracy": {"p": acc}}
        return {"run": run, "curve": curve + [curve[-1]] * 300, "per_problem": pp, "n_traces": 8, "skipped_traces": 0}

    recs = {
        "grpo": [rec("grpo-s0", [0.5, 0.7], 0.4), rec("grpo-s1", [0.5, 0.7], 0.4)],
        "m": [rec("m-s0", [0.8, 0.8], 0.2), rec("m-s1", [0.8, 0.8], 0.2)],
    }
    ls = V.lead_split(S, recs)
    v = ls["methods"]["m"]["vs_grpo"]
    assert v["regret"]["mean"] == pytest.approx(-0.2)
    assert v["start"]["mean"] == pytest.approx(-0.3)  # (1 - 0.8) - (1 - 0.5)
    assert v["progress"]["mean"] == pytest.approx(-0.1)  # m: 0.2 - 0.2 = 0; grpo: 0.5 - 0.4 = 0.1
    assert v["share_from_the_answer_before_thinking"] == pytest.approx(1.5)
    # step curve over [0, 2): grpo 1 - (0.5 + 0.7) / 2 = 0.4, m 0.2
    assert v["regret_step"]["mean"] == pytest.approx(-0.2) and v["seeds_better_step"] == 2
    assert v["curve"][0]["mean"] == pytest.approx(0.3)


def test_a_design_with_one_configuration_per_method_chooses_it():
    """The curriculum takes the fourth design's choices: one configuration per arm, nothing to rank."""
    S = V.load_settings(ROOT / "benchmarks" / "didactic_v3_settings.py")
    row = {"values": {"learning_rate": 1e-4}, "criterion": 0.5, "per_problem": {"p": 0.5}}
    S.tune_grid = lambda m: [row["values"]]
    c = V.choose(S, {"mrt": {"grid": [row]}}, ["mrt"])["mrt"]
    assert c["values"] == {"learning_rate": 1e-4} and c["tie"] is False and c["margin"] is None


def test_a_harder_held_out_split_is_recorded_and_compared(tiny_model_dir, tmp_path):
    """A design with ``HARD`` evaluates each final run on it too (real analyses of a real model):
    the record carries the split's per-problem figures, and the results compare methods on it."""
    import json

    from mrt.measure.analyze import AnalyzeConfig
    from mrt.pipelines import analyze as run_analysis

    text = SETTINGS.replace(
        'CRITERION = "regret_at_B"',
        'HARD = {"knobs": ["arms=5-6", "arm_len=4-5"], "problem_seed": 0, "n_problems": 3, "traces": 2, '
        '"extensions": 0}\nCRITERION = "regret_at_B"',
    )
    out = tmp_path / "out"
    flags = ["--out", str(out), "--records", str(tmp_path / "rec"), "--seeds", "0", "--methods", "grpo", "mrt"]
    ns = V.parse(["--settings-file", str(_write(tmp_path, text)), *flags])
    S = ns.S
    for i, run in enumerate(("grpo-s0", "mrt-s0")):
        d = out / "final" / run
        for sub, knobs in (("eval", S.SETTING["knobs"]), ("eval-hard", S.HARD["knobs"])):
            cfg = AnalyzeConfig(
                model=str(tiny_model_dir),
                out=str(d / sub),
                n_problems=3,
                traces_per_problem=2,
                answers_per_prefix=2,
                max_new_tokens=24,
                answer_tokens=6,
                extensions=0,
                knobs=knobs,
                budgets=S.SETTING["budgets"],
                seed=i,
            )
            run_analysis(cfg)
        (d / "train").mkdir(parents=True)
        (d / "train" / "summary.json").write_text(json.dumps({"steps": 3, "sampled_tokens": 900}))
        rec = V.write_record(ns, run)
        traces = [json.loads(x) for x in (d / "eval-hard" / "traces.jsonl").read_text().splitlines()]
        assert set(rec["hard"]) == set(rec["per_problem"]) and len(rec["hard"]["accuracy"]) == 3
        mean = sum(float(t["correct"]) if t["status"] == "ok" else 0.0 for t in traces) / len(traces)
        assert sum(rec["hard"]["natural_accuracy"].values()) / 3 == pytest.approx(mean, abs=1e-3)
    r = V.results(ns)
    d = r["methods"]["mrt"]["hard_vs_grpo"]["natural_accuracy"]
    grpo, mrt = (json.loads((tmp_path / "rec" / f"{m}-s0.json").read_text()) for m in ("grpo", "mrt"))
    by_hand = (
        sum(
            mrt["hard"]["natural_accuracy"][p] - grpo["hard"]["natural_accuracy"][p]
            for p in grpo["hard"]["natural_accuracy"]
        )
        / 3
    )
    assert d["mean"] == pytest.approx(by_hand, abs=1e-9)
    assert "Harder held-out split" in V.markdown({"settings": {S.SETTING["name"]: r}})
