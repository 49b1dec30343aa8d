#!/usr/bin/env python3
"""Writes the longwriter GRPO prompt sets data/prompts/writing-{short,long}.jsonl.

The prompts are original, written for this project (Apache-2.0, like the rest of it).
Each one states its length explicitly; its "range" is computed here from the declared
rule and then cross-checked against a Python port of src/reward/target.rs
(`extract_target`), so a prompt the Rust extractor would read differently fails loudly.

Rules (the LongWriter-Zero length assessor's):
  explicit count N      -> [0.9N, 1.1N]
  "no more than N"      -> [0.9N, N]
  "at least N"          -> [N, 1.1N]
  "between A and B"     -> [A, B]
then lo is floored and hi ceiled to multiples of 100, 0 <= lo, hi <= 12000, and
hi - lo <= 3000 (lo = hi - 3000 when wider). Arithmetic is exact (fractions), so
1.1 x 1000 is 1100, not 1100.0000000000002 rounded up to 1200.

Note: target.rs checks its upper-bound phrases first, and "fewer than" / "less than" are
suffixes of "no fewer than" / "no less than", so it reads those two as upper bounds. The
prompts here use them only where both readings round to the same range ([0, 100]);
elsewhere they say "at least", "more than", "a minimum of", "不少于", "以上".

Usage: python3 scripts/make-prompt-set.py [OUT_DIR]   (default: data/prompts)
"""
import json
import math
import os
import sys
from fractions import Fraction

# Entry: (genre, rule, n, prompt). rule: "about" (explicit count), "max", "min", "between";
# n: int, or (a, b) for "between". Counts are words for English, characters (字) for Chinese.

