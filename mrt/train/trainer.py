"""GRPO, length penalty, MRT (termination baseline and dense progress), STaR and MRT-STaR as one
subclass of TRL's ``GRPOTrainer``.

All six algorithms share TRL's rollout generation, loss and optimiser; they differ only in

* the prompts (``mrt``: each problem's group continues from a prefix of the policy's own trace,
  cut after a random number of episodes; half the group is force-terminated there), and
* the advantages (see :mod:`mrt.advantages`): TRL's group-normalised outcome advantage
  (``grpo``, ``length-penalty``), the termination baseline (``mrt``), per-token progress
  bonuses from Monte Carlo J estimates (``mrt-dense``), or 1/0 on kept traces (``star``,
  ``mrt-star``: on-policy rejection-sampling fine-tuning, one update per sampled batch).

The hooks used are ``_generate_and_score_completions`` (prompts before, advantages after TRL's
own code) and ``_calculate_rewards`` (to keep the gathered rewards). TRL's loss accepts
per-token advantages of shape (B, T).
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter

import torch
from trl import GRPOTrainer

from mrt.chat import encode_prompt
from mrt.core import advantages as adv
from mrt.samplers.base import SamplingParams
from mrt.tasks.base import Problem
from mrt.train.algos import Step
from mrt.train.algos import get as get_algorithm

log = logging.getLogger(__name__)


class RewardError(RuntimeError):
    pass


def make_reward_fn(
    task, tokenizer, algo: str, max_length: int, length_coef: float, record: dict, format_penalty: float = 0.0
):
    """TRL reward function: 0/1 correctness of the answer part (length-penalised if asked), less
    ``format_penalty`` for a rollout whose finished thinking breaks the task's format
    (:meth:`Task.format_error`; rows whose prompt already ended thinking, and rows the thinking
    budget cut, ``record["cut"]``, are not judged).

    ``record["correct"]`` receives the local rows' correctness of the last call, ``record["rewards"]``
    their rewards, ``record["format_errors"]`` the kinds of format error among them.
    """
    eos = tokenizer.eos_token_id
    shaped = get_algorithm(algo).reward  # None: the 0/1 correctness itself

    def correctness(completions, completion_ids, problem_id, answer, mrt_terminated=None, prompts=None, **_):
        correct, errors = [], []
        cut = record.get("cut") or [False] * len(completion_ids)  # thinking ended by the budget, not the model
        for i, ids in enumerate(completion_ids):
            terminated = bool(mrt_terminated[i]) if mrt_terminated is not None else False
            text = tokenizer.decode(ids, skip_special_tokens=False)
            judged = format_penalty and not terminated and not cut[i] and prompts is not None
            errors.append(task.format_error(prompts[i], text) if judged else None)
            if eos not in ids:  # unfinished (hit the token cap): never graded correct
                correct.append(False)
                continue
            try:
                part = task.answer_part(text, terminated)
                ok = part is not None and bool(
                    task.grade(Problem(problem_id[i], "", answer[i]), task.extract_answer(part))
                )
            except Exception as e:
                raise RewardError(f"reward failed on problem {problem_id[i]!r}: {type(e).__name__}: {e}") from e
            correct.append(ok)
        record["correct"] = correct
        if shaped is not None:
            rewards = shaped(correct, [len(x) for x in completion_ids], max_length, length_coef)
        else:
            rewards = [float(c) for c in correct]
        rewards = [r - format_penalty if e else r for r, e in zip(rewards, errors)]
        record["rewards"] = rewards
        record["format_errors"] = Counter(e for e in errors if e)
        return rewards

    correctness.__name__ = "correct" if shaped is None else "correct_minus_length"
    return correctness


UPDATE_GROUP_ROWS = 4  # rows scored together in the policy update (mrt.train.trim)


class MRTTrainer(GRPOTrainer):
    """``GRPOTrainer`` with the prompt and advantage hooks of the MRT family (see module doc)."""

    def __init__(self, *args, mrt_config, task, reward_record: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.mrt_config = mrt_config
        self.task = task
        self.reward_record = reward_record
        self.tokens_sampled = 0  # every sampled token: rollouts, MRT prefixes, J estimates
        self.extra_tokens = 0  # the part of it sampled outside TRL's rollouts
        self._prompt_ids: dict[str, list[int]] = {}  # text -> ids of the MRT prefix prompts of this step
        self._prefix_thinking: dict[tuple, int | None] = {}  # mrt prompt ids -> thinking tokens already in them
        self._forced_spans: list[tuple[int, int] | None] = []  # local rows: forced termination tokens
        self._rollout_tokens: int | None = None  # local sampled rollout tokens (None: the completion mask's)
        self.forced_tokens = 0  # the part of extra_tokens sampled as forced answers for J (Monte Carlo)
        self.budget_tokens = 0  # the part of extra_tokens sampled as rollouts' answers at the thinking budget
        self._estimator = None  # the progress estimator of --j-source estimator|mixed (mrt.train.progress)
        self._cal_window: list[tuple[float, float]] = []  # recent (predicted, Monte Carlo) J pairs
        if mrt_config.j_source != "mc" and get_algorithm(mrt_config.algo).uses_j:
            self._estimator = self._make_estimator()
        if (
            getattr(self, "use_vllm", False)
            and self.vllm_generation.mode == "colocate"
            and not torch.cuda.is_available()
        ):
            self.vllm_generation.sync_weights = self._reload_cpu_engine

    def _reload_cpu_engine(self):
        """Weight sync for vLLM's CPU backend. TRL loads parameters one by one into the engine's
        model, but the CPU backend has repacked its linear weights for its GEMM kernels (the
        parameters TRL loads into are gone); vLLM's in-place reload takes the checkpoint-format
        weights and repeats that processing."""
        gen = self.vllm_generation
        runner = gen.llm.llm_engine.model_executor.driver_worker.model_runner
        runner.reload_weights(
            weights_iterator=[(n, p.detach()) for n, p in gen._iter_named_params()], is_checkpoint_format=True
        )
        # a tied output layer is not among the loaded weights, so its packed copy of the embedding
        # stays stale: pack every layer that keeps its weight (embeddings, output layers) again
        from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

        for m in runner.get_model().modules():
            w = getattr(m, "weight", None)
            if hasattr(m, "cpu_linear") and isinstance(w, torch.Tensor) and w.ndim == 2 and w.numel():
                dispatch_cpu_unquantized_gemm(m, remove_weight=False)
        gen.llm.reset_prefix_cache()

    def _make_estimator(self):
        from mrt.train.progress import ProgressEstimator, check_estimator_dir

        cfg = self.mrt_config
        if cfg.estimator:
            check_estimator_dir(cfg.estimator, self.processing_class, self.task.name)
        return ProgressEstimator(
            cfg.estimator_form,
            lambda: self.accelerator.unwrap_model(self.model),
            self.processing_class,
            init=cfg.estimator,
            lr=cfg.estimator_lr,
            updates=cfg.estimator_updates,
            buffer=cfg.estimator_buffer,
            seed=cfg.seed,
        )

    def _get_per_token_logps_and_entropies(
        self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False, **kw
    ):
        """TRL's log-probs (and entropies) of the completion tokens, scored on rows grouped by
        length, each group without its padding columns (:mod:`mrt.train.trim`): the same values for
        a fraction of the work when prompts carry prefixes of different lengths. Anything TRL's own
        scoring handles beyond text (images, an MoE's auxiliary loss), and a model with absolute
        positions, goes to it unchanged."""
        from mrt.train.trim import grouped_logps, rotary

        other = kw.get("compute_aux_loss") or any(v is not None for k, v in kw.items() if k != "compute_aux_loss")
        if other or not rotary(self.accelerator.unwrap_model(model)):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, **kw
            )

        def score(ids, mask, keep):
            lp, ent, _ = super(MRTTrainer, self)._get_per_token_logps_and_entropies(
                model, ids, mask, keep, compute_entropy=compute_entropy
            )
            return lp, ent

        rows = min(UPDATE_GROUP_ROWS, batch_size or UPDATE_GROUP_ROWS)
        logps, ents = grouped_logps(score, input_ids, attention_mask, logits_to_keep, rows, compute_entropy)
        return logps, ents, None

    # ------------------------------------------------------------------ helpers
    def _tok(self):
        return self.processing_class

    def _sample(self, prompt_ids: list[list[int]], params: SamplingParams):
        """Sample with the current policy (no gradient): through TRL's vLLM engine when rollouts use
        one (``--vllm-mode``), else through the package's HF sampler on the policy itself."""
        if getattr(self, "use_vllm", False):
            comps, n_local = self._sample_vllm(prompt_ids, params)
        else:
            from mrt.samplers.hf import HFSampler

            model = self.accelerator.unwrap_model(self.model)
            was_training = model.training
            device = str(next(model.parameters()).device)
            sampler = HFSampler(model, self._tok(), device=device)
            try:
                comps = sampler.sample(prompt_ids, params)
            finally:
                model.train(was_training)
            n_local = sampler.tokens_generated
        # every process samples its own rows: count all of them, so that every process sees the
        # same total and stops at the token budget on the same step
        n = self.accelerator.gather(torch.tensor([n_local], device=self.accelerator.device))
        self.extra_tokens += int(n.sum().item())
        self.tokens_sampled += int(n.sum().item())
        return comps

    def _sync_engine(self):
        """The engine samples with the policy's current weights (TRL's own check: once per step)."""
        if self.state.global_step != self._last_loaded_step:
            self.vllm_generation.sync_weights()
            self._last_loaded_step = self.state.global_step

    def _sample_vllm(self, prompt_ids: list[list[int]], params: SamplingParams):
        """MRT's own samples (prefix traces, forced answers) on the engine TRL uses for rollouts."""
        from mrt.samplers.vllm import VLLMSampler

        self._sync_engine()
        gen = self.vllm_generation
        if gen.mode == "colocate":  # each process has its own engine and samples its own rows
            sampler = VLLMSampler(gen.llm, self._tok())
            return sampler.sample(prompt_ids, params), sampler.tokens_generated
        return self._sample_vllm_server(prompt_ids, params)

    def _sample_vllm_server(self, prompt_ids: list[list[int]], params: SamplingParams):
        """``trl vllm-serve``: the main process sends every process's prompts, then scatters."""
        from accelerate.utils import broadcast_object_list, gather_object

        from mrt.samplers.base import Completion

        everyone = gather_object([prompt_ids])
        payload = [None]
        if self.accelerator.is_main_process:
            flat = [p for part in everyone for p in part]
            kw = {
                "stop": list(params.stop) or None,
                "stop_token_ids": list(params.stop_token_ids) or None,
                "seed": params.seed,
                "skip_special_tokens": False,
            }
            res = self.vllm_generation.vllm_client.generate(
                prompts=flat,
                n=params.n,
                temperature=params.temperature or 1.0,
                top_p=params.top_p,
                top_k=1 if params.temperature == 0 else 0,
                max_tokens=params.max_new_tokens,
                logprobs=0,
                generation_kwargs={k: v for k, v in kw.items() if v is not None},
            )
            payload = [(res["completion_ids"], res.get("logprobs"))]
        broadcast_object_list(payload, from_process=0)
        ids_all, lps_all = payload[0]
        start = sum(len(part) for part in everyone[: self.accelerator.process_index]) * params.n
        tok, eos, comps, n_tok = self._tok(), self._tok().eos_token_id, [], 0
        stops = set(params.stop_token_ids) | {eos}
        for i in range(len(prompt_ids)):
            row = []
            for j in range(params.n):
                k = start + i * params.n + j
                ids = list(ids_all[k])
                text = tok.decode(ids, skip_special_tokens=False)
                cut = [text.find(x) for x in params.stop if x in text]
                if cut:
                    text = text[: min(cut)]
                lps = [lp[0] for lp in lps_all[k]] if lps_all else []
                done = bool(cut) or (ids and ids[-1] in stops) or len(ids) < params.max_new_tokens
                row.append(Completion(ids, text, lps, "stop" if done else "length"))
                n_tok += len(ids)
            comps.append(row)
        return comps, n_tok

    # ------------------------------------------------------------------ thinking budget
    @property
    def thinking_budget(self) -> int:
        """The binding thinking budget now: ``thinking_budget``, or the curriculum's
        (``thinking_budget_schedule``) at the share of the token budget sampled so far (restored on
        resume with the token counters, so a resumed run follows the same schedule)."""
        cfg = self.mrt_config
        if not cfg.thinking_budget_schedule:
            return cfg.thinking_budget
        from mrt.train.config import budget_at, parse_schedule

        return budget_at(parse_schedule(cfg.thinking_budget_schedule), self.tokens_sampled / cfg.token_budget)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        comps, logprobs = super()._generate_single_turn(
            prompt_ids, images, multimodal_fields, num_generations, has_tool_images
        )
        self._forced_spans, self._rollout_tokens = [None] * len(comps), None
        if self.mrt_config.thinking_budget_schedule:
            self._metrics["train"]["budget/thinking_budget"].append(float(self.thinking_budget))
        if self.thinking_budget:
            self._rollout_tokens = sum(len(c) for c in comps)
            comps, logprobs = self._force_at_budget(prompt_ids, comps, logprobs)
        return comps, logprobs

    def _force_at_budget(self, prompt_ids, comps, logprobs):
        """A binding thinking budget: a rollout whose thinking (with the thinking already in its
        prompt, for mrt's prefixes) passes ``thinking_budget`` tokens is cut there, the task's
        termination text is appended, and the answer is sampled (the meta-prover's forced answer).
        The appended termination tokens were not sampled: they get advantage 0 (``_forced_spans``)."""
        task, tok, cfg = self.task, self._tok(), self.mrt_config
        budget = self.thinking_budget  # one value for the whole call (a schedule moves between steps)
        rows = []
        for i, (p, c) in enumerate(zip(prompt_ids, comps)):
            used = self._prefix_thinking.get(tuple(p), 0)
            if used is None:  # an mrt prompt that is already force-terminated: the completion is the answer
                continue
            room = max(0, budget - used)
            think, answer = task.split_output(list(c), tok)
            if answer is not None and len(think) <= room:
                continue
            cut = min(room, len(think))
            rows.append((i, think[:cut], task.termination_ids(tok, think[:cut])))
        if not rows:
            return comps, logprobs
        answer_tokens = cfg.answer_tokens or task.default_answer_tokens
        params = SamplingParams(
            n=1,
            max_new_tokens=answer_tokens,
            temperature=cfg.temperature,
            stop=tuple(task.answer_stop_texts),
            seed=self._rng().randrange(2**31),
        )
        before = self.extra_tokens
        answers = self._sample([list(prompt_ids[i]) + kept + term for i, kept, term in rows], params)
        self.budget_tokens += self.extra_tokens - before
        comps, logprobs = list(comps), list(logprobs) if logprobs is not None else None
        for (i, kept, term), a in zip(rows, answers):
            ans = a[0]
            comps[i] = kept + term + list(ans.token_ids)
            self._forced_spans[i] = (len(kept), len(kept) + len(term))
            if logprobs is not None:
                lps = list(ans.logprobs) if ans.logprobs else [0.0] * len(ans.token_ids)
                logprobs[i] = list(logprobs[i][: len(kept)]) + [0.0] * len(term) + lps
        self._metrics["train"]["budget/forced_fraction"].append(len(rows) / len(comps))
        return comps, logprobs

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """Prompt ids: token-exact ids of the prompts this trainer built, else the task's encoding
        (one BOS, never two; see :mod:`mrt.chat`)."""
        return [list(self._prompt_ids[t]) if t in self._prompt_ids else encode_prompt(self._tok(), t) for t in texts]

    def _tokenize_prompts(self, prompts: list):
        if prompts and isinstance(prompts[0], str):  # TRL would add special tokens (a second BOS)
            return self._encode(prompts), None, {}
        return super()._tokenize_prompts(prompts)

    def _thinking(self, ids: list[int]) -> list[int]:
        return self.task.split_output(list(ids), self._tok())[0]

    def _rng(self) -> random.Random:
        return random.Random(f"{self.args.seed}-{self.state.global_step}-{self.accelerator.process_index}")

    def gather_rows(self, rows: list[list[float]]) -> list[list[float]]:
        """Every process's rows (equal-length float lists), in process order."""
        t = torch.tensor(rows, dtype=torch.float32, device=self.accelerator.device)
        return self.accelerator.gather(t).tolist()

    def check_groups(self, inputs):
        g = self.num_generations
        if len(inputs) % g or any(
            inputs[i]["problem_id"] != inputs[i - i % g]["problem_id"] for i in range(len(inputs))
        ):
            raise ValueError(
                f"{self.mrt_config.algo} needs each process's batch to hold whole groups of "
                f"{g} rollouts; make prompts_per_step * num_generations a multiple of it"
            )

    # ------------------------------------------------------------------ MRT prompts
    def mrt_inputs(self, inputs: list[dict]) -> list[dict]:
        """Each group continues from one prefix of the policy's own trace, cut after a random
        number of episodes k in {0, ..., K-1}; the first half of the group is force-terminated."""
        self.check_groups(inputs)
        g, task, cfg = self.num_generations, self.task, self.mrt_config
        firsts = inputs[::g]
        params = SamplingParams(
            n=1,
            max_new_tokens=self._prefix_tokens(),
            temperature=cfg.temperature,
            seed=self._rng().randrange(2**31),
        )
        first_ids = self._encode([x["prompt"] for x in firsts])
        comps = self._sample(first_ids, params)
        rng, out, tok = self._rng(), [], self._tok()
        self._prompt_ids, self._prefix_thinking = {}, {}
        n_term = max(1, g // 2)
        for gi, (c, p_ids) in enumerate(zip(comps, first_ids)):
            think = self._thinking(c[0].token_ids)
            if self.thinking_budget:  # a prefix lies inside the budget
                think = think[: self.thinking_budget]
            ends = task.episode_ends(think, tok) if think else []
            k = rng.randrange(len(ends)) if ends else 0
            cut = ends[k - 1] if k > 0 else 0
            variants = {False: p_ids + think[:cut], True: task.forced_ids(tok, p_ids, think[:cut])}
            texts = {}
            for term, ids in variants.items():  # TRL carries text prompts; the ids stay exact
                texts[term] = tok.decode(ids, skip_special_tokens=False)
                self._prompt_ids[texts[term]] = ids
                self._prefix_thinking[tuple(ids)] = None if term else cut
            for r in range(g):
                term = r < n_term
                out.append({**inputs[gi * g + r], "mrt_terminated": term, "mrt_cut_episodes": k, "prompt": texts[term]})
        return out

    def _prefix_tokens(self) -> int:
        """Tokens to sample for a prefix trace. Only its thinking inside a binding budget becomes a
        prefix, so sampling stops once that thinking (and a ``</think>`` starting inside it) is in
        hand: the prefixes are those of a longer sample with the same seed (a sampler's first
        tokens do not depend on its length cap), and no token past them is sampled and counted."""
        budget = self.thinking_budget
        if not budget:
            return self.max_completion_length
        end = self.task.think_end_text
        closing = len(self._tok().encode(end, add_special_tokens=False)) if end else 0
        return min(self.max_completion_length, budget + closing)

    # ------------------------------------------------------------------ MRT-RL, backtracking format
    def backtrack_inputs(self, inputs: list[dict]) -> list[dict]:
        """Each group revises one first attempt z0 of the policy's own: the prompt is the problem,
        z0 and the marker's opener (docs/backtracking.md); J(z0) is the success of ``mc_answers``
        answers forced right after z0 (the meta-prover)."""
        from mrt.tasks.backtrack_format import format_for

        self.check_groups(inputs)
        g, task, cfg, tok = self.num_generations, self.task, self.mrt_config, self._tok()
        fmt = format_for(task, None, tok)
        firsts = inputs[::g]
        first_ids = self._encode([x["prompt"] for x in firsts])
        params = SamplingParams(
            n=1,
            max_new_tokens=self.max_completion_length,
            temperature=cfg.temperature,
            stop=fmt.stops,
            seed=self._rng().randrange(2**31),
        )
        comps = self._sample([p + fmt.opener(True) for p in first_ids], params)
        z0 = [fmt.opener(True) + fmt.kept(c[0].text) for c in comps]
        forced = [task.forced_ids(tok, p, z) for p, z in zip(first_ids, z0)]
        grades = self._forced_grades(inputs, forced, list(range(len(firsts))), {})
        j0 = [sum(gr) / len(gr) for gr in grades]
        self._prompt_ids, self._prefix_thinking, out = {}, {}, []
        for gi, (p, z) in enumerate(zip(first_ids, z0)):
            ids = p + z + fmt.opener(False)
            text = tok.decode(ids, skip_special_tokens=False)  # TRL carries text prompts; the ids stay exact
            self._prompt_ids[text] = ids
            self._prefix_thinking[tuple(ids)] = len(ids) - len(p)
            out += [{**inputs[gi * g + r], "prompt": text, "backtrack_j0": j0[gi]} for r in range(g)]
        self._metrics["train"]["backtrack/j0"].append(sum(j0) / len(j0))
        return out

    def backtrack_filter(self, inputs, local: list[list[int]], correct: list[bool]) -> list[float]:
        """STaR / MRT-STaR on the format: advantages of the kept revisions (``kept_advantages``).
        MRT-STaR's J after a revision: ``mc_answers`` answers forced right after it."""
        from mrt.core.backtrack import mrt_star_backtrack_keep

        self.check_groups(inputs)
        cfg, task, tok, g = self.mrt_config, self.task, self._tok(), self.num_generations
        if cfg.mrt_advantage == "star":
            keep = adv.star_keep(correct)
        else:
            prompts = [
                task.forced_ids(tok, self._prompt_ids[x["prompt"]], self._thinking(ids))
                for x, ids in zip(inputs, local)
            ]
            grades = self._forced_grades(inputs, prompts, [i // g for i in range(len(local))], {})
            j_after = [sum(gr) / len(gr) for gr in grades]
            keep = mrt_star_backtrack_keep(correct, j_after, [x["backtrack_j0"] for x in inputs], g, cfg.min_final_j)
        lengths = [len(x) for x in local]
        kept_tokens = sum(n for n, k in zip(lengths, keep) if k)
        device = self.accelerator.device
        tot = self.accelerator.gather(torch.tensor([sum(lengths), kept_tokens], device=device).reshape(1, 2))
        total = (int(tot[:, 0].sum().item()), int(tot[:, 1].sum().item()))
        self._metrics["train"]["star/kept_fraction"].append(sum(keep) / len(keep))
        return adv.kept_advantages(keep, lengths, total)

    # ------------------------------------------------------------------ J estimates
    def j_curves(self, inputs, completion_ids: list[list[int]], max_episodes: int = 0):
        """Episode ends and J after 0..k episodes of each local rollout (k at most ``max_episodes``
        when that is set)."""
        g, task, cfg, tok = self.num_generations, self.task, self.mrt_config, self._tok()
        prompt_ids = self._encode([x["prompt"] for x in inputs[::g]])
        prompts, where, ends_all, seqs = [], [], [], []
        for gi, p in enumerate(prompt_ids):
            prompts.append(task.forced_ids(tok, p, []))
            where.append((gi, None, 0))  # J(empty), once per group
            seqs.append(list(p))
        for i, ids in enumerate(completion_ids):
            think, answer = task.split_output(list(ids), tok)
            ends = task.episode_ends(think, tok) if think else []
            if max_episodes:
                ends = ends[:max_episodes]
            ends_all.append(ends)
            for j, e in enumerate(ends):  # a rollout that closed its thinking ends naturally
                natural = answer is not None and j == len(ends) - 1 and e == len(think)
                prompts.append(task.forced_ids(tok, prompt_ids[i // g], think[:e], natural_end=natural))
                where.append((i // g, i, j + 1))
                seqs.append(list(prompt_ids[i // g]) + list(think[:e]))  # the estimator's input
        # the rollout's own answer after its natural end is a draw of the same forced answer: with
        # reuse_answers it is one of the mc_answers samples there, and one fewer is sampled
        own = {}
        if cfg.reuse_answers and cfg.mc_answers > 1:
            correct = self.reward_record["correct"]
            for k, (_gi, i, j) in enumerate(where):
                if i is not None and j == len(ends_all[i]) and self._closed(completion_ids[i], ends_all[i]):
                    own[k] = bool(correct[i])
        if cfg.j_source == "mc":
            grades_all = self._forced_grades(inputs, prompts, [w[0] for w in where], own)
            values = [sum(gr) / len(gr) for gr in grades_all]
        else:
            values = self._estimated_j(inputs, prompts, [w[0] for w in where], seqs, own)
        j_empty = {}
        curves = [[0.0] * (len(e) + 1) for e in ends_all]
        for (gi, i, j), value in zip(where, values):
            if i is None:
                j_empty[gi] = value
            else:
                curves[i][j] = value
        for i, curve in enumerate(curves):
            curve[0] = j_empty[i // g]
        return ends_all, curves

    def _estimated_j(self, inputs, prompts, groups, seqs, own) -> list[float]:
        """J at every boundary from the progress estimator; under ``mixed`` it is first scored
        against, then updated on, Monte Carlo J at a random share of the boundaries."""
        from mrt.train.progress import choose_mc

        cfg, est = self.mrt_config, self._estimator
        if cfg.j_source == "mixed":
            rng = random.Random(f"{self.args.seed}-{self.state.global_step}-{self.accelerator.process_index}-mc")
            chosen = choose_mc(len(prompts), cfg.mc_share, rng)
            grades = self._forced_grades(
                inputs,
                [prompts[k] for k in chosen],
                [groups[k] for k in chosen],
                {n: own[k] for n, k in enumerate(chosen) if k in own},
            )
            pairs = [(seqs[k], sum(gr) / len(gr)) for k, gr in zip(chosen, grades)]
            if self.accelerator.num_processes > 1:  # every process updates on every process's pairs
                from accelerate.utils import gather_object

                pairs = gather_object(pairs)
            pred = est.predict([s for s, _ in pairs])
            targets = [y for _, y in pairs]
            self._log_calibration(pred, targets)
            loss = est.update([s for s, _ in pairs], targets)
            m = self._metrics["train"]
            m["estimator/loss"].append(loss)
            m["estimator/mc_boundaries"].append(float(len(pairs)))
            m["estimator/boundaries"].append(float(len(prompts) * self.accelerator.num_processes))
        values = est.predict(seqs)
        self._metrics["train"]["estimator/mean_j"].append(sum(values) / len(values) if values else 0.0)
        return values

    def _log_calibration(self, pred: list[float], target: list[float]) -> None:
        """Per-step calibration of the estimator against fresh Monte Carlo J, and a warning when
        the ECE over the last ``calibration_window`` steps' pairs passes ``calibration_warn_ece``."""
        from mrt.core.calibration import calibration

        if not pred:
            return
        cal = calibration(pred, target)
        m = self._metrics["train"]
        m["estimator/brier"].append(cal["brier"])
        m["estimator/ece"].append(cal["ece"])
        if cal["correlation"] is not None:
            m["estimator/correlation"].append(cal["correlation"])
        cfg = self.mrt_config
        self._cal_window = (self._cal_window + list(zip(pred, target)))[-cfg.calibration_window * len(pred) :]
        pooled = calibration([p for p, _ in self._cal_window], [t for _, t in self._cal_window])
        bad = pooled["ece"] > cfg.calibration_warn_ece
        if bad and not getattr(self, "_cal_warned", False):
            log.warning(
                "step %d: the progress estimator's ECE against fresh Monte Carlo J is %.3f over the last %d "
                "pairs (threshold %.2f, --calibration-warn-ece): its progress rewards are unreliable",
                self.state.global_step,
                pooled["ece"],
                len(self._cal_window),
                cfg.calibration_warn_ece,
            )
        self._cal_warned = bad

    def _closed(self, ids, ends) -> bool:
        think, answer = self.task.split_output(list(ids), self._tok())
        return answer is not None and bool(ends) and ends[-1] == len(think)

    def _forced_grades(self, inputs, prompts: list[list[int]], groups: list[int], own: dict) -> list[list[bool]]:
        """Grades of ``mc_answers`` forced answers at each prompt (``own[k]``: a grade already in
        hand for prompt k, so one fewer is sampled there); one or two sampler calls."""
        g, task, cfg = self.num_generations, self.task, self.mrt_config
        answer_tokens = cfg.answer_tokens or task.default_answer_tokens
        out: list[list[bool]] = [[] for _ in prompts]
        for n, ks in (
            (cfg.mc_answers, [k for k in range(len(prompts)) if k not in own]),
            (cfg.mc_answers - 1, sorted(own)),
        ):
            if not ks or n < 1:
                continue
            params = SamplingParams(
                n=n,
                max_new_tokens=answer_tokens,
                temperature=cfg.temperature,
                stop=tuple(task.answer_stop_texts),
                seed=self._rng().randrange(2**31),
            )
            before = self.extra_tokens
            comps = self._sample([prompts[k] for k in ks], params)
            self.forced_tokens += self.extra_tokens - before
            for k, cs in zip(ks, comps):
                x = inputs[groups[k] * g]
                prob = Problem(x["problem_id"], "", x["answer"])
                for c in cs:
                    try:
                        out[k].append(bool(task.grade(prob, task.extract_answer(c.text))))
                    except Exception as e:
                        raise RewardError(f"grading a forced answer failed on problem {x['problem_id']!r}: {e}") from e
        for k, grade in own.items():
            out[k].append(grade)
        return out

    # ------------------------------------------------------------------ anytime (AnytimeReasoner)
    def _budgets(self) -> list[int]:
        cfg = self.mrt_config
        return adv.budget_grid(self.thinking_budget or max(self.task.default_budgets), cfg.budget_grid)

    def budget_rewards(self, inputs, completion_ids: list[list[int]]):
        """Score of the answer forced at each budget b_j of each local rollout: the mean grade of
        ``mc_answers`` summaries sampled at the thinking cut at b_j, or, at budgets the rollout's
        thinking ended within, its own answer's grade (the summary there; nothing sampled)."""
        g, task, tok = self.num_generations, self.task, self._tok()
        budgets, correct = self._budgets(), self.reward_record["correct"]
        prompt_ids = self._encode([x["prompt"] for x in inputs[::g]])
        prompts, groups, where, thinks = [], [], [], []
        rewards = [[None] * len(budgets) for _ in completion_ids]
        for i, ids in enumerate(completion_ids):
            think, answer = task.split_output(list(ids), tok)
            thinks.append(len(think))
            for j, b in enumerate(budgets):
                if answer is not None and b >= len(think):
                    rewards[i][j] = float(correct[i])
                else:
                    prompts.append(task.forced_ids(tok, prompt_ids[i // g], think[:b]))
                    groups.append(i // g)
                    where.append((i, j))
        for (i, j), grades in zip(where, self._forced_grades(inputs, prompts, groups, {})):
            rewards[i][j] = sum(grades) / len(grades)
        return budgets, thinks, rewards

    # ------------------------------------------------------------------ TRL hooks
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self.reward_record["cut"] = [s is not None for s in self._forced_spans] if self._forced_spans else None
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self.gathered_rewards = rewards_per_func  # all processes' rows, in order
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        algo = get_algorithm(self.mrt_config.algo)
        if algo.prepare is not None:
            inputs = algo.prepare(self, inputs)
        out = super()._generate_and_score_completions(inputs)
        mask = out["completion_mask"]
        local_tok = (
            mask.sum() if self._rollout_tokens is None else torch.tensor(self._rollout_tokens, device=mask.device)
        )
        n_tok = self.accelerator.gather(local_tok.reshape(1)).sum().item()
        self.tokens_sampled += int(n_tok)
        if not self.model.training:
            return out
        if self.mrt_config.format_penalty:  # the share of this step's rollouts the penalty hit
            errs = sum(self.reward_record.get("format_errors", {}).values())
            self.log_metric("format/penalised", errs / max(1, len(inputs)))
        if algo.advantages is not None:
            local = [ids[m.bool()].tolist() for ids, m in zip(out["completion_ids"], mask)]
            rec = self.reward_record
            out["advantages"] = algo.advantages(self, Step(inputs, out, local, rec["correct"], rec.get("rewards")))
        if any(self._forced_spans):  # the appended termination tokens were not sampled: no gradient
            a = out["advantages"]
            a = a.unsqueeze(1).expand(-1, mask.shape[1]).clone() if a.dim() == 1 else a.clone()
            for i, span in enumerate(self._forced_spans):
                if span:
                    a[i, span[0] : span[1]] = 0.0
            out["advantages"] = a
        self._metrics["train"]["mrt/tokens_sampled"].append(float(self.tokens_sampled))
        return out

    # ------------------------------------------------------------------ for the algorithms (mrt.train.algos)

    def local_tensor(self, values: list[float], n: int, device):
        """This process's ``n`` rows of values computed over every process's rows (in order)."""
        start = self.accelerator.process_index * n
        return torch.tensor(values[start : start + n], device=device)

    def log_metric(self, name: str, value: float) -> None:
        """A training metric, logged with TRL's (mean over the logging interval)."""
        self._metrics["train"][name].append(value)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not math.isfinite(float(loss)):
            raise FloatingPointError(
                f"non-finite loss ({float(loss)}) at step {self.state.global_step + 1}; "
                "stopped before the update was saved"
            )
        return loss
