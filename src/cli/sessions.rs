use crate::sessions::{export_markdown, Store};
use crate::text::strip_controls as clean;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum SessionsCmd {
    /// List sessions, most recent first.
    List {
        /// One JSON array: [{id, updated, title, model, words}].
        #[arg(long)]
        json: bool,
    },
    /// Full-text search over prompts and drafts.
    Search {
        query: Vec<String>,
        /// One JSON array, as `list --json`.
        #[arg(long)]
        json: bool,
    },
    /// Print a session's prompt, trace and draft.
    Show {
        /// The session (see `sessions list`).
        #[arg(required_unless_present = "last", conflicts_with = "last")]
        #[arg(add = super::complete::sessions())]
        id: Option<i64>,
        /// The most recently updated session.
        #[arg(long)]
        last: bool,
        /// One JSON object: {id, created, updated, title, model, template, settings, prompt,
        /// trace, draft, stats, rewards, state}; settings.sampling.seed is the draft's seed.
        #[arg(long)]
        json: bool,
    },
    /// Delete a session.
    Rm {
        #[arg(add = super::complete::sessions())]
        id: i64,
    },
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(add = super::complete::sessions())]
    pub id: i64,
    /// Output file (default: <slug>-<id>.md in the current directory). Never overwritten.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Append the think trace in a <details> block.
    #[arg(long)]
    pub trace: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A markdown file: a `longwriter export` (prompt, settings, draft and trace come back)
    /// or any text, which becomes the draft.
    pub file: PathBuf,
}

pub fn import(a: ImportArgs) -> Result<()> {
    let read = |e: std::io::Error| anyhow::anyhow!("cannot read {}: {}", a.file.display(), crate::fsutil::describe_io(&e));
    let len = std::fs::metadata(&a.file).map_err(read)?.len();
    if len > crate::sessions::MAX_IMPORT_BYTES as u64 {
        bail!("{}: {len} bytes; an import is at most {}", a.file.display(), crate::sessions::MAX_IMPORT_BYTES);
    }
    let bytes = std::fs::read(&a.file).map_err(read)?;
    let name = a.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "imported".into());
    let session = crate::sessions::import_markdown(&bytes, &name).with_context(|| format!("cannot import {}", a.file.display()))?;
    let id = Store::open_default()?.insert(&session)?;
    println!("imported {} as session {id} ({} words). Open it: longwriter --session {id}", clean(&a.file.display().to_string()), crate::text::count_words(&session.draft));
    Ok(())
}

pub fn run(cmd: SessionsCmd) -> Result<()> {
    let store = Store::open_default()?;
    match cmd {
        SessionsCmd::List { json } | SessionsCmd::Search { json, .. } => {
            let rows = match &cmd {
                SessionsCmd::Search { query, .. } => store.search(&query.join(" "))?,
                _ => store.list()?,
            };
            if json {
                println!("{}", super::json_line(&rows)?);
                return Ok(());
            }
            if rows.is_empty() {
                println!("no sessions");
            }
            for r in rows {
                // Titles and model names come from imported files: never raw to the terminal.
                println!("{:>5}  {}  {:>7} words  {:<16} {}", r.id, clean(&r.updated), r.words, clean(&r.model), clean(&r.title));
            }
        }
        // Without an id, clap has made sure --last was given.
        SessionsCmd::Show { id, json, .. } => {
            let id = match id {
                Some(id) => id,
                None => store.latest()?.context("no sessions yet. Hint: the studio saves each draft as a session")?,
            };
            let s = store.get(id)?;
            if json {
                println!("{}", super::json_line(&s)?);
                return Ok(());
            }
            println!("# {}  (session {}, {}, {}, {})\n", clean(&s.title), s.id, clean(&s.model), clean(&s.template), clean(&s.state));
            println!("## Prompt\n\n{}\n", clean(&s.prompt));
            if !s.trace.is_empty() {
                println!("## Think\n\n{}\n", clean(&s.trace));
            }
            println!("## Draft\n\n{}", clean(&s.draft));
        }
        SessionsCmd::Rm { id } => {
            if !store.remove(id)? {
                bail!("no session {id}. Hint: longwriter sessions list");
            }
            println!("removed session {id}");
        }
    }
    Ok(())
}

pub fn export(a: ExportArgs) -> Result<()> {
    let store = Store::open_default()?;
    let s = store.get(a.id)?;
    let out = a.out.unwrap_or_else(|| PathBuf::from(format!("{}-{}.md", crate::sessions::slug(&s.title), s.id)));
    crate::fsutil::write_new(&out, export_markdown(&s, a.trace).as_bytes()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} already exists; exports never overwrite. Hint: pass --out NEW.md", out.display())
        } else {
            anyhow::anyhow!("cannot write {}: {}", out.display(), crate::fsutil::describe_io(&e))
        }
    })?;
    println!("{}", out.display());
    Ok(())
}