SHORT_EN = [
    ("story", "about", 60, "Write a story in about 60 words about a night-shift baker who finds a note hidden in a sack of flour."),
    ("poem", "about", 50, "Write a 50-word poem about the first frost on a vegetable garden."),
    ("letter", "max", 80, "Write a letter to your future self, ten years from now, in no more than 80 words."),
    ("product description", "min", 40, "Write a product description of at least 40 words for a waterproof notebook made for field geologists."),
    ("news brief", "between", (60, 90), "Write a news brief of between 60 and 90 words reporting that a small-town library has started lending fishing rods."),
    ("recipe intro", "about", 70, "Write the introduction to a recipe for lemon barley soup in about 70 words, in a warm, personal voice."),
    ("dialogue", "max", 100, "Write a dialogue of up to 100 words between a parrot and the locksmith who has come to open its cage."),
    ("speech opening", "about", 90, "Write the opening of a graduation speech for a nursing school, roughly 90 words long."),
    ("diary entry", "about", 75, "Write a diary entry of around 75 words by a ship's cat on the first day of a long voyage."),
    ("review", "max", 60, "Review a made-up café called The Slow Kettle in fewer than 60 words."),
    ("explanation for a child", "about", 80, "Explain to a seven-year-old why the moon seems to change shape, using about 80 words."),
    ("haiku sequence", "about", 40, "Write a sequence of three haiku about a city at dawn, around 40 words in total."),
    ("ad copy", "between", (30, 50), "Write 30–50 words of ad copy for a bicycle repair shop that also serves espresso."),
    ("fable", "about", 100, "Write a fable in 100 words about a tortoise who wants to learn to juggle, ending with a one-line moral."),
    ("postcard", "max", 60, "Write a postcard from a tourist visiting a volcano observatory, in at most 60 words."),
    ("apology note", "max", 70, "Write an apology note from a neighbor whose goat ate the roses, not exceeding 70 words."),
    ("toast", "min", 80, "Write a wedding toast of no less than 80 words from the bride's oldest friend, who keeps bees."),
    ("job ad", "about", 60, "Write a 60-word job advertisement for a night watchman at a dinosaur museum."),
    ("museum label", "about", 45, "Write a museum label of about 45 words for a rusted pocket watch recovered from a shipwreck."),
    ("weather report", "max", 50, "Write a cheerful weather report for a village of mice in under 50 words."),
    ("limerick", "max", 50, "Write a limerick about a forgetful astronaut, keeping it within 50 words."),
    ("riddle", "between", (30, 50), "Write a riddle whose answer is 'a shadow', in between 30 and 50 words."),
    ("obituary", "about", 90, "Write a short, affectionate obituary for a worn-out pair of running shoes in about 90 words."),
    ("author bio", "about", 50, "Write a third-person author bio of 50 words for a retired sailor who now writes mystery novels."),
    ("motivational note", "between", (40, 60), "Write a motivational note of 40 to 60 words to tape on a runner's fridge the night before a marathon."),
    ("horoscope", "about", 55, "Write a playful horoscope for people born during thunderstorms, approximately 55 words."),
    ("travel blurb", "max", 80, "Write a travel blurb for a tiny island with one road and two hundred goats, a maximum of 80 words."),
    ("thank-you note", "min", 30, "Write a thank-you note to a bus driver who waited for you in the rain, at least 30 words."),
    ("story", "about", 100, "Tell a ghost story set in a laundromat in exactly 100 words."),
    ("poem", "about", 70, "Write a free-verse poem of 70 words about the sound of a kettle just before it boils."),
    ("product description", "max", 90, "Describe a solar-powered lunchbox for an online store in no more than 90 words."),
    ("news brief", "about", 80, "Write an 80-word news brief about a marathon won by a runner in a dinosaur costume."),
    ("dialogue", "about", 100, "Write a dialogue in which a grandmother teaches her grandson to fold dumplings, about 100 words."),
    ("speech opening", "about", 60, "Write the first 60 words of a speech by a mayor opening a new public swimming pool."),
    ("diary entry", "max", 70, "Write a diary entry of no more than 70 words from a scarecrow at the end of harvest season."),
    ("review", "about", 90, "Write a 90-word review of a board game in which players build a village of treehouses."),
    ("explanation for a child", "max", 50, "Explain to a five-year-old what a volcano is, in less than 50 words."),
    ("haiku sequence", "max", 60, "Write a haiku sequence following one apple tree through the four seasons, no more than 60 words altogether."),
    ("ad copy", "min", 50, "Write ad copy of at least 50 words for a mattress designed especially for cats."),
    ("fable", "between", (80, 100), "Write a fable of 80 to 100 words about a crow who tries to sell shadows at a market, and end with its moral."),
    ("explanation for a child", "about", 60, "Explain how a rainbow forms to a curious child in roughly 60 words."),
    ("letter", "about", 85, "Write a letter of complaint to the moon for shining too brightly on the night you wanted to watch the stars, about 85 words."),
    ("instructions", "min", 60, "Write step-by-step instructions for folding a paper boat, no fewer than 60 words."),
    ("product description", "about", 40, "Write a product description for a teapot that plays birdsong when the tea is ready, 40 words."),
    ("news brief", "max", 80, "Report in under 80 words on a school science fair where a student built a working wind turbine from bicycle parts."),
    ("character sketch", "between", (50, 70), "Write a character sketch of a retired clown who now runs a flower shop, using 50-70 words."),
    ("social media post", "max", 40, "Write a social media post announcing that a neighborhood bakery has reopened after a flood, max 40 words."),
    ("opinion", "max", 100, "Give your opinion on whether homework should be banned on weekends, in a paragraph of at most 100 words."),
]

