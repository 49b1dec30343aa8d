#!/usr/bin/env python3
"""Writes data/prompts/writer.jsonl: the prompt set of the writer job (examples/jobs/writer.toml).

The subjects and phrasings below are original, written for this project (Apache-2.0, like
the rest of it). Each subject is written once and asked for in two or three genres and
lengths, so the set teaches length control across genres instead of one genre per length.

- English lengths 50-2,000 words, Chinese 100-3,000 characters (字), in four buckets.
- About four in five prompts state their length ("about 300 words", "at least 800
  words", "两千字左右"); their line carries no "range", so the trainer reads the target
  from the prompt by the rules of src/reward/target.rs (the one implementation of them).
- The rest only imply it ("a one-paragraph", "a long, detailed feature"): those lines carry
  a "range" [lo, hi] chosen here, which the trainer uses when the rules find no count.
- The last HOLDOUT lines ("split": "eval") are the evaluation split, stratified over
  language and the buckets from 100 words up. Every other prompt on one of their subjects
  is held out too ("split": "held", just before them), so training never sees an
  evaluation subject. The writer job's data.holdout covers both.

The output is deterministic (a fixed seed); the script fails on duplicate prompts, on a
count below 400, or on a held-out split that misses a language or bucket.

It also writes data/eval/writer-heldout.jsonl: the evaluation split in LongBench-Write's
format ({"prompt", "type", "length"}), for `longwriter eval longbench --data`, with the
required length read from the prompt (a range's midpoint for "between" and implied ones).

Usage: python3 scripts/make-writer-prompts.py [OUT]   (default: data/prompts/writer.jsonl)

       python3 scripts/make-writer-prompts.py --train-eval DIR

The second form writes only the training split's English prompts in the same eval format,
as DIR/train-en.jsonl and, by asked length, DIR/train-en-a.jsonl (up to 300 words),
-b (301-800) and -c (above), in a fixed shuffle: the inputs of scripts/make-cold-start.py's
chat runs, each run with its own token cap.
"""
import json
import random
import sys

HOLDOUT = 48
SEED = 20261202

# Buckets (English words; Chinese characters are about 1.5x): the evaluation reports each.
BUCKETS_EN = [(50, 99, "under-100"), (100, 499, "100-499"), (500, 999, "500-999"), (1000, 2000, "1000-2000")]
LENGTHS_EN = [50, 80, 100, 120, 150, 200, 250, 300, 350, 400, 500, 600, 700, 800, 1000, 1200, 1500, 1800, 2000]
LENGTHS_ZH = [100, 150, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000]
ZH_NUMERALS = {100: "一百", 200: "两百", 300: "三百", 500: "五百", 800: "八百", 1000: "一千", 1500: "一千五百", 2000: "两千", 3000: "三千"}

