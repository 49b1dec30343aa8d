use super::load_writer;
use crate::write::agentwrite::AgentSpec;
use crate::engine::{CancelToken, SamplerConfig, Stats, TemplateMode};
use crate::write::{Event, WriteMode, WriteRequest};
use crate::text::count_words;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct WriteArgs {
    /// The writing request. Without one (or with `-`) it is read from stdin; with one,
    /// text piped to stdin is appended to it (`cat notes.md | longwriter write "Turn these
    /// notes into an essay"`).
    pub prompt: Option<String>,
    /// A registry name (see `longwriter models list`) or a path to a .gguf file.
    #[arg(long, short, add = super::complete::models())]
    pub model: Option<String>,
    /// How the request becomes a prompt [default: longwriter, or `template` in config.toml].
    #[arg(long, value_enum)]
    pub template: Option<WriteMode>,
    /// Sampling temperature: 0 is greedy (always the likeliest token), higher is more
    /// varied [default: the model's registry setting, or config.toml].
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Nucleus sampling: draw only from the likeliest tokens whose probabilities add up to
    /// this (1 keeps all) [default: the registry setting, or config.toml].
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Draw only from the K likeliest tokens (0 keeps all) [default: the registry setting,
    /// or config.toml].
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Penalty for tokens seen in the last 64 (1 is none, above 1 discourages repeats)
    /// [default: the registry setting, or config.toml].
    #[arg(long)]
    pub repetition_penalty: Option<f32>,
    /// DRY: lower the logit of a token that would repeat a sequence of 2 or more tokens
    /// already in the text, by M · 1.75^(length − 2) (0 is off; llama.cpp's suggested 0.8)
    /// [default: the registry setting, or config.toml].
    #[arg(long, value_name = "M")]
    pub dry_multiplier: Option<f32>,
    /// Maximum new tokens (default: the model's registry setting).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Close a plan still open after N tokens: the decoder writes </think> and <answer>
    /// and the model goes on with the answer (budget forcing; local models, templates
    /// with <think>) [default: config.toml, else the model's registry setting; unset, the
    /// plan runs as long as the model makes it].
    #[arg(long, value_name = "N")]
    pub max_think_tokens: Option<usize>,
    /// A length floor: the answer may not end (end of sequence or </answer>) before it
    /// holds this share of the words asked for (the request's length or --target-words),
    /// e.g. 0.8; 0 for none (local models; not AgentWrite's steps) [default: the registry
    /// setting, or config.toml; unset, the answer ends where the model ends it].
    #[arg(long, value_name = "SHARE")]
    pub answer_floor: Option<f64>,
    /// From this share of the words asked for on, e.g. 1.2, each word makes ending
    /// likelier, so an answer that runs on still ends by sampling; 0 for none (local
    /// models) [default: the registry setting, or config.toml; unset, no nudge].
    #[arg(long, value_name = "SHARE")]
    pub end_nudge: Option<f64>,
    /// Random seed; the same seed gives the same text [default: a fresh seed for each run,
    /// printed with the stats (and in --json) so the text can be reproduced; or `seed` in
    /// config.toml].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also write the answer to this markdown file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object with think, answer, words, format_ok and stats instead of streaming.
    #[arg(long)]
    pub json: bool,
    /// Stream the think trace to stdout (inside <think> tags) instead of stderr.
    #[arg(long)]
    pub show_think: bool,
    /// AgentWrite: words the whole text should have (default: the length the request asks
    /// for, else 2000). Sets the number of plan steps (about 400 words each).
    #[arg(long)]
    pub target_words: Option<usize>,
    /// AgentWrite: treat the model's context as this many tokens (when smaller). Earlier
    /// text that no longer fits is left out of the prompts, most recent text kept.
    #[arg(long)]
    pub context: Option<usize>,
    /// AgentWrite: further attempts at a step whose generation fails.
    #[arg(long, default_value_t = 1)]
    pub retries: usize,
    /// Do not save the draft as a session (every draft is saved by default, as in the
    /// studio: `longwriter sessions list`, `sessions show --last`).
    #[arg(long)]
    pub no_save: bool,
    /// Extend the most recent session's draft, as the studio's Ctrl+N does. Takes no
    /// prompt: the session's prompt, template and text so far are used.
    #[arg(long = "continue", conflicts_with = "session")]
    pub continue_last: bool,
    /// Extend session ID's draft, as --continue does the most recent one.
    #[arg(long, add = super::complete::sessions())]
    pub session: Option<i64>,
}

/// The saved session `--continue` or `--session ID` extends, if one was asked for.
fn earlier_session(a: &WriteArgs) -> Result<Option<crate::sessions::Session>> {
    if !a.continue_last && a.session.is_none() {
        return Ok(None);
    }
    if a.prompt.is_some() {
        bail!("--continue and --session extend a saved draft with its own prompt; drop the prompt, or start a new draft without them");
    }
    let store = crate::sessions::Store::open_default()?;
    let id = match a.session {
        Some(id) => id,
        None => store.latest()?.context("no sessions to continue. Hint: longwriter write \"…\" saves one")?,
    };
    Ok(Some(store.get(id)?))
}

pub fn run(a: WriteArgs, device: &str, cfg: &crate::config::Settings) -> Result<()> {
    let earlier = earlier_session(&a)?;
    let prompt = match &earlier {
        Some(s) => s.prompt.clone(),
        None => request(a.prompt.as_deref())?,
    };
    if prompt.trim().is_empty() {
        bail!("the prompt is empty. Hint: longwriter write \"Write a 300-word story about a lighthouse keeper.\"");
    }
    // A continued draft is written on by the model that wrote it, unless one is named.
    let model_name = a.model.clone().or_else(|| earlier.as_ref().map(|s| s.model.clone())).or_else(|| cfg.model.clone());
    let (entry, mut model) = load_writer(model_name.as_deref(), device)?;
    if let Some(w) = entry.language_warning(&prompt) {
        eprintln!("warning: {w}");
    }
    let d = &entry.sampling;
    let base = cfg.sampler(&SamplerConfig::from_defaults(d));
    let target_words = a.target_words.or_else(|| crate::reward::extract_target(&prompt).map(|t| t.mid()));
    // `auto` becomes the mode it picks for this request: the session and stats name that.
    let template = a.template.or_else(|| earlier.as_ref().and_then(|s| WriteMode::parse(&s.template))).unwrap_or_else(|| cfg.template_for(&entry)).resolve(target_words);
    template.check_max_think_tokens(a.max_think_tokens, &entry).map_err(anyhow::Error::msg)?;
    let length = crate::write::LengthControl {
        floor: a.answer_floor.or(cfg.sampling.answer_floor).or(d.answer_floor),
        nudge: a.end_nudge.or(cfg.sampling.end_nudge).or(d.end_nudge),
    };
    crate::write::LengthControl { floor: a.answer_floor, nudge: a.end_nudge }.check(&entry).map_err(anyhow::Error::msg)?;
    // Continuing: the output so far goes after the prompt, as the studio's Ctrl+N does.
    let continuation = match (&earlier, template) {
        (None, _) => None,
        (Some(_), WriteMode::AgentWrite) => bail!("an AgentWrite draft is continued in the studio (Ctrl+N), which keeps its plan"),
        (Some(_), WriteMode::Auto) => unreachable!("resolve() picks a mode for auto"),
        // A template's draft, or longwriter-parts' (which holds its plan: it goes on in longwriter-chat).
        (Some(s), m) => m.template().map(|t| crate::write::continuation(t, &s.trace, &s.draft)),
    };
    let sampler = SamplerConfig {
        temperature: a.temperature.unwrap_or(base.temperature),
        top_p: a.top_p.unwrap_or(base.top_p),
        top_k: a.top_k.unwrap_or(base.top_k),
        repetition_penalty: a.repetition_penalty.unwrap_or(base.repetition_penalty),
        dry_multiplier: a.dry_multiplier.unwrap_or(base.dry_multiplier),
        seed: a.seed.or(cfg.sampling.seed).unwrap_or_else(rand::random),
        ..base
    };
    let seed = sampler.seed;
    let agent = AgentSpec {
        target_words,
        context_limit: a.context,
        retries: a.retries,
        ..Default::default()
    };
    let (continuation, start_in) = continuation.unzip();
    let text = WriteRequest { request: prompt, strategy: template.strategy(agent), continuation };
    let max_tokens = a.max_tokens.or(cfg.sampling.max_tokens).or(d.max_tokens).unwrap_or(2048);
    let mut req = text.strategy.generate_request(sampler.clone(), max_tokens);
    if let Some(s) = start_in {
        req.start_in = s;
    }
    // The flag was checked against the template; config.toml's or the registry's default
    // applies where there is a plan to close (the decoder forces nothing outside <think>).
    req.max_think_tokens = a.max_think_tokens.or(cfg.sampling.max_think_tokens).or(d.max_think_tokens);
    // A continued draft has part of its length already; the floor counts the new text only.
    if earlier.is_none() {
        length.apply(&mut req, target_words);
    }
    let (mut think, mut answer) = (String::new(), String::new());
    let (mut plan, mut notes, mut paragraphs) = (Vec::new(), Vec::new(), Vec::<String>::new());
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut in_think = false;
    let stream = !a.json;
    let show_think = a.show_think;
    let mut emit = |e: Event| match e {
        Event::Think(t) => {
            if stream {
                if show_think {
                    let mut o = stdout.lock();
                    if !in_think {
                        let _ = write!(o, "<think>");
                        in_think = true;
                    }
                    let _ = write!(o, "{}", crate::text::strip_controls(&t));
                    let _ = o.flush();
                } else {
                    let mut o = stderr.lock();
                    let _ = write!(o, "{}", dim(&crate::text::strip_controls(&t)));
                    let _ = o.flush();
                }
            }
            think.push_str(&t);
        }
        Event::Answer(t) => {
            if stream {
                let mut o = stdout.lock();
                if in_think {
                    let _ = write!(o, "</think>\n");
                    in_think = false;
                }
                // What reaches a terminal is neutralised; --json and --out keep the exact text.
                let _ = write!(o, "{}", crate::text::strip_controls(&t));
                let _ = o.flush();
            }
            if let Some(p) = paragraphs.last_mut() {
                p.push_str(&t);
            }
            answer.push_str(&t);
        }
        Event::Plan(steps) => {
            if stream {
                let lines: Vec<String> = steps.iter().enumerate().map(|(i, s)| format!("  {}", s.line(i + 1))).collect();
                eprintln!("{}", dim(&format!("plan ({} steps, {} words):\n{}", steps.len(), steps.iter().map(|s| s.words).sum::<usize>(), crate::text::strip_controls(&lines.join("\n")))));
            }
            plan = steps;
        }
        Event::Step { index, of } => {
            paragraphs.truncate(index);
            paragraphs.resize(index + 1, String::new());
            if stream {
                eprintln!("{}", dim(&format!("[step {}/{of}]", index + 1)));
            }
        }
        Event::Note(n) => {
            if stream {
                eprintln!("{}", dim(&format!("[{}]", crate::text::strip_controls(&n))));
            }
            notes.push(n);
        }
        Event::Done(_) | Event::Error(_) => {}
    };
    let stats = crate::write::generate(&mut model, &text, &req, &CancelToken::default(), &mut emit)?;
    let words = count_words(&answer);
    // The draft is kept as a session, as the studio keeps its drafts. The text is on stdout
    // already, so a store that cannot be written is a warning, not a lost draft.
    let session = if a.no_save {
        None
    } else {
        // What the model was named by (a path stays a path), so --continue can load it again.
        let named = model_name.clone().unwrap_or_else(|| entry.name.clone());
        let draft = Draft { entry: &named, mode: template, sampler: &sampler, max_tokens, request: &text.request, think: &think, answer: &answer, stats: &stats };
        match save(earlier, &draft) {
            Ok(id) => Some(id),
            Err(e) => {
                eprintln!("warning: the draft was not saved as a session: {}", crate::text::strip_controls(&format!("{e:#}")));
                None
            }
        }
    };
    if let Some(out) = &a.out {
        // Nothing is lost when this fails: the answer went to stdout, and no partial file is left.
        crate::fsutil::atomic_write(out, answer.trim().as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {}; the text was printed above and no partial file was left", out.display(), crate::fsutil::describe_io(&e)))?;
    }
    if a.json {
        let v = serde_json::json!({
            "model": entry.name,
            "template": template.label(),
            "seed": seed,
            "session": session,
            "think": think,
            "answer": answer,
            "words": words,
            "format_ok": stats.format_ok(),
            "plan": plan,
            "paragraphs": paragraphs.iter().map(|p| p.trim()).collect::<Vec<_>>(),
            "notes": notes,
            "stats": stats,
        });
        print_last(&super::json_line(&v)?)?;
    } else {
        print_last("")?;
        // The stop reason can quote a server's error message.
        if let Some(id) = session {
            eprintln!("saved as session {id} (longwriter write --continue extends it)");
        }
        eprintln!("{}", crate::text::strip_controls(&stats_line(&stats, words, template, seed)));
    }
    Ok(())
}

/// What one `write` produced, for its session.
struct Draft<'a> {
    entry: &'a str,
    mode: WriteMode,
    sampler: &'a SamplerConfig,
    max_tokens: usize,
    request: &'a str,
    think: &'a str,
    answer: &'a str,
    stats: &'a Stats,
}

/// Saves `d` as a new session, or appends it to `earlier`'s text; returns the session id.
/// The last line on stdout. A reader that has gone (`write … | head`) is no error: the
/// draft is saved and any --out file written by now. Any other failure (a full disk behind
/// `>`) is one.
fn print_last(line: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    match writeln!(o, "{line}").and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

fn save(earlier: Option<crate::sessions::Session>, d: &Draft) -> Result<i64> {
    let mut store = crate::sessions::Store::open_default()?;
    let (id, trace, draft) = match &earlier {
        Some(s) => (s.id, format!("{}{}", s.trace, d.think), format!("{}{}", s.draft, d.answer)),
        None => (0, d.think.to_string(), d.answer.to_string()),
    };
    let session = crate::sessions::Session {
        id,
        title: crate::sessions::title_of(d.request),
        model: d.entry.to_string(),
        template: d.mode.label().into(),
        settings: crate::sessions::settings_of(d.sampler, d.max_tokens, &crate::reward::extract_target(d.request)),
        prompt: d.request.to_string(),
        rewards: serde_json::json!({ "words": count_words(&draft) }),
        trace,
        draft,
        stats: serde_json::to_value(d.stats)?,
        state: format!("done: {}", d.stats.stop.describe()),
        ..Default::default()
    };
    Ok(match earlier {
        Some(_) => {
            store.save(&session)?;
            id
        }
        None => store.insert(&session)?,
    })
}

/// The request: the argument, stdin when there is none (or it is `-`), or the argument
/// with piped stdin appended, as mods and llm do.
fn request(arg: Option<&str>) -> Result<String> {
    use std::io::IsTerminal;
    let read_stdin = || -> Result<String> {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading the prompt from stdin (is it UTF-8?)")?;
        Ok(s)
    };
    let piped = !std::io::stdin().is_terminal();
    match arg {
        None | Some("-") if piped => read_stdin(),
        None | Some("-") => bail!("no prompt. Hint: longwriter write \"Write a 300-word story about a lighthouse keeper.\", or pipe one in"),
        Some(p) if piped => {
            let extra = read_stdin()?;
            Ok(if extra.trim().is_empty() { p.to_string() } else { format!("{p}\n\n{}", extra.trim_end()) })
        }
        Some(p) => Ok(p.to_string()),
    }
}

/// Faint text for the trace on stderr, when stderr is a terminal that wants colour.
fn dim(text: &str) -> String {
    if super::color(&std::io::stderr()) { format!("\x1b[2m{text}\x1b[0m") } else { text.to_string() }
}

/// The closing stats line of `write`.
pub fn stats_line(s: &Stats, words: usize, mode: WriteMode, seed: u64) -> String {
    let format = if !mode.expects_think() && mode != WriteMode::Template(TemplateMode::Nothink) {
        // The chat template and AgentWrite's prompts ask for no tags.
        format!("n/a ({})", mode.label())
    } else {
        // As the studio and the eval judge it: a plan the decoder closed is not the format.
        let mut reasons: Vec<String> = s.format.violations.iter().map(|v| v.describe().to_string()).collect();
        if s.plan_forced() {
            reasons.push(crate::reward::forced_plan_reason());
        }
        if reasons.is_empty() { "ok".to_string() } else { reasons.join(", ") }
    };
    format!(
        "[{} words | {} prompt + {} generated tokens | prefill {:.1} tok/s | decode {:.1} tok/s | stopped: {} | format {} | seed {seed}]",
        words,
        s.prompt_tokens,
        s.generated_tokens,
        s.prefill_tok_s,
        s.decode_tok_s,
        s.stop.describe(),
        format
    )
}