SHORT_ZH = [
    ("story", "about", 80, "写一个约80字的小故事：一个快递员在送最后一件包裹时，发现收件人是他自己。"),
    ("poem", "about", 100, "写一首100字左右的现代诗，描写雨后老街的青石板。"),
    ("letter", "min", 120, "给十年后的自己写一封信，不少于120字。"),
    ("product description", "max", 60, "为一款可以折叠的旅行水壶写一段商品描述，不超过60字。"),
    ("news brief", "about", 100, "写一篇100字的新闻简讯，报道一所乡村小学在屋顶建起了菜园。"),
    ("recipe intro", "about", 90, "为一道番茄炒蛋的食谱写一段约90字的开场白，语气亲切。"),
    ("dialogue", "max", 150, "写一段150字以内的对话：一只猫和一只狗在争论谁才是家里的主人。"),
    ("speech opening", "between", (80, 120), "写一段运动会开幕致辞的开头，80到120字。"),
    ("diary entry", "about", 70, "以一棵老槐树的口吻写一篇约70字的日记。"),
    ("review", "max", 100, "为一家开在地铁站里的小面馆写一段点评，不超过100字。"),
    ("explanation for a child", "about", 120, "用120字左右向一个六岁的孩子解释为什么天空是蓝色的。"),
    ("haiku sequence", "about", 60, "写三首俳句风格的短诗，主题是冬天的早晨，总共约60字。"),
    ("ad copy", "min", 50, "为一家只在夜里营业的书店写一段广告文案，不少于50字。"),
    ("fable", "about", 150, "写一篇150字的寓言，讲一只想学游泳的小鸡，结尾点出寓意。"),
    ("postcard", "about", 50, "写一张约50字的明信片，从海边小城寄给远方的朋友。"),
    ("thank-you note", "max", 80, "写一张感谢卡，感谢邻居在你出差时帮你浇花，不超过80字。"),
    ("weather report", "between", (60, 90), "以播音员的口吻，为一座动物园写一段60至90字的天气预报。"),
    ("museum label", "about", 100, "为博物馆里一把清代的木梳写一段约100字的展品说明。"),
    ("riddle", "min", 50, "写一则谜底是“影子”的谜语，50字以上。"),
    ("toast", "min", 80, "写一段婚礼上的祝酒词，至少80字，由新郎的大学室友来说。"),
    ("job ad", "about", 120, "为一家猫咖啡馆写一则约120字的招聘启事。"),
    ("motivational note", "max", 100, "写一段100字以内的鼓励的话，送给明天就要高考的表妹。"),
    ("character sketch", "about", 140, "写一段140字左右的人物素描，对象是菜市场里卖豆腐的老奶奶。"),
    ("science explainer", "min", 100, "写一段不少于100字的科普短文，介绍蜜蜂为什么要跳舞。"),
]

