"""The TRL and verl shims against the real `longwriter reward-serve` binary.

Run from the repository root:

    LONGWRITER_BIN=target/debug/longwriter python3 -m unittest -v contrib/test_shims.py

Expected values are computed by hand from the LongWriter-Zero rules: "Write a 2,000-word
essay." has the target [1800, 2200]; below it the length reward is words / 1800; format
is 1 for one <think> then one <answer>, else 0; with no quality scorer the mean is over
length (when a target is known) and format. Words are runs of ASCII letters only, so the
test answers are distinct letter-only words (no repeated 4-grams).
"""

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import longwriter_trl  # noqa: E402
import longwriter_verl  # noqa: E402
from longwriter_trl import make_reward_func, normalize_target, quality_unit  # noqa: E402

TOKEN = "t0k"
ESSAY = "Write a 2,000-word essay."  # target [1800, 2200] by the rules
STARTUP_TIMEOUT = 60.0
HEALTH_TIMEOUT = 10.0


def words(n, offset=0):
    """n distinct words made of letters only: the digits of i spelled as a-j, plus a tail."""
    return " ".join("".join(chr(ord("a") + int(d)) for d in str(i)) + "x" for i in range(offset, offset + n))


def tagged(n):
    return "<think>Plan the essay first.</think><answer>" + words(n, offset=1000) + "</answer>"


