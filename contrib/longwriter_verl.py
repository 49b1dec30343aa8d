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

import json
import math
import os
import urllib.error
import urllib.request

__all__ = ["compute_score", "compute_score_batch"]

DEFAULT_URL = "http://127.0.0.1:8000"


def _config():
    base = (os.environ.get("LONGWRITER_REWARD_URL") or DEFAULT_URL).rstrip("/")
    for tail in ("/get_reward", "/score", "/health"):
        if base.endswith(tail):
            base = base[: -len(tail)]
    token = os.environ.get("LONGWRITER_REWARD_TOKEN") or None
    timeout = float(os.environ.get("LONGWRITER_REWARD_TIMEOUT") or 600)
    return base, token, timeout


def _post(base, path, payload, token, timeout):
    url = base + path
    req = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace")
        try:
            msg = json.loads(body).get("error", body)
        except (ValueError, AttributeError):
            msg = body
        hint = " (check LONGWRITER_REWARD_TOKEN)" if e.code == 401 else ""
        raise RuntimeError("longwriter reward server %s answered HTTP %d: %s%s" % (url, e.code, msg, hint)) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise RuntimeError(
            "cannot reach the longwriter reward server at %s: %s "
            "(is `longwriter reward-serve` running? set LONGWRITER_REWARD_URL)" % (url, reason)
        ) from None
    except ValueError as e:
        raise RuntimeError("longwriter reward server %s sent a reply that is not JSON: %s" % (url, e)) from None


def _text(content):
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(p if isinstance(p, str) else p.get("text", "") if isinstance(p, dict) else "" for p in content)
    return str(content)


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
    msgs = [m for m in p if isinstance(m, dict)]
    users = [m for m in msgs if m.get("role") == "user"] or msgs
    return _text(users[-1].get("content")) if users else None


def _as_int(x):
    if isinstance(x, bool):
        raise ValueError
    if isinstance(x, int):
        return x
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, str):
        return int(x.strip())
    if hasattr(x, "item"):
        return _as_int(x.item())
    raise ValueError


def _target(t):
    """``[lo, hi]`` from a ground truth, or None; ValueError when it is not a range."""
    if t is None:
        return None
    if hasattr(t, "tolist") and not isinstance(t, (str, bytes)):
        t = t.tolist()
    if isinstance(t, dict):
        if not t:
            return None
        if "lo" in t and "hi" in t:
            return _target([t["lo"], t["hi"]])
        inner = t.get("target", t.get("range"))
        if inner is None:
            raise ValueError("ground truth %r: a dict needs 'target', 'range' or 'lo'/'hi'" % (t,))
        return _target(inner)
    if isinstance(t, str):
        s = t.strip().strip("[]()").strip()
        if not s:
            return None
        parts = s.split(",")
    elif isinstance(t, (list, tuple)):
        parts = list(t)
    else:
        parts = None
    try:
        if parts is None or len(parts) != 2:
            raise ValueError
        lo, hi = _as_int(parts[0]), _as_int(parts[1])
        if lo < 0 or lo > hi:
            raise ValueError
    except (ValueError, TypeError):
        raise ValueError(
            "ground truth %r is not a length target: use [lo, hi] with 0 <= lo <= hi, \"lo,hi\", "
            "{\"target\": [lo, hi]}, or None/\"\" to read the target from the prompt" % (t,)
        ) from None
    return [lo, hi]


def _item(solution_str, ground_truth, extra_info):
    prompt = _prompt(extra_info)
    target = _target(ground_truth)
    if target is None and isinstance(extra_info, dict):
        target = _target(extra_info.get("target"))
    response = solution_str or ""
    return (prompt or "") + response, prompt, target


def _rewards(items):
    base, token, timeout = _config()
    payload = {"query": [q for q, _, _ in items], "prompts": [p for _, p, _ in items]}
    if any(t is not None for _, _, t in items):
        payload["labels"] = [t for _, _, t in items]
    out = _post(base, "/get_reward", payload, token, timeout)
    rewards = out.get("rewards") if isinstance(out, dict) else None
    if not isinstance(rewards, list) or len(rewards) != len(items):
        raise RuntimeError("longwriter reward server %s/get_reward returned %r for %d queries" % (base, rewards, len(items)))
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