LONG_EN = [
    ("story", "about", 1500, "Write a short story of about 1,500 words about a translator hired to interpret for a dolphin at a city council meeting."),
    ("personal essay", "about", 1200, "Write a 1,200-word personal essay about learning to cook from a grandparent who never wrote a recipe down."),
    ("letter", "min", 300, "Write a letter of at least 300 words from a retiring postman to the town he served for forty years."),
    ("product description", "max", 200, "Write a detailed product page for a modular bookshelf that can be rearranged into a desk, in no more than 200 words."),
    ("news article", "between", (400, 600), "Write a news article of between 400 and 600 words about a city that replaced its parking lots with community orchards."),
    ("speech", "about", 800, "Write a commencement speech of 800 words for the graduates of a small agricultural college."),
    ("diary entry", "about", 700, "Write a week of diary entries, about 700 words in all, from a teenager spending the summer on a research ship."),
    ("review", "about", 250, "Write a 250-word review of an imaginary novel about a library that only opens during eclipses."),
    ("explanation for a child", "about", 400, "Explain to a ten-year-old how electricity gets from a power plant to their bedroom lamp, in about 400 words."),
    ("dialogue", "between", (500, 700), "Write a dialogue of 500 to 700 words between two astronauts arguing about whether to name a newly discovered moon after a cat."),
    ("fable", "about", 900, "Write three original fables, each ending with a stated moral, totaling roughly 900 words."),
    ("recipe intro", "about", 600, "Write a food blog post of around 600 words introducing a recipe for smoked mackerel pâté, woven around a memory of the seaside."),
    ("travel guide", "min", 1000, "Write a travel guide chapter of at least 1,000 words on spending a rainy weekend in an invented northern port town."),
    ("report", "max", 1500, "Write a report of no more than 1,500 words analyzing why a neighborhood's community garden failed and how to revive it."),
    ("poem", "about", 300, "Write a cycle of poems about the changing tides of a fishing village, about 300 words in total."),
    ("op-ed", "about", 750, "Write an op-ed of approximately 750 words arguing that every school should teach basic bicycle repair."),
    ("science explainer", "between", (1000, 1400), "Write a popular-science article of 1,000 to 1,400 words explaining how migrating birds find their way."),
    ("story", "about", 2000, "Write a 2,000-word mystery story set on an overnight sleeper train, with the decisive clue hidden in the opening scene."),
    ("cover letter", "max", 400, "Write a cover letter of up to 400 words from a puppeteer applying to work at a children's hospital."),
    ("press release", "about", 350, "Write a press release of about 350 words announcing a new app that identifies birds by their songs."),
    ("eulogy", "between", (600, 900), "Write a eulogy for a beloved village baker, in between 600 and 900 words."),
    ("memoir", "about", 1500, "Write a memoir-style scene of 1.5k words about the night the power went out across the whole city."),
    ("children's story", "min", 500, "Write a bedtime story for young children, a minimum of 500 words, about a snail who wants to see the ocean."),
    ("ad copy", "max", 600, "Write a set of five radio ad scripts for a regional train company, under 600 words altogether."),
    ("review", "about", 1000, "Write an in-depth review of an imaginary smartphone with a paper-like screen, in 1,000 words."),
    ("essay", "min", 1200, "Write an essay of more than 1,200 words on how lighthouses changed coastal trade."),
    ("guide", "about", 150, "Write a quick beginner's guide to keeping a sourdough starter alive in 150 words."),
]

LONG_ZH = [
    ("story", "about", 2000, "写一篇约2000字的短篇小说，讲一位修钟表的老师傅和一个总是迟到的中学生。"),
    ("prose essay", "about", 1500, "写一篇1500字左右的散文，回忆外婆家的灶台和冬天的柴火饭。"),
    ("report", "min", 1000, "写一份不少于1000字的调查报告，分析小区的快递柜为什么总是不够用。"),
    ("letter", "max", 800, "给二十年前教过你的中学老师写一封信，不超过800字。"),
    ("speech", "about", 3000, "写一篇3000字的演讲稿，主题是“在小城市里也能有大梦想”。"),
    ("news feature", "max", 500, "写一篇500字以内的新闻特写，报道一座山村终于通了第一班公交车。"),
    ("review", "between", (600, 800), "为一部虚构的国产动画电影写一篇600到800字的影评。"),
    ("explanation for a child", "about", 300, "用约300字给小学三年级的学生讲讲月亮为什么会有圆缺。"),
    ("diary entry", "about", 2000, "以一只流浪猫的视角写一组日记，共2千字左右。"),
    ("fairy tale", "min", 2500, "写一篇不少于2500字的童话，讲一朵不愿意开花的向日葵。"),
    ("food essay", "min", 1200, "写一篇1200字以上的美食随笔，介绍家乡的一道早餐。"),
    ("dialogue", "about", 200, "写一段约200字的对话：两个多年未见的老同学在火车站偶然重逢。"),
    ("argumentative essay", "between", (2000, 3000), "写一篇2000至3000字的议论文，讨论“慢下来”在今天是否是一种奢侈。"),
]

SETS = {
    "writing-short.jsonl": [("en", SHORT_EN, (30, 100)), ("zh", SHORT_ZH, (50, 150))],
    "writing-long.jsonl": [("en", LONG_EN, (100, 2000)), ("zh", LONG_ZH, (200, 3000))],
}
EXPECTED_COUNTS = {"writing-short.jsonl": 72, "writing-long.jsonl": 40}

MAX_HI, MAX_SPAN = 12_000, 3_000