class ShimTest(unittest.TestCase):
    def setUp(self):
        binary = os.environ.get("LONGWRITER_BIN", "./target/debug/longwriter")
        if not os.path.exists(binary):
            self.fail("no longwriter binary at %s (set LONGWRITER_BIN)" % binary)
        self.proc = subprocess.Popen(
            [binary, "reward-serve", "--addr", "127.0.0.1:0", "--token", TOKEN],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr_lines = []
        lines = queue.Queue()

        def drain():  # keeps reading so the pipe never fills
            for line in self.proc.stderr:
                self.stderr_lines.append(line)
                lines.put(line)
            lines.put(None)

        self.reader = threading.Thread(target=drain, daemon=True)
        self.reader.start()

        deadline = time.monotonic() + STARTUP_TIMEOUT
        self.url = None
        while self.url is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail("server did not announce its address in %.0fs; stderr:\n%s" % (STARTUP_TIMEOUT, "".join(self.stderr_lines)))
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.fail("server exited (%s) before listening; stderr:\n%s" % (self.proc.wait(), "".join(self.stderr_lines)))
            m = re.search(r"reward server on (http://[0-9.]+:\d+)", line)
            if m:
                self.url = m.group(1)

        deadline = time.monotonic() + HEALTH_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    health = json.loads(r.read())
                if health.get("status") == "ok":
                    break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.fail("%s/health not ok within %.0fs" % (self.url, HEALTH_TIMEOUT))
            time.sleep(0.02)
        self.assertIsNone(health.get("quality"), "this test expects a server without a quality scorer")

    def tearDown(self):
        proc = getattr(self, "proc", None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.reader.join(timeout=5)
        proc.stderr.close()

    # helpers

    def post(self, path, payload, token=TOKEN):
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(), method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Authorization", "Bearer " + token)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def assertFloats(self, got, want):
        self.assertEqual(len(got), len(want), got)
        for g, w in zip(got, want):
            self.assertIsInstance(g, float)
            self.assertAlmostEqual(g, w, places=9, msg="got %r, want %r" % (got, want))

    # TRL

    def test_trl_standard_format(self):
        completions = [tagged(900), tagged(2000), words(450)]
        prompts = [ESSAY] * 3
        f = make_reward_func(self.url, token=TOKEN)
        self.assertEqual(f.__name__, "longwriter_mean")
        # length 900/1800 = 0.5 with format 1; in range; 450/1800 = 0.25 with format 0.
        self.assertFloats(f(prompts, completions), [(0.5 + 1) / 2, 1.0, (0.25 + 0) / 2])
        length = make_reward_func(self.url, token=TOKEN, reward="length")
        self.assertEqual(length.__name__, "longwriter_length")
        self.assertFloats(length(prompts, completions), [0.5, 1.0, 0.25])
        fmt = make_reward_func(self.url, token=TOKEN, reward="format")
        self.assertFloats(fmt(prompts, completions), [1.0, 1.0, 0.0])
        self.assertEqual(f([], []), [])

    def test_trl_conversational_format(self):
        prompt = [
            {"role": "system", "content": "You are a writer. Ignore: write 50 words."},
            {"role": "user", "content": "Hello."},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": ESSAY},
        ]
        completions = [
            [{"role": "assistant", "content": tagged(900)}],
            [{"role": "assistant", "content": [{"type": "text", "text": tagged(2000)}]}],
            [{"role": "assistant", "content": words(450)}],
        ]
        f = make_reward_func(self.url, token=TOKEN)
        self.assertFloats(f([prompt] * 3, completions), [0.75, 1.0, 0.125])
        length = make_reward_func(self.url, token=TOKEN, reward="length")
        self.assertFloats(length([prompt] * 3, completions), [0.5, 1.0, 0.25])

    def test_trl_target_column(self):
        prompt = "Write an essay about the tides."  # no count: no target from the prompt
        completions = [tagged(400)] * 5
        targets = [[800, 1000], "800,1000", {"target": [800, 1000]}, (800.0, 1000.0), None]
        f = make_reward_func(self.url, token=TOKEN)
        # 400/800 = 0.5 with format 1; the last has no target, so its mean is format alone.
        self.assertFloats(f([prompt] * 5, completions, target=targets, trainer_state=None), [0.75] * 4 + [1.0])
        length = make_reward_func(self.url, token=TOKEN, reward="length")
        # No target: length is 0.0, as in /get_reward's extra_logs.
        self.assertFloats(length([prompt] * 5, completions, target=targets), [0.5] * 4 + [0.0])
        # Without a target column, only format counts.
        self.assertFloats(f([prompt], [tagged(400)]), [1.0])
        # A given target overrides the prompt's.
        self.assertFloats(length([ESSAY], [tagged(400)], target=[[400, 500]]), [1.0])
        with self.assertRaises(ValueError):
            f([prompt], [tagged(10)], target=[[10, 5]])
        with self.assertRaises(ValueError):
            f([prompt], [tagged(10)], target=["many"])

    def test_trl_matches_get_reward(self):
        completions = [tagged(900), words(450), tagged(3000)]
        f = make_reward_func(self.url + "/get_reward/", token=TOKEN)
        out = self.post("/get_reward", {"query": [ESSAY + c for c in completions], "prompts": [ESSAY] * 3})
        self.assertFloats(f([ESSAY] * 3, completions), out["rewards"])
        self.assertFloats(make_reward_func(self.url, token=TOKEN, reward="length")([ESSAY] * 3, completions), out["extra_logs"]["length"])
        self.assertFloats(make_reward_func(self.url, token=TOKEN, reward="format")([ESSAY] * 3, completions), out["extra_logs"]["format"])

    def test_trl_quality_needs_a_scorer(self):
        f = make_reward_func(self.url, token=TOKEN, reward="quality")
        self.assertEqual(f.__name__, "longwriter_quality")
        with self.assertRaisesRegex(RuntimeError, "no quality scorer"):
            f([ESSAY], [tagged(10)])
        with self.assertRaises(ValueError):
            make_reward_func(self.url, reward="loudness")

    def test_trl_wrong_token_raises(self):
        with self.assertRaisesRegex(RuntimeError, "401"):
            make_reward_func(self.url, token="wrong")([ESSAY], [tagged(10)])
        with mock.patch.dict(os.environ, {"LONGWRITER_REWARD_TOKEN": ""}):
            with self.assertRaisesRegex(RuntimeError, "401"):
                make_reward_func(self.url, reward="format")([ESSAY], [tagged(10)])
        with mock.patch.dict(os.environ, {"LONGWRITER_REWARD_TOKEN": TOKEN}):
            self.assertFloats(make_reward_func(self.url)([ESSAY], [tagged(2000)]), [1.0])

    # verl

    def test_verl_matches_get_reward(self):
        env = {"LONGWRITER_REWARD_URL": self.url, "LONGWRITER_REWARD_TOKEN": TOKEN}
        cases = [
            (tagged(900), None, {"prompt": ESSAY}, 0.75),
            (words(450), "", {"question": ESSAY}, 0.125),
            (tagged(400), [800, 1000], {"prompt": "Write an essay about the tides."}, 0.75),
            (tagged(400), "800,1000", {"prompt": [{"role": "user", "content": "An essay, please."}]}, 0.75),
            (tagged(400), {"target": [800, 1000]}, None, 0.75),
            (tagged(400), None, {"prompt": "No count here.", "target": [800, 1000]}, 0.75),
            (tagged(400), None, None, 1.0),
        ]
        with mock.patch.dict(os.environ, env):
            for solution, gt, extra, want in cases:
                with self.subTest(gt=gt, extra=extra):
                    got = longwriter_verl.compute_score("longwriter", solution, gt, extra_info=extra)
                    self.assertIsInstance(got, float)
                    self.assertAlmostEqual(got, want, places=9)
            # The same number as /get_reward with query = prompt + response.
            out = self.post("/get_reward", {"query": [ESSAY + tagged(900)], "prompts": [ESSAY]})
            self.assertAlmostEqual(longwriter_verl.compute_score("x", tagged(900), None, {"prompt": ESSAY}), out["rewards"][0], places=12)
            batch = longwriter_verl.compute_score_batch(
                ["x"] * len(cases), [c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases]
            )
            self.assertFloats(batch, [c[3] for c in cases])
            with self.assertRaises(ValueError):
                longwriter_verl.compute_score("x", tagged(10), "an essay about tides", {"prompt": ESSAY})

    def test_verl_errors_raise(self):
        with mock.patch.dict(os.environ, {"LONGWRITER_REWARD_URL": self.url, "LONGWRITER_REWARD_TOKEN": "wrong"}):
            with self.assertRaisesRegex(RuntimeError, "401"):
                longwriter_verl.compute_score("x", tagged(10), None, {"prompt": ESSAY})
        with mock.patch.dict(os.environ, {"LONGWRITER_REWARD_URL": self.url, "LONGWRITER_REWARD_TOKEN": ""}):
            with self.assertRaisesRegex(RuntimeError, "401"):
                longwriter_verl.compute_score("x", tagged(10), None, {"prompt": ESSAY})
        # Nothing listens there once the server is gone.
        self.tearDown()
        with mock.patch.dict(os.environ, {"LONGWRITER_REWARD_URL": self.url, "LONGWRITER_REWARD_TOKEN": TOKEN, "LONGWRITER_REWARD_TIMEOUT": "5"}):
            with self.assertRaisesRegex(RuntimeError, "cannot reach"):
                longwriter_verl.compute_score("x", tagged(10), None, {"prompt": ESSAY})
        with self.assertRaisesRegex(RuntimeError, "cannot reach"):
            make_reward_func(self.url, token=TOKEN, timeout=5)([ESSAY], [tagged(10)])


class PureTest(unittest.TestCase):
    """The shims' own conversions, without a server."""

    def test_normalize_target(self):
        for t in ([1800, 2200], (1800, 2200), "1800,2200", " [1800, 2200] ", {"target": [1800, 2200]}, {"range": ["1800", "2200"]}, {"lo": 1800, "hi": 2200.0}):
            self.assertEqual(normalize_target(t), [1800, 2200], t)
        for t in (None, "", {}):
            self.assertIsNone(normalize_target(t))
        for t in ([2200, 1800], [1, 2, 3], "12", "a,b", [-1, 5], 7, {"x": 1}, [True, 5], [1.5, 3]):
            with self.assertRaises(ValueError, msg=repr(t)):
                normalize_target(t)

    def test_quality_unit_matches_the_server(self):
        self.assertAlmostEqual(quality_unit({"value": 0.0, "kind": "reward-model"}), 0.5)
        self.assertAlmostEqual(quality_unit({"value": -1e6, "kind": "reward-model"}), 0.0)
        self.assertAlmostEqual(quality_unit({"value": 5.5, "kind": "judge"}), 0.5)
        self.assertAlmostEqual(quality_unit({"value": 0.0, "kind": "judge"}), 0.0)
        self.assertAlmostEqual(quality_unit({"value": 0.3, "kind": "proxy"}), 0.3)
        self.assertAlmostEqual(quality_unit({"value": 1.7, "kind": "proxy"}), 1.0)

    def test_message_extraction(self):
        msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "first"}, {"role": "user", "content": [{"type": "text", "text": "la"}, {"type": "image"}, {"type": "text", "text": "st"}]}]
        self.assertEqual(longwriter_trl._prompt_text(msgs), "last")
        self.assertEqual(longwriter_trl._prompt_text("plain"), "plain")
        self.assertEqual(longwriter_trl._completion_text([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "t"}, {"role": "assistant", "content": "b"}]), "ab")
        self.assertEqual(longwriter_verl._prompt({"prompt": msgs}), "last")


if __name__ == "__main__":
    unittest.main()
