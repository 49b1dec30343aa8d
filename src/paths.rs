//! Where longwriter keeps its files. Each directory can be redirected with an environment
//! variable, which is how tests (and users with unusual setups) isolate state.

use std::path::PathBuf;

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "longwriter")
}

fn dir_from(var: &str, pick: fn(&directories::ProjectDirs) -> PathBuf, fallback: &str) -> PathBuf {
    if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    project_dirs()
        .map(|d| pick(&d))
        .unwrap_or_else(|| std::env::temp_dir().join("longwriter").join(fallback))
}

/// `config.toml`, the user's `models.toml`, user themes. Override: `LONGWRITER_CONFIG_DIR`.
pub fn config_dir() -> PathBuf {
    dir_from("LONGWRITER_CONFIG_DIR", |d| d.config_dir().to_path_buf(), "config")
}

/// Downloaded models. Override: `LONGWRITER_CACHE_DIR`.
pub fn cache_dir() -> PathBuf {
    dir_from("LONGWRITER_CACHE_DIR", |d| d.cache_dir().to_path_buf(), "cache")
}

/// Sessions database, runs, logs. Override: `LONGWRITER_DATA_DIR`.
pub fn data_dir() -> PathBuf {
    dir_from("LONGWRITER_DATA_DIR", |d| d.data_dir().to_path_buf(), "data")
}

pub fn models_dir() -> PathBuf {
    cache_dir().join("models")
}

/// Training runs, one directory each (`rl::runs`).
pub fn runs_dir() -> PathBuf {
    data_dir().join("runs")
}

pub fn logs_dir() -> PathBuf {
    data_dir().join("logs")
}
