"""The HTTP/JSON client shared by the `longwriter reward-serve` trainer shims.

Standard library only. ``longwriter_trl.py`` and ``longwriter_verl.py`` import it; keep
the three files side by side. Nothing here is specific to a trainer: each shim passes its
own error hints and wording.
"""

import json
import os
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000"
TOKEN_ENV = "LONGWRITER_REWARD_TOKEN"
_ENDPOINTS = ("/get_reward", "/score", "/health")


def base_url(url):
    """The server's base URL: ``url`` (or the default) without a trailing slash or endpoint."""
    base = (url or DEFAULT_URL).rstrip("/")
    for tail in _ENDPOINTS:
        if base.endswith(tail):
            base = base[: -len(tail)]
    return base


def env_token():
    """The bearer token from LONGWRITER_REWARD_TOKEN; None when unset or empty."""
    return os.environ.get(TOKEN_ENV) or None


class Hints:
    """What an error message suggests: on HTTP 401, and when the server cannot be reached."""

    __slots__ = ("auth", "reach")

    def __init__(self, auth, reach):
        self.auth = auth
        self.reach = reach


def send(req, url, timeout, hints):
    """Sends ``req`` and returns the decoded JSON reply; RuntimeError on any failure."""
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace")
        try:
            msg = json.loads(body).get("error", body)
        except (ValueError, AttributeError):
            msg = body
        hint = " (%s)" % hints.auth if e.code == 401 else ""
        raise RuntimeError("longwriter reward server %s answered HTTP %d: %s%s" % (url, e.code, msg, hint)) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise RuntimeError("cannot reach the longwriter reward server at %s: %s (%s)" % (url, reason, hints.reach)) from None
    except ValueError as e:
        raise RuntimeError("longwriter reward server %s sent a reply that is not JSON: %s" % (url, e)) from None


def post(base, path, payload, token, timeout, hints):
    """POSTs JSON to base+path (with the bearer token, if any) and returns the reply."""
    url = base + path
    req = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    return send(req, url, timeout, hints)


def get(base, path, timeout, hints):
    """GETs base+path and returns the reply."""
    url = base + path
    return send(urllib.request.Request(url, method="GET"), url, timeout, hints)


def get_rewards(base, queries, prompts, targets, token, timeout, hints):
    """``POST /get_reward`` for a batch; the raw ``rewards`` list, one per query.

    ``targets`` holds ``[lo, hi]`` or None per query; labels are sent only when one is
    known. RuntimeError when the reply has no list of the right length.
    """
    payload = {"query": list(queries), "prompts": list(prompts)}
    if any(t is not None for t in targets):
        payload["labels"] = list(targets)
    out = post(base, "/get_reward", payload, token, timeout, hints)
    rewards = out.get("rewards") if isinstance(out, dict) else None
    if not isinstance(rewards, list) or len(rewards) != len(payload["query"]):
        raise RuntimeError("longwriter reward server %s/get_reward returned %r for %d queries" % (base, rewards, len(payload["query"])))
    return rewards


def text(content):
    """A message's content as text: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
        return "".join(out)
    return str(content)


def messages(x):
    """The chat messages (dicts) in ``x``, in order."""
    return [m for m in x if isinstance(m, dict)]


def last_user_text(msgs):
    """The text of the last user message, else of the last message; None without messages."""
    msgs = messages(msgs)
    users = [m for m in msgs if m.get("role") == "user"] or msgs
    return text(users[-1].get("content")) if users else None


def as_int(x):
    """A whole number from an int, integral float, numeric string or numpy scalar; else ValueError."""
    if isinstance(x, bool):
        raise ValueError
    if isinstance(x, int):
        return x
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, str):
        return int(x.strip())
    if hasattr(x, "item"):  # numpy scalar
        return as_int(x.item())
    raise ValueError


# Why parse_target rejected a value; passed to its ``describe`` with the value.
BAD_DICT = "dict"  # a dict without 'target', 'range' or 'lo'/'hi'
BAD_TYPE = "type"  # neither a sequence, a string nor a dict
BAD_NUMBERS = "numbers"  # not exactly two whole numbers
BAD_ORDER = "order"  # not 0 <= lo <= hi


def parse_target(t, describe):
    """A length target as ``[lo, hi]`` (ints, 0 <= lo <= hi), or None for no target.

    Accepts ``[lo, hi]`` (list, tuple or numpy array), ``"lo,hi"`` (brackets allowed),
    ``{"target": [lo, hi]}``, ``{"range": [lo, hi]}``, ``{"lo": .., "hi": ..}``, and
    None / ``""`` / ``{}`` for none. Anything else raises ValueError with the message
    ``describe(value, reason)``, reason one of the BAD_* constants (for a dict, the value
    is the innermost one that failed).
    """
    if t is None:
        return None
    if hasattr(t, "tolist") and not isinstance(t, (str, bytes)):
        t = t.tolist()
    if isinstance(t, dict):
        if not t:
            return None
        if "lo" in t and "hi" in t:
            return parse_target([t["lo"], t["hi"]], describe)
        inner = t.get("target", t.get("range"))
        if inner is None:
            raise ValueError(describe(t, BAD_DICT))
        return parse_target(inner, describe)
    if isinstance(t, str):
        s = t.strip().strip("[]()").strip()
        if not s:
            return None
        parts = s.split(",")
    elif isinstance(t, (list, tuple)):
        parts = list(t)
    else:
        raise ValueError(describe(t, BAD_TYPE))
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = as_int(parts[0]), as_int(parts[1])
    except (ValueError, TypeError):
        raise ValueError(describe(t, BAD_NUMBERS)) from None
    if lo < 0 or lo > hi:
        raise ValueError(describe(t, BAD_ORDER))
    return [lo, hi]
