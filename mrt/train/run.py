"""``mrt train``: fine-tune a model with one algorithm, then evaluate it with the analysis module.

Output (``OUT``): ``run.json`` (settings; a rerun with the same settings resumes),
``checkpoints/checkpoint-N`` (TRL/transformers checkpoints, plus ``mrt_state.json``),
``model/`` (``save_pretrained``), ``logs/`` (TensorBoard), ``train_log.jsonl`` (the trainer's
log history), ``eval/`` and ``eval-hard/`` (``mrt analyze`` outputs) and ``summary.json``.
One process writes the directory at a time (a lock); a checkpoint cut by a kill while it was
being written is removed and training resumes from the one before (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from mrt.config import claim_run_dir
from mrt.rundir import kill_point, one_writer, publish_dir, write_atomic, write_json
from mrt.train.algos import get as get_algorithm
from mrt.train.config import TrainConfig, as_dict

log = logging.getLogger(__name__)
STATE_FILE = "mrt_state.json"


def _settings(cfg: TrainConfig) -> dict:
    s = as_dict(cfg)
    for k in (
        "out",
        "config",
        "eval_problems",
        "eval_knobs",
        "eval_traces",
        "eval_extensions",
        "report_to",
        "threads",
        "logging_steps",
        "vllm_memory",
        "vllm_eager",
        "vllm_max_model_len",
    ):
        s.pop(k)
    return s


def _load(cfg: TrainConfig):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mrt.samplers.hf import check_model_path
    from mrt.tasks.tiny import shipped_model_path

    path = cfg.model or str(shipped_model_path())
    check_model_path(path)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32")
    return path, model, tok


def _dataset(task, cfg: TrainConfig, tok):
    """Training prompts as rendered text (chat template applied); the trainer encodes them with
    one BOS (see :mod:`mrt.chat`)."""
    from datasets import Dataset

    probs = task.problems(cfg.train_problems, seed=cfg.train_seed)
    return Dataset.from_list([{"prompt": task.render(p, tok), "problem_id": p.id, "answer": p.answer} for p in probs])


def _sft_dataset(task, cfg: TrainConfig):
    """Prompt/completion pairs: a JSONL file, or search traces of the didactic world."""
    from datasets import Dataset

    if cfg.sft_data:
        from mrt.config import read_jsonl

        rows = [
            {"prompt": row["prompt"], "completion": row["completion"]}
            for _, row in read_jsonl(cfg.sft_data, ("prompt", "completion"))
        ]
        if not rows:
            raise ValueError(f"{cfg.sft_data} holds no examples")
        return Dataset.from_list(rows)
    from mrt.tasks import star

    if not isinstance(task, star.StarTask):
        raise ValueError("sft needs --sft-data FILE for tasks other than the didactic world")
    if getattr(task, "format", "plain") == "backtrack":
        raise ValueError("sft on the backtracking format needs --sft-data FILE (write one with mrt warmstart)")
    rng = random.Random(f"sft-{cfg.seed}")
    rows = []
    for p in task.problems(cfg.train_problems, seed=cfg.train_seed):
        g = task.graph(p.meta["seed"])
        if cfg.sft_style.startswith("hetero-"):
            words = star.correct_trace(g, rng, cfg.sft_style.split("-", 1)[1])
        else:
            words = star.explore(g, rng, star.EXPERT if cfg.sft_style == "expert" else None)
        rows.append({"prompt": p.prompt, "completion": " " + " ".join(words)})
    return Dataset.from_list(rows)


def _last_checkpoint(ckpt_dir: Path, main_proc: bool = True) -> str | None:
    """The last complete checkpoint: ``mrt_state.json`` is written after the trainer's own files,
    so a checkpoint without it was cut by a kill (or a full disk) while being written; such ones
    are removed (by the main process) and training resumes from the one before."""
    import re
    import shutil

    if not ckpt_dir.is_dir():
        return None
    steps = sorted(
        (int(m.group(1)), d)
        for d in ckpt_dir.iterdir()
        if d.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", d.name))
    )
    last = None
    for _, d in steps:
        if (d / STATE_FILE).is_file():
            last = d
        elif main_proc:
            log.warning("%s was not written to the end (killed while saving?): removed, resuming before it", d)
            shutil.rmtree(d, ignore_errors=True)
    return str(last) if last else None


def _callbacks(cfg: TrainConfig, counters, trainer=None):
    from transformers import TrainerCallback

    class Budget(TrainerCallback):
        """Stops at the token budget; writes the sampled-token counters into each checkpoint."""

        def on_step_end(self, args, state, control, **kw):
            if cfg.token_budget and counters() >= cfg.token_budget:
                control.should_training_stop = True
                control.should_save = True

        def on_save(self, args, state, control, **kw):
            d = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if d.is_dir():
                if getattr(trainer, "_estimator", None) is not None:  # the on-policy progress estimator
                    trainer._estimator.save(d)
                write_json(d / STATE_FILE, counters(state=True), indent=None)  # last, whole: the checkpoint is whole
                kill_point("checkpoint", state.global_step)  # tests only (MRT_KILL_AT)

    return [Budget()]


def warn_long_answers(cfg: TrainConfig, task, max_len: int) -> bool:
    """Warn (and say so) when a forced answer may be longer than a whole rollout: the task's
    default cap (4,096 tokens for text tasks, the MRT authors' for 16K-token traces) left in place
    under short rollouts lets one answer that rambles on cost that many sampled tokens, minutes of
    generation and an update over that many positions."""
    cap = cfg.answer_tokens or task.default_answer_tokens
    forces = cfg.thinking_budget > 0 or cfg.algo not in ("grpo", "length-penalty")
    if not forces or cap <= max_len:
        return False
    log.warning(
        "a forced answer may run to %d tokens (%s) while a rollout stops at %d (max_completion_length): one "
        "that rambles on costs up to %d sampled tokens of the budget; consider --answer-tokens below %d",
        cap,
        "--answer-tokens" if cfg.answer_tokens else "the task's default",
        max_len,
        cap,
        max_len,
    )
    return True


def _build_trainer(cfg: TrainConfig, task, model, tok, out: Path):
    import torch

    cpu = not torch.cuda.is_available()
    common = dict(
        output_dir=str(out / "checkpoints"),
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=cfg.warmup_steps,
        weight_decay=0.0,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_every,
        save_strategy="steps",
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=cfg.bf16 and not cpu,
        use_cpu=cpu,
        dataloader_num_workers=0,
        disable_tqdm=False,
        save_only_model=False,
    )
    if get_algorithm(cfg.algo).trainer == "sft":
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(
            per_device_train_batch_size=cfg.batch_size, completion_only_loss=True, max_length=None, **common
        )
        _fix_logging_dir(args, out)
        return SFTTrainer(model=model, args=args, train_dataset=_sft_dataset(task, cfg), processing_class=tok)
    from trl import GRPOConfig

    from mrt.train.trainer import MRTTrainer, make_reward_fn

    max_len = cfg.max_completion_length or task.default_max_new_tokens
    warn_long_answers(cfg, task, max_len)
    args = GRPOConfig(
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,
        num_generations=cfg.num_generations,
        max_completion_length=max_len,
        temperature=cfg.temperature,
        beta=cfg.beta,
        scale_rewards=cfg.scale_rewards,
        steps_per_generation=1,
        num_iterations=1,
        remove_unused_columns=False,
        **_vllm_args(cfg),
        **common,
    )
    _fix_logging_dir(args, out)
    record: dict = {}
    reward = make_reward_fn(task, tok, cfg.algo, max_len, cfg.length_penalty, record, cfg.format_penalty)
    with _engine_options(cfg):
        return MRTTrainer(
            model=model,
            reward_funcs=[reward],
            args=args,
            train_dataset=_dataset(task, cfg, tok),
            processing_class=tok,
            mrt_config=cfg,
            task=task,
            reward_record=record,
        )


def _vllm_args(cfg: TrainConfig) -> dict:
    """TRL's vLLM settings (see docs/scale.md)."""
    if not cfg.vllm_mode:
        return {}
    kw = {"use_vllm": True, "vllm_mode": cfg.vllm_mode}
    if cfg.vllm_server_base_url:
        kw["vllm_server_base_url"] = cfg.vllm_server_base_url
    if cfg.vllm_mode == "colocate":
        from mrt.samplers.vllm import has_gpu

        kw["vllm_gpu_memory_utilization"] = cfg.vllm_memory or (0.3 if has_gpu() else 0.2)
        if cfg.vllm_max_model_len:
            kw["vllm_max_model_length"] = cfg.vllm_max_model_len
    return kw


@contextlib.contextmanager
def _engine_options(cfg: TrainConfig):
    """TRL builds its colocated engine itself and has no field for eager mode or dtype; this adds
    them to its ``LLM(...)`` call (eager and float32 without a GPU, as ``mrt.samplers.vllm``)."""
    if cfg.vllm_mode != "colocate":
        yield
        return
    from trl.generation import vllm_generation as vg

    from mrt.samplers.vllm import cpu_in_process, engine_settings, has_gpu

    if not has_gpu():
        cpu_in_process()
    extra = engine_settings(eager=cfg.vllm_eager)
    extra = {"enforce_eager": extra["enforce_eager"], "dtype": extra["dtype"]}
    original = vg.LLM

    def llm(*a, **kw):
        try:
            return original(*a, **{**extra, **kw})
        except Exception as e:
            from mrt.samplers.errors import SamplerError

            raise SamplerError(
                f"TRL's colocated vLLM engine did not start ({type(e).__name__}: {str(e)[-300:]}); "
                "lower --vllm-memory or --vllm-max-model-len, or check --vllm-eager"
            ) from e

    vg.LLM = llm
    try:
        yield
    finally:
        vg.LLM = original


def _fix_logging_dir(args, out: Path):
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "logs")  # transformers 5 reads it at train start
    if hasattr(args, "logging_dir"):  # transformers 4
        args.logging_dir = str(out / "logs")


