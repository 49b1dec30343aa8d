use super::BarProgress;
use crate::models::{self, Registry, Source, VerifyOutcome};
use anyhow::{bail, Result};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ModelsCmd {
    /// List registry entries and whether each is downloaded.
    List {
        /// One JSON array: [{name, default, architecture, role, source, size, status, description}].
        #[arg(long)]
        json: bool,
    },
    /// Download a model (default: the default model) and verify its checksum.
    Pull {
        #[arg(add = super::complete::entries())]
        name: Option<String>,
    },
    /// Re-hash a downloaded model against the registry.
    Verify {
        #[arg(add = super::complete::entries())]
        name: Option<String>,
    },
    /// Print where a model's file lives (or, with --config, the user models.toml path).
    Path {
        #[arg(add = super::complete::entries())]
        name: Option<String>,
        #[arg(long)]
        config: bool,
    },
    /// Delete a downloaded model.
    Rm {
        #[arg(add = super::complete::entries())]
        name: String,
    },
}

pub fn run(cmd: ModelsCmd) -> Result<()> {
    let reg = Registry::load()?;
    let pick = |n: &Option<String>| -> Result<models::ModelEntry> {
        Ok(match n {
            Some(n) => reg.get(n)?.clone(),
            None => reg.default_entry().clone(),
        })
    };
    match cmd {
        ModelsCmd::List { json: true } => {
            let rows: Vec<serde_json::Value> = reg
                .models
                .iter()
                .map(|(name, m)| {
                    serde_json::json!({
                        "name": name, "default": *name == reg.default, "architecture": m.architecture, "role": m.role,
                        "source": source_kind(&m.source), "size": m.size, "status": status(m), "description": m.description,
                        "trained": m.trained, "languages": m.languages,
                    })
                })
                .collect();
            println!("{}", super::json_line(&rows)?);
        }
        ModelsCmd::List { json: false } => {
            // Exported models get long names ("writer-v2-step48"): the column fits the longest.
            let w = reg.models.keys().map(|n| n.chars().count() + 1).max().unwrap_or(0).max(24);
            println!("{:<w$} {:<6} {:<10} {:>9} {:>8}  {}", "NAME", "ARCH", "SOURCE", "SIZE", "STATUS", "DESCRIPTION");
            for (name, m) in &reg.models {
                let size = m.size.map(|s| format!("{:.1} MB", s as f64 / 1e6)).unwrap_or_else(|| "?".into());
                let status = match status(m) {
                    "absent" => "-",
                    s => s,
                };
                let star = if *name == reg.default { "*" } else { " " };
                // A user's models.toml can hold any text.
                let clean = crate::text::strip_controls;
                let description = match &m.trained {
                    Some(t) => format!("[trained: job {}, step {}] {}", t.job, t.step, m.description),
                    None => m.description.clone(),
                };
                println!("{:<w$} {:<6} {:<10} {:>9} {:>8}  {}", clean(&format!("{name}{star}")), clean(&m.architecture), source_kind(&m.source), size, status, clean(&description));
            }
            println!("(* default; user registry: {})", crate::paths::config_dir().join("models.toml").display());
        }
        ModelsCmd::Pull { name } => {
            let e = pick(&name)?;
            let p = crate::write::ensure_file(&e, &BarProgress::new())?;
            println!("{}", p.display());
        }
        ModelsCmd::Verify { name } => {
            let e = pick(&name)?;
            match models::verify(&e, &BarProgress::new())? {
                VerifyOutcome::Ok { sha256 } => println!("ok {} sha256 {sha256}", e.name),
                VerifyOutcome::Unpinned { sha256 } => println!("unpinned {} sha256 {sha256} (add it to models.toml to pin it)", e.name),
                VerifyOutcome::Missing => bail!("model '{}' is not downloaded. Hint: longwriter models pull {}", e.name, e.name),
                VerifyOutcome::Mismatch { expected, actual } => {
                    bail!("checksum mismatch for '{}': expected {expected}, got {actual}. Hint: longwriter models rm {} && longwriter models pull {}", e.name, e.name, e.name)
                }
            }
        }
        ModelsCmd::Path { name, config } => {
            if config {
                println!("{}", crate::paths::config_dir().join("models.toml").display());
            } else {
                println!("{}", models::local_path(&pick(&name)?)?.display());
            }
        }
        ModelsCmd::Rm { name } => {
            let e = reg.get(&name)?;
            if matches!(e.source, Source::Local { .. }) {
                bail!("'{name}' is a local file; longwriter does not delete files it did not download");
            }
            if models::remove(e)? {
                println!("removed {name}");
            } else {
                println!("{name} was not downloaded");
            }
        }
    }
    Ok(())
}

fn source_kind(s: &Source) -> &'static str {
    match s {
        Source::Pip { .. } => "pip",
        Source::PipParts { .. } => "pip-parts",
        Source::Hf { .. } => "hf",
        Source::Local { .. } => "local",
        Source::Server { .. } => "server",
        Source::Adapter { .. } => "adapter",
    }
}

/// `present`, `absent`, or `remote` (a server: nothing to download).
fn status(m: &models::ModelEntry) -> &'static str {
    if m.format == models::Format::Remote {
        "remote"
    } else if models::is_present(m) {
        "present"
    } else {
        "absent"
    }
}
