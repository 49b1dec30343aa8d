"""LongWriter-Zero rewards for verl, served by `longwriter reward-serve`.

Standard library only. Point verl at this file::

    custom_reward_function.path=contrib/longwriter_verl.py \\
    custom_reward_function.name=compute_score

or, with ``reward_model.reward_manager=batch`` (one HTTP request per batch)::

    custom_reward_function.name=compute_score_batch

Configuration, read at every call:

- LONGWRITER_REWARD_URL: the server's base URL (default http://127.0.0.1:8000).
- LONGWRITER_REWARD_TOKEN: its bearer token, if it was started with one.
- LONGWRITER_REWARD_TIMEOUT: seconds per request (default 600).

Per sample: ``solution_str`` is the response (``<think>...</think><answer>...</answer>``);
the request is ``extra_info["prompt"]`` (or ``extra_info["question"]``), a string or a list
of chat messages (the last user message is used). Without it the server can still score
format, but reads no length target from the prompt. ``ground_truth`` may give the length
target as ``[lo, hi]``, ``"lo,hi"`` or ``{"target": [lo, hi]}``; None, ``""`` or ``{}`` mean
"read it from the prompt" (``extra_info["target"]`` is used then, if present). Any other
ground truth raises ValueError.

The score is what ``POST /get_reward`` returns (the server's ``--combine``; by default the
mean of length when a target is known, format, and quality on [0, 1] when the server has
a quality scorer). A network or HTTP error (a wrong token included) raises RuntimeError,
never a silent 0.
"""

import math
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # verl loads this file by path: find longwriter_client.py beside it
    sys.path.insert(0, _HERE)

import longwriter_client as _client  # noqa: E402
from longwriter_client import DEFAULT_URL  # noqa: E402,F401  (kept as a module attribute)

__all__ = ["compute_score", "compute_score_batch"]

_HINTS = _client.Hints(
    auth="check LONGWRITER_REWARD_TOKEN",
    reach="is `longwriter reward-serve` running? set LONGWRITER_REWARD_URL",
)


def _config():
    base = _client.base_url(os.environ.get("LONGWRITER_REWARD_URL"))
    token = _client.env_token()
    timeout = float(os.environ.get("LONGWRITER_REWARD_TIMEOUT") or 600)
    return base, token, timeout


def _prompt(extra_info):
    """The request from extra_info: "prompt" or "question", a string or chat messages."""
    if not isinstance(extra_info, dict):
        return None
    p = extra_info.get("prompt")
    if p is None or (isinstance(p, str) and not p):
        p = extra_info.get("question")
    if p is None:
        return None
    if hasattr(p, "tolist") and not isinstance(p, str):  # numpy array from parquet
        p = p.tolist()
    if isinstance(p, str):
        return p
    return _client.last_user_text(p)


def _target_error(t, why):
    if why == _client.BAD_DICT:
        return "ground truth %r: a dict needs 'target', 'range' or 'lo'/'hi'" % (t,)
    return (
        "ground truth %r is not a length target: use [lo, hi] with 0 <= lo <= hi, \"lo,hi\", "
        "{\"target\": [lo, hi]}, or None/\"\" to read the target from the prompt" % (t,)
    )


def _target(t):
    """``[lo, hi]`` from a ground truth, or None; ValueError when it is not a range."""
    return _client.parse_target(t, _target_error)


def _item(solution_str, ground_truth, extra_info):
    prompt = _prompt(extra_info)
    target = _target(ground_truth)
    if target is None and isinstance(extra_info, dict):
        target = _target(extra_info.get("target"))
    response = solution_str or ""
    return (prompt or "") + response, prompt, target


def _rewards(items):
    base, token, timeout = _config()
    queries, prompts, targets = zip(*items)
    rewards = _client.get_rewards(base, queries, prompts, targets, token, timeout, _HINTS)
    values = []
    for r in rewards:
        r = float(r)
        if not math.isfinite(r):
            raise RuntimeError("longwriter reward server returned a non-finite reward %r" % (r,))
        values.append(r)
    return values


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """verl's custom reward function: the LongWriter-Zero reward of one response."""
    return _rewards([_item(solution_str, ground_truth, extra_info)])[0]


def compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos=None, **kwargs):
    """For ``reward_model.reward_manager=batch``: all rewards of a batch in one request."""
    n = len(solution_strs)
    if extra_infos is None:
        extra_infos = [None] * n
    if ground_truths is None:
        ground_truths = [None] * n
    if not (len(ground_truths) == len(extra_infos) == n):
        raise ValueError("compute_score_batch: %d solutions, %d ground truths, %d extra_infos" % (n, len(ground_truths), len(extra_infos)))
    if n == 0:
        return []
    return _rewards([_item(s, g, e) for s, g, e in zip(solution_strs, ground_truths, extra_infos)])
