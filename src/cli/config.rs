use super::Cli;
use crate::config::{Settings, TEMPLATE};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print where config.toml lives.
    Path,
    /// Print the settings in effect and where each one comes from.
    Show {
        /// One JSON object: {config_file, settings: {KEY: {value, from}}}, the sampling keys
        /// as `sampling.KEY`; `from` is "flag or environment", "config.toml", the models.toml
        /// entry, or "default".
        #[arg(long)]
        json: bool,
    },
    /// Check a settings file (default: the user's config.toml) and report the first problem.
    Check { file: Option<PathBuf> },
    /// Write a commented config.toml with every key (never replaces an existing one).
    Init,
}

pub fn run(cmd: &ConfigCmd, cli: &Cli) -> Result<()> {
    let path = Settings::path();
    match cmd {
        ConfigCmd::Path => println!("{}", path.display()),
        ConfigCmd::Check { file } => {
            let file = file.clone().unwrap_or(path);
            if !file.exists() {
                anyhow::bail!("{} does not exist. Hint: longwriter config init", file.display());
            }
            Settings::load_from(&file)?;
            println!("{}: ok", file.display());
        }
        ConfigCmd::Init => {
            crate::fsutil::write_new(&path, TEMPLATE.as_bytes()).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => anyhow::anyhow!("{} already exists; it is left as it is", path.display()),
                _ => anyhow::anyhow!("cannot write {}: {}", path.display(), crate::fsutil::describe_io(&e)),
            })?;
            println!("{}", path.display());
        }
        ConfigCmd::Show { json } => show(cli, &path, *json)?,
    }
    Ok(())
}

/// The first value present, and the layer it came from.
fn pick(layers: &[(&str, Option<String>)], default: &str) -> (String, String) {
    layers
        .iter()
        .find_map(|(from, v)| v.as_ref().map(|v| (v.clone(), from.to_string())))
        .unwrap_or_else(|| (default.to_string(), "default".into()))
}

fn show(cli: &Cli, path: &std::path::Path, json: bool) -> Result<()> {
    let cfg = Settings::load()?;
    let flag = "flag or environment";
    let file = "config.toml";
    let entry = super::resolve_model(cli.model.as_deref().or(cfg.model.as_deref()))?;
    // With neither layer set, the entry is the registry's default.
    let model = pick(&[(flag, cli.model.clone()), (file, cfg.model.clone())], &entry.name);
    let reg = format!("models.toml entry {}", entry.name);
    let rows = [
        ("model", model),
        ("template", pick(&[(flag, cli.template.map(|t| t.label().to_string())), (file, cfg.template.map(|t| t.label().to_string())), (&reg, entry.template.clone())], crate::write::WriteMode::default().label())),
        ("theme", pick(&[(flag, cli.theme.clone()), (file, cfg.theme.clone())], "dark")),
        ("device", pick(&[(flag, cli.device.clone()), (file, cfg.device.clone())], "cpu")),
        ("threads", pick(&[(flag, cli.threads.map(|n| n.to_string())), (file, cfg.threads.map(|n| n.to_string()))], "all cores")),
        ("judge", pick(&[(flag, cli.judge.clone()), (file, cfg.judge.clone())], "fluency proxy on the writing model")),
        ("train_job", pick(&[(flag, cli.train_job.as_ref().map(|p| p.display().to_string())), (file, cfg.train_job.as_ref().map(|p| p.display().to_string()))], "short-format-length")),
    ];
    let d = &entry.sampling;
    let base = crate::engine::SamplerConfig::default();
    let s = &cfg.sampling;
    let num = |v: Option<f64>| v.map(|v| v.to_string());
    let sampling = [
        ("temperature", pick(&[(file, num(s.temperature)), (&reg, num(d.temperature))], &base.temperature.to_string())),
        ("top_p", pick(&[(file, num(s.top_p)), (&reg, num(d.top_p))], &base.top_p.to_string())),
        ("top_k", pick(&[(file, s.top_k.map(|v| v.to_string())), (&reg, d.top_k.map(|v| v.to_string()))], &base.top_k.to_string())),
        ("repetition_penalty", pick(&[(file, s.repetition_penalty.map(|v| v.to_string())), (&reg, d.repetition_penalty.map(|v| v.to_string()))], &base.repetition_penalty.to_string())),
        ("dry_multiplier", pick(&[(file, s.dry_multiplier.map(|v| v.to_string())), (&reg, d.dry_multiplier.map(|v| v.to_string()))], "0: off")),
        ("max_tokens", pick(&[(flag, cli.max_tokens.map(|v| v.to_string())), (file, s.max_tokens.map(|v| v.to_string())), (&reg, d.max_tokens.map(|v| v.to_string()))], "2048")),
        ("max_think_tokens", pick(&[(file, s.max_think_tokens.map(|v| v.to_string())), (&reg, d.max_think_tokens.map(|v| v.to_string()))], "none: plans run as long as the model makes them")),
        ("answer_floor", pick(&[(file, num(s.answer_floor)), (&reg, num(d.answer_floor))], "none: answers end where the model ends them")),
        ("end_nudge", pick(&[(file, num(s.end_nudge)), (&reg, num(d.end_nudge))], "none: ending is never made likelier")),
        ("seed", pick(&[(flag, cli.seed.map(|v| v.to_string())), (file, s.seed.map(|v| v.to_string()))], "a fresh one for each draft")),
    ];
    let all: Vec<(String, (String, String))> = rows.into_iter().map(|(k, v)| (k.to_string(), v)).chain(sampling.into_iter().map(|(k, v)| (format!("sampling.{k}"), v))).collect();
    let width = all.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    if json {
        let settings: serde_json::Map<String, serde_json::Value> = all.into_iter().map(|(k, (value, from))| (k, serde_json::json!({ "value": value, "from": from }))).collect();
        println!("{}", super::json_line(&serde_json::json!({ "config_file": path, "exists": path.exists(), "settings": settings }))?);
        return Ok(());
    }
    println!("config file: {}{}", path.display(), if path.exists() { "" } else { " (absent)" });
    for (k, (value, from)) in all {
        // Values can come from a user's files; never raw to the terminal.
        println!("{k:<width$} {}  ({from})", crate::text::strip_controls(&value));
    }
    Ok(())
}
