"""LongWriter-Zero rewards for TRL's GRPOTrainer, served by `longwriter reward-serve`.

Standard library only. Usage::

    from longwriter_trl import make_reward_func
    trainer = GRPOTrainer(
        model=...,
        reward_funcs=[make_reward_func("http://127.0.0.1:8000")],
        train_dataset=dataset,   # a "prompt" column, optionally a "target" column
        ...
    )

TRL calls a reward function as ``f(prompts, completions, **kwargs) -> list[float]``.
Prompts and completions are plain strings (standard format) or lists of chat messages
(conversational format); for the latter the request is the last user message of the
prompt and the response is the content of the completion's assistant message(s). Extra
dataset columns arrive as keyword lists; the ``target`` column (name configurable), if
present, gives each item's length target as ``[lo, hi]``, ``"lo,hi"`` or
``{"target": [lo, hi]}`` (``None`` for "read it from the prompt").

``reward`` picks what is returned per completion:

- ``"mean"`` (default): exactly what the server's ``POST /get_reward`` returns, i.e. its
  ``--combine`` setting (``mean``: the mean of length when a target is known, format,
  and quality on [0, 1] when the server has a quality scorer). One request per batch.
- ``"length"``: the length reward from ``POST /score``; 0.0 when no target is known
  (the same value ``/get_reward`` logs in ``extra_logs.length``).
- ``"format"``: 1.0 or 0.0 from ``POST /score``.
- ``"quality"``: the quality score on [0, 1], scaled as the server does for its mean
  (reward model: sigmoid of the logit; judge 1-10: (v - 1) / 9; proxy: as is).
- ``"quality_raw"``: the quality score on the scorer's own scale.

An item the server could not score (or whose quality could not be computed) gets
``failure_reward`` (default -1.0, the server's own default for ``--failure-reward``).
Asking for ``"quality"`` from a server started without ``--quality`` raises
RuntimeError rather than returning a constant. Network and HTTP errors (a wrong token
included) raise RuntimeError: a reward that silently became 0 would train on nothing.
"""

import math
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # find longwriter_client.py beside this file even when loaded by path
    sys.path.insert(0, _HERE)

import longwriter_client as _client  # noqa: E402
from longwriter_client import DEFAULT_URL  # noqa: E402

__all__ = ["make_reward_func", "normalize_target", "quality_unit", "REWARDS"]

REWARDS = ("mean", "length", "format", "quality", "quality_raw")

_HINTS = _client.Hints(
    auth="check the token: --token / LONGWRITER_REWARD_TOKEN",
    reach="is `longwriter reward-serve` running there?",
)


def _post(base, path, payload, token, timeout):
    """POSTs JSON to base+path and returns the decoded reply; RuntimeError on failure."""
    return _client.post(base, path, payload, token, timeout, _HINTS)


def _get(base, path, timeout):
    return _client.get(base, path, timeout, _HINTS)


def _prompt_text(prompt):
    """The request: a string as is; for chat messages, the last user message."""
    if isinstance(prompt, str):
        return prompt
    if prompt is None:
        return ""
    text = _client.last_user_text(prompt)
    return "" if text is None else text


def _completion_text(completion):
    """The response: a string as is; for chat messages, the assistant content."""
    if isinstance(completion, str):
        return completion
    if completion is None:
        return ""
    msgs = _client.messages(completion)
    chosen = [m for m in msgs if m.get("role", "assistant") == "assistant"] or msgs
    return "".join(_client.text(m.get("content")) for m in chosen)


_TARGET_ERRORS = {
    _client.BAD_DICT: "length target %r: a dict needs 'target', 'range' or 'lo'/'hi'",
    _client.BAD_TYPE: "length target %r must be [lo, hi], \"lo,hi\" or {\"target\": [lo, hi]}",
    _client.BAD_NUMBERS: "length target %r must be two whole numbers [lo, hi]",
    _client.BAD_ORDER: "length target %r must satisfy 0 <= lo <= hi",
}