def rule_range(rule, n):
    """The declared rule, in exact arithmetic."""
    if rule == "about":
        lo, hi = Fraction(9 * n, 10), Fraction(11 * n, 10)
    elif rule == "max":
        lo, hi = Fraction(9 * n, 10), Fraction(n)
    elif rule == "min":
        lo, hi = Fraction(n), Fraction(11 * n, 10)
    elif rule == "between":
        lo, hi = Fraction(n[0]), Fraction(n[1])
    else:
        raise ValueError(rule)
    lo = max(0, math.floor(lo / 100) * 100)
    hi = min(MAX_HI, math.ceil(hi / 100) * 100)
    if hi - lo > MAX_SPAN:
        lo = hi - MAX_SPAN
    return [lo, hi]


# ---- Port of src/reward/target.rs::extract_target, for cross-checking. ----

UPPER = ["no more than", "not more than", "not exceeding", "not to exceed", "at most", "up to", "under", "less than", "fewer than", "maximum of", "max", "within", "不超过", "不多于", "最多", "不得超过"]
LOWER = ["at least", "no less than", "not less than", "no fewer than", "more than", "over", "minimum of", "min", "不少于", "不低于", "至少", "多于", "超过"]
UPPER_AFTER = ["以内", "之内", "以下"]
LOWER_AFTER = ["以上", "或更多", " or more", "+"]
RANGE_SEP = ["-", "–", "—", "~", "to", "and", "到", "至"]


def _isdigit(ch):
    return "0" <= ch <= "9"


def _isalpha(ch):
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _numbers(c):
    out, i = [], 0
    while i < len(c):
        if _isdigit(c[i]) and (i == 0 or not (_isdigit(c[i - 1]) or _isalpha(c[i - 1]))):
            start, v = i, 0.0
            while i < len(c) and (_isdigit(c[i]) or (c[i] == "," and i + 1 < len(c) and _isdigit(c[i + 1]))):
                if _isdigit(c[i]):
                    v = v * 10 + int(c[i])
                i += 1
            if i + 1 < len(c) and c[i] == "." and _isdigit(c[i + 1]):
                i += 1
                scale = 0.1
                while i < len(c) and _isdigit(c[i]):
                    v += int(c[i]) * scale
                    scale /= 10
                    i += 1
            nxt = c[i] if i < len(c) else None
            if nxt in ("k", "K") and not (i + 1 < len(c) and _isalpha(c[i + 1])):
                v *= 1000
                i += 1
            elif nxt == "万":
                v *= 10_000
                i += 1
            elif nxt == "千":
                v *= 1000
                i += 1
            out.append((v, start, i))
        else:
            i += 1
    return out


def _text(c, a, b):
    return "".join(c[min(a, len(c)):min(b, len(c))]).lower()


def _unit_after(c, end):
    after = _text(c, end, end + 10)
    trimmed = after.lstrip(" -‐")
    skipped = len(after) - len(trimmed)
    for u in ("words", "word", "个字", "字"):
        if trimmed.startswith(u) and not (len(trimmed) > len(u) and _isalpha(trimmed[len(u)])):
            return end + skipped + len(u)
    return None


def _ends_with_any(s, pats):
    s = s.rstrip()
    for p in pats:
        if s.endswith(p) and (not any(_isalpha(ch) for ch in p) or s == p or not _isalpha(s[len(s) - len(p) - 1])):
            return True
    return False


def _normalized(lo, hi):
    lo = int(math.floor(max(lo, 0.0) / 100.0 + 1e-9) * 100)
    hi = int(math.ceil(max(hi, 0.0) / 100.0 - 1e-9) * 100)
    span = min(max(hi - lo, 0), MAX_SPAN)
    if hi > MAX_HI:
        return [MAX_HI - span, MAX_HI]
    return [max(lo, hi - span), hi]