# (kind, subject): the kind picks the genres that suit the subject.
EN_SUBJECTS = [
    ("story", "a night-shift baker who finds a note hidden in a sack of flour"),
    ("story", "a lighthouse keeper whose lamp starts signalling in a code she does not know"),
    ("story", "two rival beekeepers forced to share a hillside after a storm"),
    ("story", "a translator hired to interpret for a dolphin at a city council meeting"),
    ("story", "a retired train conductor who rides the last run of his old line"),
    ("story", "a girl who repairs radios and hears a broadcast from twenty years ago"),
    ("story", "a hotel that only accepts guests who arrive after midnight"),
    ("story", "a village where every clock stops on the same afternoon"),
    ("story", "a cartographer asked to map a forest that changes every night"),
    ("story", "an astronaut who comes home to find her town renamed"),
    ("story", "a piano tuner who can hear what the previous owners played"),
    ("story", "a ferry captain on her last crossing before the bridge opens"),
    ("story", "a boy who trains a crow to deliver letters to his grandfather"),
    ("story", "a chess club in a prison that enters a national tournament"),
    ("story", "a librarian who finds a book that is still being written"),
    ("story", "a street vendor who sells umbrellas on a planet where it never rains"),
    ("story", "a mountain rescue dog on its final search"),
    ("story", "a family that inherits a bakery along with its sourdough starter"),
    ("story", "a tailor who sews a coat for a customer who never comes back"),
    ("story", "a scientist who discovers that her plants are counting"),
    ("story", "a small-town radio host who keeps broadcasting after the power grid fails"),
    ("story", "a museum guard who talks to the paintings on the night shift"),
    ("story", "twin sisters who run competing food trucks on the same street"),
    ("story", "a kite maker in a city where kites are forbidden"),
    ("story", "a postman who delivers the last handwritten letter in the country"),
    ("story", "a violinist who loses her hearing the week before a concert"),
    ("story", "a farmer who finds a meteorite in his potato field"),
    ("story", "a robot vacuum that escapes the apartment it was made for"),
    ("story", "a grandmother who teaches the whole neighbourhood to swim"),
    ("story", "a detective who can only solve cases while cooking"),
    ("story", "a ship's cook who keeps the crew alive with one sack of lentils"),
    ("story", "a young beekeeper who negotiates with a queen bee"),
    ("story", "a pair of strangers stuck in a lift during a citywide blackout"),
    ("story", "a schoolteacher on a remote island with three pupils"),
    ("story", "a clockmaker who builds a clock that runs backwards"),
    ("essay", "why every city should plant fruit trees along its streets"),
    ("essay", "whether homework should be abolished in primary schools"),
    ("essay", "the value of learning a craft by hand in a digital age"),
    ("essay", "why public libraries matter more now than twenty years ago"),
    ("essay", "whether cities should ban cars from their centres"),
    ("essay", "what we lose when we stop writing letters by hand"),
    ("essay", "why boredom is good for children"),
    ("essay", "whether museums should return objects taken during colonial rule"),
    ("essay", "the case for a four-day working week"),
    ("essay", "how walking changes the way we think"),
    ("essay", "why small towns should keep their local newspapers"),
    ("essay", "whether space exploration is worth its cost"),
    ("essay", "what makes a good teacher"),
    ("essay", "the ethics of keeping animals in zoos"),
    ("essay", "why failure should be taught in schools"),
    ("essay", "how cooking together holds a family together"),
    ("essay", "whether social media has made us lonelier"),
    ("essay", "the importance of repairing things instead of replacing them"),
    ("essay", "why every adult should learn a second language"),
    ("essay", "how a city's night-time economy shapes its character"),
    ("topic", "how vaccines train the immune system"),
    ("topic", "why the sky is blue and sunsets are red"),
    ("topic", "how a bill becomes a law in a parliamentary system"),
    ("topic", "how bread rises and what yeast actually does"),
    ("topic", "how tides are caused by the moon and the sun"),
    ("topic", "how a compiler turns source code into a program"),
    ("topic", "what inflation is and why prices rise"),
    ("topic", "how bees communicate through their dance"),
    ("topic", "how solar panels turn light into electricity"),
    ("topic", "why some materials conduct electricity and others do not"),
    ("topic", "how the heart pumps blood around the body"),
    ("topic", "what causes earthquakes and how they are measured"),
    ("topic", "how a recession begins and how it ends"),
    ("topic", "how migratory birds find their way"),
    ("topic", "how coffee goes from a cherry on a bush to a cup"),
    ("topic", "why we dream and what sleep does for memory"),
    ("topic", "how a vaccine is tested before it is approved"),
    ("topic", "how composting turns kitchen waste into soil"),
    ("topic", "how the printing press changed Europe"),
    ("topic", "how noise-cancelling headphones work"),
    ("place", "a night market in a river town"),
    ("place", "an abandoned observatory on a mountain ridge"),
    ("place", "a fishing village in the week before winter"),
    ("place", "a desert city at the hour the heat breaks"),
    ("place", "an old railway station turned into a library"),
    ("place", "a botanical garden after a summer storm"),
    ("place", "a hillside vineyard during the grape harvest"),
    ("place", "a port city seen from the deck of an arriving ferry"),
    ("place", "a mountain hut above the tree line"),
    ("place", "a covered market on a rainy Saturday morning"),
    ("person", "a retiring postman who served one town for forty years"),
    ("person", "a nurse who worked every night shift of a long winter"),
    ("person", "a friend who is moving to another country"),
    ("person", "a teacher who changed the course of your life"),
    ("person", "a grandparent who never wrote a recipe down"),
    ("person", "a neighbour who kept the street's garden alive"),
    ("person", "the team that built a community playground"),
    ("person", "a coach whose team finally won the league"),
    ("person", "a volunteer firefighter leaving the brigade"),
    ("person", "a mentor who is retiring from a research lab"),
]