def normalize_target(t):
    """A length target as ``[lo, hi]`` (ints, 0 <= lo <= hi), or None for no target.

    Accepts ``[lo, hi]`` (list, tuple or numpy array), ``"lo,hi"`` (brackets allowed),
    ``{"target": [lo, hi]}``, ``{"range": [lo, hi]}``, ``{"lo": .., "hi": ..}``, and
    None / ``""`` / ``{}`` for none. Anything else raises ValueError.
    """
    return _client.parse_target(t, lambda v, why: _TARGET_ERRORS[why] % (v,))


def quality_unit(q):
    """The server's ``QualityScore::unit()``: the quality on [0, 1]."""
    v = float(q["value"])
    kind = q.get("kind")
    if kind == "reward-model":
        try:
            u = 1.0 / (1.0 + math.exp(-v))
        except OverflowError:  # very negative logit
            u = 0.0
    elif kind == "judge":
        u = (v - 1.0) / 9.0
    else:
        u = v
    return min(1.0, max(0.0, u))


def _finite(x, fallback):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return fallback
    return x if math.isfinite(x) else fallback


def make_reward_func(url=DEFAULT_URL, token=None, reward="mean", timeout=600, failure_reward=-1.0, target_key="target"):
    """A TRL reward function backed by a longwriter reward server.

    url: the server's base URL (a trailing ``/get_reward`` or ``/score`` is dropped).
    token: the bearer token; None reads LONGWRITER_REWARD_TOKEN (unset: no token).
    reward: one of "mean", "length", "format", "quality", "quality_raw" (module docs).
    timeout: seconds per HTTP request (a batch is one request).
    failure_reward: returned for items the server could not score; keep it equal to the
      server's --failure-reward.
    target_key: the dataset column holding length targets.
    """
    if reward not in REWARDS:
        raise ValueError("reward must be one of %s, not %r" % (", ".join(REWARDS), reward))
    base = _client.base_url(url)
    if token is None:
        token = _client.env_token()
    checked = []  # whether the server's quality scorer was confirmed

    def reward_func(prompts, completions, **kwargs):
        n = len(completions)
        if prompts is None:
            prompts = [None] * n
        if len(prompts) != n:
            raise ValueError("got %d prompts for %d completions" % (len(prompts), n))
        ps = [_prompt_text(p) for p in prompts]
        cs = [_completion_text(c) for c in completions]
        raw_targets = kwargs.get(target_key)
        if raw_targets is None:
            targets = [None] * n
        else:
            raw_targets = list(raw_targets)
            if len(raw_targets) != n:
                raise ValueError("got %d %r values for %d completions" % (len(raw_targets), target_key, n))
            targets = [normalize_target(t) for t in raw_targets]
        if n == 0:
            return []

        if reward == "mean":
            queries = [p + c for p, c in zip(ps, cs)]
            rewards = _client.get_rewards(base, queries, ps, targets, token, timeout, _HINTS)
            return [_finite(r, failure_reward) for r in rewards]

        if reward in ("quality", "quality_raw") and not checked:
            health = _get(base, "/health", timeout)
            if not health.get("quality"):
                raise RuntimeError(
                    "reward=%r, but the longwriter reward server at %s has no quality scorer; "
                    "start it with --quality proxy|judge|rm" % (reward, base)
                )
            checked.append(True)

        items = []
        for p, c, t in zip(ps, cs, targets):
            item = {"prompt": p, "response": c}
            if t is not None:
                item["target"] = t
            items.append(item)
        out = _post(base, "/score", {"items": items}, token, timeout)
        results = out.get("results")
        if not isinstance(results, list) or len(results) != n:
            raise RuntimeError("longwriter reward server %s/score returned %d results for %d items" % (base, len(results or []), n))
        values = []
        for r in results:
            if not isinstance(r, dict) or "error" in r:
                values.append(failure_reward)
            elif reward == "length":
                values.append(_finite(r.get("length"), 0.0))  # None: no target known
            elif reward == "format":
                values.append(_finite(r.get("format"), failure_reward))
            else:
                q = r.get("quality")
                if not q:
                    values.append(failure_reward)
                elif reward == "quality":
                    values.append(_finite(quality_unit(q), failure_reward))
                else:
                    values.append(_finite(q.get("value"), failure_reward))
        return values

    reward_func.__name__ = "longwriter_" + reward
    reward_func.__qualname__ = reward_func.__name__
    return reward_func
