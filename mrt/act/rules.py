"""Stop rules: when to stop thinking, given what has been measured at each episode boundary.
Pure functions, no I/O.

A trace is seen at its boundaries ``j = 0, 1, ..., K``: ``j = 0`` is before any thinking (the
answer could be forced at once), ``j`` is after ``j`` episodes, ``K`` is the natural end. At each
boundary the controller has a *signal*: an estimate of J (the success probability of an answer
forced there) or a trial answer's confidence. A rule reads the signals seen so far and says
whether to stop at the current boundary; a trace that reaches its natural end stops there.

Rules (``RULE:name=value,...``):

* ``j-threshold:tau=T`` -- stop at the first boundary whose J estimate is at least T;
* ``stall:eps=E,m=M`` -- stop at the first boundary j >= M where J has not risen by more than
  E over the last M episodes (``J_j - J_{j-M} <= E``);
* ``confidence:tau=T`` -- the DEER-style rival: stop when a trial answer forced at the boundary
  is confident, ``exp(mean token log-prob) >= T`` (no reference answer, no J);
* ``budget:tokens=B`` -- the fixed-budget baseline: think until the last boundary within B
  thinking tokens;
* ``natural`` -- never stop early (the natural end).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# name -> {parameter: (low, high, integer?)}; bounds are inclusive
RULES: dict[str, dict[str, tuple[float, float, bool]]] = {
    "j-threshold": {"tau": (0.0, 1.0, False)},
    "stall": {"eps": (-1.0, 1.0, False), "m": (1, 1000, True)},
    "confidence": {"tau": (0.0, 1.0, False)},
    "budget": {"tokens": (0, 10**9, True)},
    "natural": {},
}
SIGNALS = {"j-threshold": "j", "stall": "j", "confidence": "confidence", "budget": None, "natural": None}


@dataclass(frozen=True)
class StopRule:
    name: str
    params: dict = field(default_factory=dict)

    @property
    def signal(self) -> str | None:
        """What the rule reads at a boundary: 'j' (a J estimate), 'confidence', or None."""
        return SIGNALS[self.name]

    def __str__(self) -> str:
        return self.name + (":" + ",".join(f"{k}={v:g}" for k, v in self.params.items()) if self.params else "")


def parse_rule(text: str) -> StopRule:
    """``'stall:eps=0.05,m=2'`` -> StopRule. Unknown rules, unknown, missing or out-of-range
    parameters are refused by name."""
    name, _, rest = text.strip().partition(":")
    if name not in RULES:
        raise ValueError(f"unknown stop rule {name!r}; known: {', '.join(RULES)}")
    spec, params = RULES[name], {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        key = key.strip()
        if key not in spec:
            raise ValueError(f"stop rule {name!r} has no parameter {key!r}; it takes: {', '.join(spec) or 'none'}")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"stop rule {name!r}: parameter {key!r} must be a number, got {value!r}") from None
        lo, hi, integer = spec[key]
        if not eq or not lo <= v <= hi or (integer and v != int(v)):
            kind = "an integer" if integer else "a number"
            raise ValueError(f"stop rule {name!r}: parameter {key!r} must be {kind} in [{lo:g}, {hi:g}], got {value!r}")
        params[key] = int(v) if integer else v
    missing = [k for k in spec if k not in params]
    if missing:
        raise ValueError(f"stop rule {name!r} needs {', '.join(missing)} (e.g. {name}:{missing[0]}=...)")
    return StopRule(name, params)


def should_stop(rule: StopRule, signals: list[float]) -> bool:
    """Stop at the current boundary, the last of ``signals`` (one per boundary seen so far,
    boundary 0 first)? For the signal rules only; ``budget`` and ``natural`` are decided by
    tokens (:func:`stop_index`, or the controller's token cap)."""
    j = len(signals) - 1
    if rule.name == "j-threshold":
        return signals[j] >= rule.params["tau"] - 1e-12
    if rule.name == "stall":
        m = rule.params["m"]
        return j >= m and signals[j] - signals[j - m] <= rule.params["eps"] + 1e-12
    if rule.name == "confidence":
        return signals[j] >= rule.params["tau"] - 1e-12
    return False


def stop_index(rule: StopRule, signals: list[float], tokens: list[int]) -> int:
    """The boundary where the rule stops a trace whose boundaries have these ``tokens`` and
    ``signals`` (both J(empty) / boundary 0 first; the last entry is the natural end)."""
    last = len(tokens) - 1
    if rule.name == "natural":
        return last
    if rule.name == "budget":
        within = [j for j, t in enumerate(tokens) if t <= rule.params["tokens"]]
        return within[-1] if within else 0
    for j in range(last + 1):
        if should_stop(rule, signals[: j + 1]):
            return j
    return last