ZH_SUBJECTS = [
    ("story", "一位夜班面包师在面粉袋里发现了一张纸条"),
    ("story", "一个修收音机的女孩听到了二十年前的广播"),
    ("story", "一座所有时钟在同一个下午停止的小镇"),
    ("story", "一位老邮递员送出全国最后一封手写信"),
    ("story", "一只训练有素的乌鸦替男孩给爷爷送信"),
    ("story", "一对在停电的电梯里相遇的陌生人"),
    ("story", "一个在海岛上只有三个学生的乡村教师"),
    ("story", "一位钟表匠造出了一只倒着走的钟"),
    ("story", "一家只接待午夜之后到达客人的旅店"),
    ("story", "一位渡轮船长在大桥通车前的最后一次航行"),
    ("story", "一位老裁缝为一位再也没有回来的顾客缝制大衣"),
    ("story", "一个在禁止放风筝的城市里做风筝的人"),
    ("story", "一位山区救援犬的最后一次搜救"),
    ("story", "一家人继承了一间面包店和它的老面种"),
    ("story", "一位失聪前一周还要登台演出的小提琴手"),
    ("essay", "城市是否应该在街道两旁种植果树"),
    ("essay", "小学是否应该取消家庭作业"),
    ("essay", "数字时代手工技艺的价值"),
    ("essay", "公共图书馆为什么比以往更重要"),
    ("essay", "修理旧物而不是随手丢弃的意义"),
    ("essay", "社交媒体是否让人更加孤独"),
    ("essay", "为什么应该在学校里教人面对失败"),
    ("essay", "四天工作制的利与弊"),
    ("essay", "散步如何改变我们的思考方式"),
    ("essay", "一起做饭如何维系一个家庭"),
    ("topic", "疫苗如何训练免疫系统"),
    ("topic", "天空为什么是蓝色的，晚霞为什么是红色的"),
    ("topic", "面包为什么会发酵膨胀"),
    ("topic", "潮汐是怎样形成的"),
    ("topic", "通货膨胀是什么，物价为什么会上涨"),
    ("topic", "蜜蜂如何用舞蹈传递信息"),
    ("topic", "太阳能电池板如何把光变成电"),
    ("topic", "候鸟如何找到迁徙的方向"),
    ("topic", "地震是怎样产生的，又是如何测量的"),
    ("topic", "印刷术如何改变了世界"),
    ("place", "江边小城的夜市"),
    ("place", "入冬前一周的渔村"),
    ("place", "暴雨过后的植物园"),
    ("place", "改建成图书馆的老火车站"),
    ("place", "收获季节山坡上的葡萄园"),
    ("person", "一位在小镇工作了四十年的退休邮递员"),
    ("person", "一位改变了你人生方向的老师"),
    ("person", "一位从不写菜谱的外婆"),
    ("person", "一位即将移居国外的老朋友"),
    ("person", "一位坚守整个冬天夜班的护士"),
]

# Explicit-length phrasings: {n} is the count as written, {genre_phrase} the genre's noun.
EN_EXPLICIT = [
    "Write a {n}-word {g} about {s}.",
    "Write a {g} of about {n} words about {s}.",
    "In roughly {n} words, write a {g} about {s}.",
    "Write a {g} about {s}. Aim for around {n} words.",
    "Please write a {g} of approximately {n} words about {s}.",
    "Write a {g} about {s}, {n} words long.",
]
EN_MIN = ["Write a {g} of at least {n} words about {s}.", "Write a {g} about {s}, using a minimum of {n} words."]
EN_MAX = ["Write a {g} about {s} in no more than {n} words.", "Write a {g} of at most {n} words about {s}."]
EN_BETWEEN = ["Write a {g} of between {a} and {b} words about {s}.", "Write a {g} about {s} in {a} to {b} words."]

# Genres per kind: (noun used in the prompt, how the subject is introduced). Essays and
# explainers read "about {s}" naturally; letters and speeches address a person.
EN_GENRES = {
    "story": ["short story", "story", "piece of flash fiction", "fairy tale"],
    "essay": ["persuasive essay", "opinion column", "reflective essay", "debate speech"],
    "topic": ["explainer for a general reader", "magazine article", "encyclopedia-style entry", "lesson for high-school students"],
    "place": ["travel piece", "descriptive essay", "prose poem", "guidebook chapter"],
    "person": ["letter", "tribute speech", "profile", "farewell toast"],
}
# Implied lengths: (phrase, range in words).
EN_IMPLICIT = [
    ("one-paragraph", (50, 150)),
    ("short, one-page", (300, 500)),
    ("two-page", (600, 1000)),
    ("long, detailed", (1000, 2000)),
    ("thorough, in-depth", (1200, 2000)),
]