def token_split(trainer, steps: int) -> dict:
    """Sampled tokens per step by use: rollouts (TRL's, with their answers forced at a thinking
    budget), forced answers that measure J (Monte Carlo; anytime's summaries), the rest of MRT's
    own samples (mrt's prefix traces), and the token positions the progress estimator processed
    (forward passes and updates: computed, not sampled)."""
    total = getattr(trainer, "tokens_sampled", 0)
    extra = getattr(trainer, "extra_tokens", 0)
    forced = getattr(trainer, "forced_tokens", 0)
    budget = getattr(trainer, "budget_tokens", 0)
    est = getattr(trainer, "_estimator", None)
    s = max(steps, 1)
    return {
        "rollouts_per_step": round((total - extra + budget) / s, 1),
        "forced_answers_per_step": round(forced / s, 1),
        "other_mrt_samples_per_step": round((extra - forced - budget) / s, 1),
        "estimator_tokens_processed_per_step": round(est.tokens_processed / s, 1) if est is not None else 0.0,
    }


def eval_budgets(cfg: TrainConfig, task) -> list[int]:
    """The task's regret budgets, or fractions of the rollout cap when all of them exceed it."""
    cap = cfg.max_completion_length
    if not cap or any(b <= cap for b in task.default_budgets):
        return []
    return sorted({max(1, cap // 4), max(1, cap // 2), cap})


def eval_sampler(trainer, model, tok):
    """The final evaluation samples on the colocated engine when training used one (weights synced
    first), else with transformers (also under ``vllm_mode=server``: ``trl vllm-serve`` has no
    endpoint for token-id prompts with stop strings, so that is logged)."""
    import torch

    if getattr(trainer, "use_vllm", False) and trainer.vllm_generation.mode == "colocate":
        from mrt.samplers.vllm import VLLMSampler

        trainer._sync_engine()
        return VLLMSampler(trainer.vllm_generation.llm, tok)
    if getattr(trainer, "use_vllm", False):
        log.info("evaluation samples with transformers: the vLLM server is TRL's, not an OpenAI endpoint")
    from mrt.samplers.hf import HFSampler

    return HFSampler(model, tok, device="cuda" if torch.cuda.is_available() else "cpu")


@one_writer
def run_train(cfg: TrainConfig, evaluate: Callable | None = None) -> dict:
    """Train ``cfg.algo`` into ``cfg.out``. The final evaluation on held-out problems is
    ``evaluate(sampler, cfg, out, task) -> {set: figures}``, run on the training engine before
    ``summary.json`` marks the run finished; ``mrt.pipelines.train`` passes the measure part's
    analysis (``mrt train`` does). Without one, ``cfg.eval_problems`` must be 0."""
    import warnings

    import torch

    # TRL 1.16 calls transformers' deprecated gradient_checkpointing names on every step
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.*", category=FutureWarning)

    from mrt.tasks import get_task, parse_knobs

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    task = get_task(cfg.task, **parse_knobs(cfg.knobs))
    if cfg.eval_knobs:
        get_task(cfg.task, **parse_knobs(cfg.eval_knobs))  # a bad knob fails before any work
    if cfg.eval_problems and evaluate is None:
        raise ValueError(
            "eval_problems > 0 needs an evaluation: call mrt.pipelines.train (mrt train does), or set eval_problems=0"
        )
    if cfg.algo == "mrt-backtrack":
        from mrt.tasks.backtrack_format import format_for

        format_for(task, None, None)  # a task not in the backtracking format fails before any work
    if cfg.format_penalty and not task.has_format_check:
        raise ValueError(
            f"--format-penalty: task {cfg.task!r} has no thinking format to check (the tree world's format=backtrack has)"
        )
    out = Path(cfg.out)
    main_proc = int(os.environ.get("RANK", "0")) == 0  # under accelerate launch / torchrun
    if main_proc:
        claim_run_dir(out, _settings(cfg))
    if (out / "summary.json").exists():
        log.info("%s already finished; delete summary.json to evaluate again", out)
        return json.loads((out / "summary.json").read_text())

    model_path, model, tok = _load(cfg)
    trainer = _build_trainer(cfg, task, model, tok, out)
    resume = _last_checkpoint(out / "checkpoints", main_proc)
    prior = {"tokens_sampled": 0, "extra_tokens": 0, "forced_tokens": 0, "budget_tokens": 0, "wall_seconds": 0.0}
    if resume:
        f = Path(resume) / STATE_FILE
        if f.exists():
            prior.update(json.loads(f.read_text()))
        log.info("resuming from %s", resume)
        if getattr(trainer, "_estimator", None) is not None and not trainer._estimator.load(resume):
            log.warning("%s holds no progress-estimator state: the estimator starts afresh", resume)
    if hasattr(trainer, "tokens_sampled"):
        trainer.tokens_sampled = int(prior["tokens_sampled"])
        trainer.extra_tokens = int(prior["extra_tokens"])
        trainer.forced_tokens = int(prior["forced_tokens"])
        trainer.budget_tokens = int(prior["budget_tokens"])
    t0 = time.time()

    def counters(state: bool = False):
        if not state:
            return getattr(trainer, "tokens_sampled", 0)
        return {
            "tokens_sampled": getattr(trainer, "tokens_sampled", 0),
            "extra_tokens": getattr(trainer, "extra_tokens", 0),
            "forced_tokens": getattr(trainer, "forced_tokens", 0),
            "budget_tokens": getattr(trainer, "budget_tokens", 0),
            "wall_seconds": prior["wall_seconds"] + time.time() - t0,
        }

    for cb in _callbacks(cfg, counters, trainer):
        trainer.add_callback(cb)
    try:
        trainer.train(resume_from_checkpoint=resume)
    except pickle.UnpicklingError as e:  # torch.load(weights_only=True) met a pickled object
        raise ValueError(
            f"refusing to load checkpoint {resume}: it holds pickled objects besides tensors and plain data "
            f"({str(e).splitlines()[0][:200]}); load only checkpoints you trust, or delete it to start over"
        ) from None
    wall = prior["wall_seconds"] + time.time() - t0
    steps = trainer.state.global_step
    # saved whole or not at all: into a temporary directory (one name for every process), then renamed
    tmp_model = out / ".model.tmp"
    if trainer.accelerator.is_main_process and tmp_model.exists():
        shutil.rmtree(tmp_model)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp_model))  # the main process writes; the others wait
    if trainer.accelerator.is_main_process:
        tok.save_pretrained(str(tmp_model))
        publish_dir(tmp_model, out / "model")
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        write_atomic(out / "train_log.jsonl", "".join(json.dumps(row) + "\n" for row in trainer.state.log_history))
    model = trainer.accelerator.unwrap_model(trainer.model)
    summary = {
        "algo": cfg.algo,
        "model": model_path,
        "task": cfg.task,
        "knobs": list(cfg.knobs),
        "seed": cfg.seed,
        "steps": steps,
        "wall_seconds": round(wall, 2),
        "wall_seconds_per_step": round(wall / max(steps, 1), 3),
        "sampled_tokens": int(getattr(trainer, "tokens_sampled", 0)),
        "extra_sampled_tokens": int(getattr(trainer, "extra_tokens", 0)),
        "sampled_tokens_per_step": round(getattr(trainer, "tokens_sampled", 0) / max(steps, 1), 1),
        "token_split": token_split(trainer, steps),
        "processes": trainer.accelerator.num_processes,
        "config": as_dict(cfg),
    }
    if trainer.accelerator.is_main_process and cfg.eval_problems:
        t1 = time.time()
        summary["eval"] = evaluate(eval_sampler(trainer, model, tok), cfg, out, task)
        summary["eval_wall_seconds"] = round(time.time() - t1, 2)
    if trainer.accelerator.is_main_process:
        write_json(out / "summary.json", summary)  # written last: marks the run finished
    return summary
