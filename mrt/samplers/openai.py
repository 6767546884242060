"""OpenAI-compatible completions backend, for a vLLM, SGLang or llama.cpp server.

Prompts go to ``POST {base_url}/completions`` as token ids (no re-tokenisation on the server,
so no second BOS), ``n`` samples per request, ``concurrency`` requests in flight per server.
Several servers (``base_url`` a comma-separated list: vLLM servers on several GPUs or nodes)
share the prompts of a call, prompt ``i`` to server ``i mod S``, ``concurrency`` requests each;
a retried request goes to the next server, so one server down slows a run instead of stopping
it. Token ids of
the outputs come from the response where the server gives them (vLLM's ``token_ids`` or
``token_id:N`` log-prob tokens, llama.cpp's log-prob ``id``) when they decode to the returned
text, else from encoding that text with the local tokenizer (counted in ``stats["reencoded"]``). Failed requests (connection errors, time-outs, HTTP 429 and 5xx)
are retried with exponential back-off; ``stats`` counts requests, retries, failures and tokens,
``faults`` the retried failures per kind (connection, timeout, http_NNN, malformed).
A request that still fails raises :class:`ServerError` with those counts; callers that write
results as they go (``mrt analyze``) keep everything finished before it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from mrt.heartbeat import ACTIVITY
from mrt.samplers.base import Completion, SamplingParams, check_prompts
from mrt.samplers.errors import SamplerError

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class ServerError(SamplerError):
    pass


class OpenAISampler:
    def __init__(
        self,
        base_url: str,
        tokenizer,
        model: str = "",
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 600.0,
        max_retries: int = 4,
        backoff: float = 1.0,
    ):
        self.base_urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        if not self.base_urls:
            raise ValueError("the openai backend needs a server address: --base-url http://HOST:PORT/v1")
        bad = [u for u in self.base_urls if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"--base-url: {', '.join(bad)} is not an http(s) address, e.g. http://HOST:PORT/v1")
        self.base_url = self.base_urls[0]
        self.tokenizer = tokenizer
        self.model = model
        self.concurrency = max(1, int(concurrency))
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._local = threading.local()  # one HTTP session per worker thread
        self._lock = threading.Lock()
        self.stats: Counter = Counter()  # requests, retries, failed, prompt_tokens, completion_tokens
        self.faults: Counter = Counter()  # retried failures per kind: connection, timeout, http_NNN, malformed
        self.per_server: Counter = Counter()  # requests sent to each server
        self.tokens_generated = 0
        self._n_in_request = True  # servers that refuse n > 1 get one request per sample

    # ------------------------------------------------------------------ public API
    def sample(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        if not prompts:
            return []
        check_prompts(prompts)
        n = len(self.base_urls)  # prompt i to server i mod n, each server its own `concurrency` threads
        with contextlib.ExitStack() as stack:
            pools = [stack.enter_context(ThreadPoolExecutor(self.concurrency)) for _ in range(n)]
            futures = [
                pools[i % n].submit(self._one_prompt, p, params, params.seed + 7919 * i, i)
                for i, p in enumerate(prompts)
            ]
            return [f.result() for f in futures]

    def _session(self):
        import requests

        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers.update(self._headers)
        return self._local.session

    # ------------------------------------------------------------------ internals
    def _body(self, prompt: list[int], params: SamplingParams, n: int, seed: int) -> dict:
        stop = list(params.stop) + [self.tokenizer.decode([t]) for t in params.stop_token_ids]
        body = {
            "prompt": prompt,
            "max_tokens": params.max_new_tokens,
            "n": n,
            "seed": seed,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "logprobs": 1,
            "return_token_ids": True,
            "skip_special_tokens": False,
        }
        if self.model:
            body["model"] = self.model
        if stop:
            body["stop"] = stop
        if params.stop_token_ids:
            body["stop_token_ids"] = list(params.stop_token_ids)
        return body

    def _one_prompt(self, prompt: list[int], params: SamplingParams, seed: int, server: int = 0) -> list[Completion]:
        if self._n_in_request or params.n == 1:
            try:
                choices = self._post(self._body(prompt, params, params.n, seed), server)
                if len(choices) == params.n:
                    return [self._completion(c, params) for c in sorted(choices, key=lambda c: c.get("index", 0))]
                log.warning(
                    "server returned %d choices for n=%d; asking one sample per request", len(choices), params.n
                )
            except ServerError as e:
                if "400" not in str(e) or params.n == 1:
                    raise
                log.warning("server refused n=%d (%s); asking one sample per request", params.n, e)
            self._n_in_request = False
        out = []
        for k in range(params.n):
            choices = self._post(self._body(prompt, params, 1, seed + k), server + k)
            out.append(self._completion(choices[0], params))
        return out

    def _post(self, body: dict, server: int = 0) -> list[dict]:
        """One request to server ``server`` (mod their number); each retry to the next one."""
        import requests

        last = ""
        for attempt in range(self.max_retries + 1):
            url = f"{self.base_urls[(server + attempt) % len(self.base_urls)]}/completions"
            if attempt:
                with self._lock:
                    self.stats["retries"] += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
            with self._lock:
                self.stats["requests"] += 1
                self.per_server[url.rsplit("/", 1)[0]] += 1
            try:
                r = self._session().post(url, json=body, timeout=self.timeout)
            except requests.RequestException as e:  # connection refused, time-out, ...
                last = f"{type(e).__name__}: {e}"
                self._fault("timeout" if isinstance(e, requests.Timeout) else "connection")
                continue
            if r.status_code in RETRY_STATUS:
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                self._fault(f"http_{r.status_code}")
                continue
            if r.status_code != 200:
                with self._lock:
                    self.stats["failed"] += 1
                raise ServerError(f"{url} answered HTTP {r.status_code}: {r.text[:300]}")
            try:
                data = r.json()
                choices = data["choices"]
            except (ValueError, KeyError) as e:
                last = f"malformed response ({e}): {r.text[:200]}"
                self._fault("malformed")
                continue
            usage = data.get("usage") or {}
            with self._lock:
                self.stats["prompt_tokens"] += int(usage.get("prompt_tokens", 0))
                self.stats["completion_tokens"] += int(usage.get("completion_tokens", 0))
            ACTIVITY.tokens_arrived(int(usage.get("completion_tokens", 0)) or 1)
            return choices
        with self._lock:
            self.stats["failed"] += 1
        raise ServerError(f"{url} failed after {self.max_retries + 1} tries ({last}); so far: {dict(self.stats)}")

    def _fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def _completion(self, choice: dict, params: SamplingParams) -> Completion:
        text = choice.get("text") or ""
        ids, lps = _ids_and_logprobs(choice)
        if ids is not None and not self._decodes_to(ids, text):
            # llama.cpp merges the log-prob entries of tokens that split a UTF-8 character, so
            # its ids can miss one: then the text, encoded here, is the better record
            with self._lock:
                self.stats["reencoded"] += 1
            ids = None
        if ids is None:
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        reason = choice.get("finish_reason") or "stop"
        finish = "length" if reason == "length" else "stop"
        eos = self.tokenizer.eos_token_id
        stop_reason = choice.get("stop_reason", "absent")
        by_eos = stop_reason is None or (stop_reason == "absent" and not params.stop and not params.stop_token_ids)
        if finish == "stop" and isinstance(stop_reason, int) and (not ids or ids[-1] != stop_reason):
            ids.append(stop_reason)  # a stop token: kept in token_ids, as the HF backend does
        elif finish == "stop" and by_eos and eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)  # servers leave the EOS token out; the HF backend keeps it
        with self._lock:
            self.tokens_generated += len(ids)
        return Completion(ids, text, lps, finish)

    def _decodes_to(self, ids: list[int], text: str) -> bool:
        """The server's ids are its text: special tokens shown (what this backend asks for) or
        skipped, with or without a final EOS/stop token (servers differ in what the text keeps), up
        to leading whitespace (a server decodes in the prompt's context, which may add a space)."""
        for cut in (ids, ids[:-1]):
            if text.lstrip() in (
                self.tokenizer.decode(cut, skip_special_tokens=False).lstrip(),
                self.tokenizer.decode(cut, skip_special_tokens=True).lstrip(),
            ):
                return True
        return False


def _ids_and_logprobs(choice: dict) -> tuple[list[int] | None, list[float]]:
    """Token ids and log-probs of a choice, in the formats vLLM and llama.cpp use."""
    lp = choice.get("logprobs") or {}
    ids = choice.get("token_ids")  # vLLM with return_token_ids
    if isinstance(lp, dict) and lp.get("content"):  # llama.cpp (and the chat format)
        content = lp["content"]
        if ids is None and all("id" in c for c in content):
            ids = [int(c["id"]) for c in content]
        return (list(ids) if ids is not None else None), [float(c.get("logprob", 0.0)) for c in content]
    if isinstance(lp, dict) and lp.get("tokens") is not None:  # OpenAI legacy / vLLM
        toks = lp["tokens"]
        if ids is None and toks and all(str(t).startswith("token_id:") for t in toks):
            ids = [int(str(t).split(":", 1)[1]) for t in toks]
        return (list(ids) if ids is not None else None), [float(x or 0.0) for x in lp.get("token_logprobs") or []]
    return (list(ids) if ids is not None else None), []