def extract_target(prompt):
    c = list(prompt)
    nums = _numbers(c)
    for k, (v, start, end) in enumerate(nums):
        unit_end = _unit_after(c, end)
        if unit_end is None or v <= 0:
            continue
        if k > 0:
            pv, pstart, pend = nums[k - 1]
            between = _text(c, pend, start)
            sep = between.strip()
            pu = _unit_after(c, pend)
            p_has_unit = pu is not None and pu <= start
            while sep.startswith("words"):
                sep = sep[5:]
            while sep.startswith("word"):
                sep = sep[4:]
            sep = sep.strip()
            if (sep in RANGE_SEP or (sep == "" and "-" in between)) and (p_has_unit or len(between.encode()) <= 6) and pv < v:
                return _normalized(pv, v)
        before = _text(c, max(start - 24, 0), start)
        after = _text(c, unit_end, unit_end + 8).lstrip()
        if _ends_with_any(before, UPPER) or any(after.startswith(p) for p in UPPER_AFTER):
            return _normalized(0.9 * v, v)
        if _ends_with_any(before, LOWER) or any(after.startswith(p) for p in LOWER_AFTER):
            return _normalized(v, 1.1 * v)
        return _normalized(0.9 * v, 1.1 * v)
    return None


def _self_test():
    # The cases of target.rs's own unit tests.
    cases = {
        "Write a 2,000-word essay on cities.": [1800, 2200],
        "Write about 1500 words on trains.": [1300, 1700],
        "Answer in no more than 400 words.": [300, 400],
        "Write at least 1,000 words.": [1000, 1100],
        "Write between 800 and 1200 words.": [800, 1200],
        "写一篇1500字左右的散文": [1300, 1700],
        "请写不少于2000字的报告": [2000, 2200],
        "不超过500字的总结": [400, 500],
        "Write a story of 800-1200 words.": [800, 1200],
        "Write up to 250 words.": [200, 300],
        "under 100 words please": [0, 100],
        "Write a 20,000-word novella.": [9000, 12000],
        "写一篇1万字的小说": [9000, 11000],
        "写500字以内的介绍": [400, 500],
        "写2000字以上的文章": [2000, 2200],
        "In 1999 the town changed. Write a 600 word story about it.": [500, 700],
        "Write a 1.5k word essay.": [1300, 1700],
        "Write a story about 3 dragons.": None,
        "In 1999 wordsmiths gathered.": None,
        "Write a 0-word poem": None,
    }
    for p, want in cases.items():
        got = extract_target(p)
        assert got == want, f"port of extract_target disagrees with target.rs on {p!r}: {got} != {want}"


def _is_zh(s):
    return any("\u4e00" <= ch <= "\u9fff" for ch in s)


def build():
    _self_test()
    out = {}
    seen = set()
    for fname, groups in SETS.items():
        rows = []
        for lang, entries, (lo_n, hi_n) in groups:
            for genre, rule, n, prompt in entries:
                counts = n if isinstance(n, tuple) else (n,)
                assert all(lo_n <= x <= hi_n for x in counts), f"{fname}: length {n} outside {lo_n}-{hi_n}: {prompt}"
                assert _is_zh(prompt) == (lang == "zh"), f"language mismatch: {prompt}"
                rng = rule_range(rule, n)
                got = extract_target(prompt)
                assert got == rng, f"extractor reads {got}, rule gives {rng}: {prompt}"
                assert prompt not in seen, f"duplicate: {prompt}"
                seen.add(prompt)
                rows.append({"prompt": prompt, "range": rng, "lang": lang, "genre": genre})
        assert len(rows) == EXPECTED_COUNTS[fname], f"{fname}: {len(rows)} rows"
        out[fname] = rows
    return out


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "prompts")
    os.makedirs(out_dir, exist_ok=True)
    for fname, rows in build().items():
        path = os.path.join(out_dir, fname)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        langs = {}
        for r in rows:
            langs[r["lang"]] = langs.get(r["lang"], 0) + 1
        print(f"{os.path.normpath(path)}: {len(rows)} prompts {langs}")


if __name__ == "__main__":
    main()