ZH_GENRES = {
    "story": ["短篇小说", "故事", "童话"],
    "essay": ["议论文", "评论文章", "随笔"],
    "topic": ["科普文章", "讲解文章", "百科条目"],
    "place": ["游记", "写景散文", "散文诗"],
    "person": ["书信", "致辞", "人物特写"],
}
ZH_EXPLICIT = [
    "写一篇约{n}字的{g}，主题是{s}。",
    "请以“{s}”为题，写一篇{n}字左右的{g}。",
    "围绕{s}，写一篇大约{n}字的{g}。",
    "写一篇{g}，讲述{s}，篇幅{n}字左右。",
]
ZH_MIN = ["写一篇不少于{n}字的{g}，主题是{s}。"]
ZH_MAX = ["写一篇不超过{n}字的{g}，主题是{s}。", "用{n}字以内写一篇关于{s}的{g}。"]
ZH_IMPLICIT = [("简短的", (100, 250)), ("一页左右的", (500, 800)), ("篇幅较长、内容详尽的", (1500, 3000))]


def fmt_en(n):
    return f"{n:,}"


def fmt_zh(n, rng):
    if n in ZH_NUMERALS and rng.random() < 0.4:
        return ZH_NUMERALS[n]
    return str(n)


def bucket(lang, lo, hi):
    mid = (lo + hi) / 2 / (1.5 if lang == "zh" else 1.0)
    for a, b, name in BUCKETS_EN:
        if mid <= b:
            return name
    return BUCKETS_EN[-1][2]


def articles(text):
    """ "a" before a vowel sound becomes "an": "an essay", "an 80-word", "an 800-word" (but
    "a one-paragraph", "a 1,800-word")."""
    import re

    return re.sub(r"\b([Aa]) (?=8|[aeiu]|o(?!ne))", lambda m: m.group(1) + "n ", text)


def en_prompt(rng, kind, s):
    g = rng.choice(EN_GENRES[kind])
    r = rng.random()
    if r < 0.2:
        phrase, rng_words = rng.choice(EN_IMPLICIT)
        text = f"Write a {phrase} {g} about {s}."  # every phrase takes "a" ("a one-paragraph")
        return text, list(rng_words), "implicit"
    n = rng.choice(LENGTHS_EN)
    if r < 0.3 and n >= 100:
        text = rng.choice(EN_MIN).format(g=g, n=fmt_en(n), s=s)
        rule = "min"
    elif r < 0.4 and n >= 100:
        text = rng.choice(EN_MAX).format(g=g, n=fmt_en(n), s=s)
        rule = "max"
    elif r < 0.48 and n >= 200:
        a_, b_ = n - n // 5, n + n // 5
        text = rng.choice(EN_BETWEEN).format(g=g, a=fmt_en(a_), b=fmt_en(b_), s=s)
        rule = "between"
    else:
        text = rng.choice(EN_EXPLICIT).format(g=g, n=fmt_en(n), s=s)
        rule = "about"
    return articles(text), None, rule


def zh_prompt(rng, kind, s):
    g = rng.choice(ZH_GENRES[kind])
    r = rng.random()
    if r < 0.2:
        phrase, rng_chars = rng.choice(ZH_IMPLICIT)
        return f"写一篇{phrase}{g}，主题是{s}。", list(rng_chars), "implicit"
    n = rng.choice(LENGTHS_ZH)
    if r < 0.3:
        return rng.choice(ZH_MIN).format(g=g, n=fmt_zh(n, rng), s=s), None, "min"
    if r < 0.4:
        return rng.choice(ZH_MAX).format(g=g, n=fmt_zh(n, rng), s=s), None, "max"
    return rng.choice(ZH_EXPLICIT).format(g=g, n=fmt_zh(n, rng), s=s), None, "about"


def nominal(text, lang, given, as_drawn=False):
    """The length a prompt asks for, as [lo, hi] (the trainer reads the real target itself).

    as_drawn: the reading the split was drawn with, which took "一千五百字" for its tail
    "五百字" (500). The buckets, and so the held-out split, keep it: reading it right
    would move three prompts between the splits. The evaluation's required length is
    read right."""
    if given:
        return given
    digits = "".join(ch if ch.isdigit() else " " for ch in text.replace(",", "")).split()
    if digits:
        ns = [int(d) for d in digits]
        return [min(ns), max(ns)]
    numerals = ZH_NUMERALS.items() if as_drawn else sorted(ZH_NUMERALS.items(), key=lambda kv: -len(kv[1]))
    for n, word in numerals:
        if word + "字" in text:
            return [n, n]
    raise SystemExit(f"no length in: {text}")


