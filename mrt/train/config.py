"""One config for every training algorithm; YAML file plus command-line overrides."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from mrt.config import arg
from mrt.rundir import has_weights
from mrt.train.algos import get as get_algorithm
from mrt.train.algos import names

ALGOS = names()  # the registered training algorithms (mrt/train/algos/, one module each)


@dataclass
class TrainConfig:
    algo: str = arg("grpo", "one of: " + ", ".join(ALGOS))
    model: str = arg("", "model directory or hub id to start from (default: the shipped didactic base model)")
    task: str = arg("star", "task name")
    knobs: list[str] = arg([], "task knobs of the training problems, e.g. arms=2-4")
    out: str = arg("runs/train", "output directory (model, checkpoints, logs, summary.json)")
    config: str = arg("", "YAML file of settings; command-line flags override it")
    seed: int = arg(0, "random seed (sampling, data order)")
    max_steps: int = arg(100, "optimizer steps at most")
    token_budget: int = arg(
        0,
        "stop once this many tokens have been sampled in all (0: no limit); "
        "counts every sampled token, MRT's prefixes and J estimates included",
    )
    learning_rate: float = arg(2e-4, "AdamW learning rate (constant after warm-up)")
    warmup_steps: int = arg(5, "linear warm-up steps")
    prompts_per_step: int = arg(8, "problems per optimizer step (per process)")
    num_generations: int = arg(8, "rollouts per problem (the group G)")
    max_completion_length: int = arg(0, "token cap of a rollout (0: the task's default)")
    thinking_budget: int = arg(
        0,
        "binding thinking budget in tokens: a rollout's thinking is cut there, the "
        "termination text appended and the answer forced (0: none; every algo)",
    )
    thinking_budget_schedule: str = arg(
        "",
        "a budget curriculum: 'B1@F1,B2@F2,...' = thinking budget B_i from fraction F_i of --token-budget on "
        "(F1 = 0, F rising); e.g. 16@0,32@0.5 (B for the first half, 2B after); overrides --thinking-budget",
    )
    temperature: float = arg(1.0, "sampling temperature of rollouts, prefixes and J estimates")
    beta: float = arg(0.0, "KL coefficient against the starting model (0: no reference model)")
    scale_rewards: str = arg("group", "divide advantages by the group's reward std: group | batch | none")
    alpha: float = arg(1.0, "weight of the progress bonus (mrt, mrt-dense, mrt-online, mrt-backtrack; 0: GRPO)")
    mrt_advantage: str = arg(
        "outcome+progress",
        "mrt: 'outcome+progress' ((R - mean R) + alpha (R - R_term)) or "
        "'termination' (R - R_term, the authors' RL README; alpha must be 1); mrt-backtrack: the same with "
        "R_term = J(z0), 'authors' (reward R + alpha (R - J(z0)) under GRPO, their fork), or the filters "
        "'star' (correct revisions) and 'mrt-star' (correct revisions of the group's largest progress over z0)",
    )
    length_penalty: float = arg(0.5, "length-penalty coefficient: R = correct - coef * tokens / max tokens")
    format_penalty: float = arg(
        0.0,
        "subtract this from the reward of a rollout whose finished thinking breaks the task's format (the tree "
        "world's backtracking format, by the strict parser); grpo, length-penalty, mrt-dense and "
        "mrt-backtrack's RL forms",
    )
    mc_answers: int = arg(
        4,
        "forced answers per prefix to estimate J (mrt-dense, mrt-star; mrt-online's "
        "termination branches; anytime's summaries per budget; mrt-backtrack's J(z0))",
    )
    reuse_answers: bool = arg(
        True,
        "count a rollout's own answer as one of the mc_answers samples of J at its "
        "last prefix (the same distribution), so one fewer is sampled there",
    )
    max_episodes: int = arg(6, "mrt-online: progress is measured at the first this many episode ends")
    j_source: str = arg(
        "mc",
        "where J at episode boundaries comes from (mrt-dense, mrt-online, mrt-star): mc (forced answers "
        "everywhere), estimator (a trained progress estimator, --estimator), mixed (Monte Carlo at a "
        "share mc_share of the boundaries updates an on-policy estimator that gives J everywhere)",
    )
    mc_share: float = arg(0.05, "j_source=mixed: share of each step's boundaries measured by Monte Carlo (at least 1)")
    estimator: str = arg(
        "", "progress estimator directory (mrt estimator train) to start from; needed by j_source=estimator"
    )
    estimator_form: str = arg(
        "head",
        "j_source=mixed: head (a linear head on the policy's own hidden states, no gradient into "
        "the policy) or model (a separate value model, from --estimator or the starting policy)",
    )
    estimator_lr: float = arg(1e-3, "j_source=mixed: the estimator's Adam learning rate")
    estimator_updates: int = arg(4, "j_source=mixed: estimator optimizer steps per training step")
    estimator_buffer: int = arg(256, "j_source=mixed: recent Monte Carlo targets kept and replayed in updates")
    calibration_warn_ece: float = arg(
        0.2, "j_source=mixed: warn when the estimator's ECE against fresh Monte Carlo J passes this"
    )
    calibration_window: int = arg(10, "j_source=mixed: steps of Monte Carlo pairs pooled for that warning")
    budget_grid: int = arg(
        4, "anytime: budgets b_j = j * B / m, j = 1..m (B: thinking_budget, else the task's largest regret budget)"
    )
    budget_prior: str = arg(
        "uniform",
        "anytime: prior over the budget grid: uniform, linear (p_j ~ j), or m probabilities separated by commas",
    )
    answer_tokens: int = arg(0, "token cap of a forced answer (0: the task's default)")
    min_final_j: float = arg(
        0.5, "mrt-star: J after the last episode must reach this (mrt-backtrack mrt-star: after the revision)"
    )
    train_problems: int = arg(4096, "training problems")
    train_seed: int = arg(11, "seed of the training problem set (evaluation uses eval_seed)")
    sft_data: str = arg("", "sft: JSONL of {prompt, completion}; default: expert search traces of the didactic world")
    sft_style: str = arg(
        "expert",
        "sft on the didactic world: 'expert' (shortest searches), 'noisy' (the "
        "pretraining explorer), or hetero-low/-mid/-high (correct search traces of rising "
        "heterogeneity of styles and lengths)",
    )
    batch_size: int = arg(32, "sft: sequences per step")
    save_every: int = arg(20, "checkpoint every this many steps (resume after a kill)")
    logging_steps: int = arg(5, "log every this many steps")
    report_to: str = arg("tensorboard", "TRL/transformers report_to: tensorboard, wandb, none, ...")
    eval_problems: int = arg(64, "held-out problems in the final evaluation (0: skip it)")
    eval_seed: int = arg(0, "problem seed of the held-out evaluation set")
    eval_knobs: list[str] = arg([], "knobs of a second, harder held-out set (empty: none), e.g. arms=5-6 arm_len=4-5")
    eval_traces: int = arg(4, "traces per evaluation problem")
    eval_extensions: int = arg(4, "budget-forcing extensions in the evaluation (extrapolation past the natural end)")
    threads: int = arg(0, "torch CPU threads (0: torch's default)")
    vllm_mode: str = arg(
        "",
        "sample through TRL's vLLM integration: '' (off: transformers), colocate (an engine "
        "in each training process) or server (`trl vllm-serve`); rollouts and MRT's own samples "
        "(prefix traces, forced answers, J estimates) and the final evaluation all use it",
    )
    vllm_server_base_url: str = arg("", "vllm_mode=server: address of `trl vllm-serve` (default: TRL's)")
    vllm_memory: float = arg(
        0.0, "vllm_mode=colocate: the engine's memory fraction (0: TRL's 0.3 of the GPU; without a GPU 0.2 of RAM)"
    )
    vllm_eager: str = arg("auto", "vllm_mode=colocate: eager mode, no compilation: auto (on without a GPU), on or off")
    vllm_max_model_len: int = arg(0, "vllm_mode=colocate: engine context length (0: the model's)")
    bf16: bool = arg(False, "bfloat16 mixed precision (GPUs)")


def _coerce(name: str, kind, value):
    origin = typing.get_origin(kind)
    try:
        if origin is list:
            if isinstance(value, str):
                value = value.split()
            if not isinstance(value, (list, tuple)):
                raise TypeError
            inner = typing.get_args(kind)[0]
            return [inner(v) for v in value]
        if kind is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise TypeError
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"config key {name!r}: {value!r} is not a valid {getattr(kind, '__name__', kind)}") from None


def load_config(path: str | None, overrides: dict) -> TrainConfig:
    """Merge a YAML file with overrides; an unknown key or a bad value raises ValueError naming it."""
    import yaml

    hints = typing.get_type_hints(TrainConfig)
    values: dict = {}
    if path:
        try:
            data = yaml.safe_load(open(path)) or {}
        except FileNotFoundError:
            raise FileNotFoundError(f"config file {path!r} does not exist") from None
        except yaml.YAMLError as e:
            raise ValueError(f"config file {path!r} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"config file {path!r} must hold a mapping of settings")
        for key, value in data.items():
            key_ = str(key).replace("-", "_")
            if key_ not in hints:
                raise ValueError(f"unknown config key {key!r} in {path}; known keys: {', '.join(hints)}")
            values[key_] = _coerce(key_, hints[key_], value)
    values.update(overrides)
    cfg = TrainConfig(**values)
    validate(cfg)
    return cfg


# the algorithms whose advantages come from the reward (TRL's, or mrt-backtrack's R), so that a
# penalty in it counts; the others rebuild theirs from 0/1 correctness, or (mrt) would judge only
# the continuing half of a group and bias its termination baseline
FORMAT_PENALTY_ALGOS = ("grpo", "length-penalty", "mrt-dense", "mrt-backtrack")


def validate(cfg: TrainConfig) -> None:
    """The settings every algorithm shares, then the chosen algorithm's own (its ``validate``)."""
    if cfg.algo not in names():
        raise ValueError(f"config key 'algo': unknown algorithm {cfg.algo!r}; one of {', '.join(names())}")
    positive = (
        "max_steps",
        "prompts_per_step",
        "num_generations",
        "mc_answers",
        "train_problems",
        "batch_size",
        "save_every",
        "logging_steps",
        "eval_traces",
    )
    for name in positive:
        if getattr(cfg, name) < 1:
            raise ValueError(f"config key {name!r} must be >= 1, got {getattr(cfg, name)}")
    for name in (
        "token_budget",
        "max_completion_length",
        "answer_tokens",
        "eval_problems",
        "warmup_steps",
        "threads",
        "eval_extensions",
    ):
        if getattr(cfg, name) < 0:
            raise ValueError(f"config key {name!r} must be >= 0, got {getattr(cfg, name)}")
    if not cfg.learning_rate > 0:
        raise ValueError(f"config key 'learning_rate' must be > 0, got {cfg.learning_rate}")
    if cfg.format_penalty < 0:
        raise ValueError(f"config key 'format_penalty' must be >= 0, got {cfg.format_penalty}")
    if cfg.format_penalty and (
        cfg.algo not in FORMAT_PENALTY_ALGOS
        or (cfg.algo == "mrt-backtrack" and cfg.mrt_advantage in ("star", "mrt-star"))
    ):
        raise ValueError(
            f"config key 'format_penalty' applies to the rewards of {', '.join(FORMAT_PENALTY_ALGOS)} (mrt-backtrack's "
            f"RL forms), not to {cfg.algo} with mrt_advantage={cfg.mrt_advantage}"
        )
    if cfg.temperature <= 0:
        raise ValueError(f"config key 'temperature' must be > 0, got {cfg.temperature}")
    if cfg.scale_rewards not in ("group", "batch", "none"):
        raise ValueError(f"config key 'scale_rewards' must be group, batch or none, got {cfg.scale_rewards!r}")
    forms = ("outcome+progress", "termination") + (
        ("authors", "star", "mrt-star") if cfg.algo == "mrt-backtrack" else ()
    )
    if cfg.mrt_advantage not in forms:
        raise ValueError(f"config key 'mrt_advantage' must be one of {', '.join(forms)}, got {cfg.mrt_advantage!r}")
    if cfg.mrt_advantage == "termination" and cfg.alpha != 1.0:
        raise ValueError("config key 'alpha' has no role in mrt_advantage=termination (A = R - R_term); leave it at 1")
    if cfg.vllm_mode not in ("", "colocate", "server"):
        raise ValueError(f"config key 'vllm_mode' must be '', colocate or server, got {cfg.vllm_mode!r}")
    if cfg.vllm_eager not in ("auto", "on", "off"):
        raise ValueError(f"config key 'vllm_eager' must be auto, on or off, got {cfg.vllm_eager!r}")
    if not 0 <= cfg.vllm_memory < 1:
        raise ValueError(f"config key 'vllm_memory' must be in [0, 1), got {cfg.vllm_memory}")
    for name in ("max_episodes", "budget_grid"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"config key {name!r} must be >= 1, got {getattr(cfg, name)}")
    from mrt.train.progress import FORMS, J_SOURCES

    if cfg.j_source not in J_SOURCES:
        raise ValueError(f"config key 'j_source' must be one of {', '.join(J_SOURCES)}, got {cfg.j_source!r}")
    if not 0 <= cfg.mc_share <= 1:
        raise ValueError(f"config key 'mc_share' must be in [0, 1], got {cfg.mc_share}")
    if cfg.estimator_form not in FORMS:
        raise ValueError(f"config key 'estimator_form' must be one of {', '.join(FORMS)}, got {cfg.estimator_form!r}")
    if cfg.j_source != "mc" and not get_algorithm(cfg.algo).uses_j:
        users = ", ".join(n for n in names() if get_algorithm(n).uses_j)
        raise ValueError(f"config key 'j_source': {cfg.j_source} applies to {users}, not {cfg.algo}")
    if cfg.j_source == "estimator" and not cfg.estimator:
        raise ValueError("config key 'j_source': estimator needs a trained progress estimator (--estimator DIR)")
    if cfg.j_source == "estimator" and cfg.estimator_form != "model":
        raise ValueError(
            "config key 'estimator_form': j_source=estimator uses the trained model in --estimator; set model"
        )
    if cfg.estimator and not has_weights(cfg.estimator):
        raise ValueError(f"config key 'estimator': {cfg.estimator} holds no trained estimator (mrt estimator train)")
    for name in ("estimator_updates", "estimator_buffer", "calibration_window"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"config key {name!r} must be >= 1, got {getattr(cfg, name)}")
    if not cfg.estimator_lr > 0:
        raise ValueError(f"config key 'estimator_lr' must be > 0, got {cfg.estimator_lr}")
    if cfg.thinking_budget < 0:
        raise ValueError(f"config key 'thinking_budget' must be >= 0, got {cfg.thinking_budget}")
    if cfg.thinking_budget_schedule:
        parse_schedule(cfg.thinking_budget_schedule)
        if not cfg.token_budget:
            raise ValueError("config key 'thinking_budget_schedule' needs a token budget (--token-budget) to run over")
    own = get_algorithm(cfg.algo).validate
    if own is not None:
        own(cfg)


def as_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def parse_schedule(text: str) -> list[tuple[float, int]]:
    """``"16@0,32@0.5"`` -> [(0.0, 16), (0.5, 32)]: a thinking budget from each fraction of the token
    budget on; ValueError naming the problem for anything else."""
    out = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        budget, sep, frac = item.partition("@")
        try:
            b, f = int(budget), float(frac)
        except ValueError:
            b, f = -1, -1.0
        if not sep or b < 0 or not 0 <= f < 1:
            raise ValueError(
                f"config key 'thinking_budget_schedule': {item!r} must be BUDGET@FRACTION (a budget >= 0 in tokens, "
                "a fraction of the token budget in [0, 1))"
            )
        out.append((f, b))
    if not out or out[0][0] != 0 or any(b[0] <= a[0] for a, b in zip(out, out[1:])):
        raise ValueError("config key 'thinking_budget_schedule': fractions must start at 0 and rise, e.g. 16@0,32@0.5")
    return out


def budget_at(schedule: list[tuple[float, int]], fraction: float) -> int:
    """The thinking budget of a schedule (:func:`parse_schedule`) once ``fraction`` of the token
    budget is spent."""
    current = schedule[0][1]
    for f, b in schedule:
        if fraction >= f:
            current = b
    return current