def build():
    rng = random.Random(SEED)
    rows, seen = [], set()
    plans = [("en", k, s) for k, s in EN_SUBJECTS for _ in range(3)] + [("zh", k, s) for k, s in ZH_SUBJECTS for _ in range(3)]
    for lang, kind, s in plans:
        for _attempt in range(20):
            text, given, rule = (en_prompt if lang == "en" else zh_prompt)(rng, kind, s)
            if text not in seen:
                break
        else:
            raise SystemExit(f"could not vary the prompt for: {s}")
        seen.add(text)
        row = {"prompt": text}
        if given:
            row["range"] = given
        lo, hi = nominal(text, lang, given, as_drawn=True)
        req_lo, req_hi = nominal(text, lang, given)
        row.update({"lang": lang, "genre": kind, "length_rule": rule, "bucket": bucket(lang, lo, hi), "subject": s, "required": (req_lo + req_hi) // 2})
        rows.append(row)
    rng.shuffle(rows)
    # A held-out split stratified over (language, bucket): the most even spread of HOLDOUT.
    strata = {}
    for i, r in enumerate(rows):
        strata.setdefault((r["lang"], r["bucket"]), []).append(i)
    held, keys = [], sorted(k for k in strata if k[1] != "under-100")
    while len(held) < HOLDOUT:
        for key in keys:
            if strata[key] and len(held) < HOLDOUT:
                held.append(strata[key].pop(0))
    # Held out by subject: the other prompts on a held-out prompt's subject are held out too
    # (they follow the evaluation split, marked "split": "held"), so the evaluation never
    # meets a subject that training saw in another genre or length.
    held_subjects = {rows[i]["subject"] for i in held}
    for i in held:
        rows[i]["split"] = "eval"
    siblings = [r for i, r in enumerate(rows) if r["subject"] in held_subjects and i not in set(held)]
    for r in siblings:
        r["split"] = "held"
    train = [r for r in rows if r["subject"] not in held_subjects]
    holdout = siblings + [rows[i] for i in sorted(held)]
    langs = {r["lang"] for r in holdout}
    buckets = {r["bucket"] for r in holdout if r["bucket"] != "under-100"}
    if langs != {"en", "zh"} or len(buckets) < 3 or len(rows) < 400:
        raise SystemExit(f"bad split: {len(rows)} prompts, held-out languages {langs}, buckets {buckets}")
    for r in rows:
        del r["subject"]
    return train + holdout, len(holdout)


def write_atomic(path, lines):
    import os

    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for r in lines:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)


def eval_form(r):
    return {"prompt": r["prompt"], "type": f'{r["genre"]} ({r["lang"]})', "length": r["required"]}


def write_train_eval(out_dir):
    import os

    rows, _ = build()
    train = [eval_form(r) for r in rows if "split" not in r and r["lang"] == "en"]
    # The order data/sft/writer-cold-start.jsonl was made in (an eval run's seeds follow
    # its rows' order).
    random.Random(7).shuffle(train)
    parts = {"": train, "-a": [r for r in train if r["length"] <= 300], "-b": [r for r in train if 300 < r["length"] <= 800], "-c": [r for r in train if r["length"] > 800]}
    for suffix, part in parts.items():
        write_atomic(os.path.join(out_dir, f"train-en{suffix}.jsonl"), part)
    print(f"{out_dir}: {len(train)} English training prompts in eval form (a/b/c: {len(parts['-a'])}/{len(parts['-b'])}/{len(parts['-c'])})")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--train-eval":
        return write_train_eval(sys.argv[2])
    out = sys.argv[1] if len(sys.argv) > 1 else "data/prompts/writer.jsonl"
    rows, n_held = build()
    evals = [eval_form(r) for r in rows if r.get("split") == "eval"]
    for r in rows:
        del r["required"]
    write_atomic(out, rows)
    write_atomic("data/eval/writer-heldout.jsonl", evals)
    en = sum(r["lang"] == "en" for r in rows)
    print(f"{out}: {len(rows)} prompts ({en} English, {len(rows) - en} Chinese); the last {n_held} are held out (data.holdout), of which the last {HOLDOUT} are the evaluation split")


if __name__ == "__main__":
    main()
