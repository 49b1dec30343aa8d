//! The adapters the shipped registry names, compiled into the binary.
//!
//! Why: the shipped `models.toml` is compiled in, but its adapter entries named files in
//! the source tree the binary was built from, so a binary installed or copied elsewhere
//! listed `smollm2-135m-writer` and could not load it. Now the source tree's copy is used
//! when it is there (editing an adapter in a checkout takes effect), and otherwise the
//! binary's own copy, unpacked once under the cache dir (`shipped/`, a folder only this
//! module writes: derived data, written again if it is cleared).

use super::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use std::path::{Path, PathBuf};

/// One shipped adapter: its path as the shipped registry writes it, and its two files.
struct Adapter {
    path: &'static str,
    weights: &'static [u8],
    config: &'static [u8],
}

static ADAPTERS: &[Adapter] = &[Adapter {
    path: "adapters/smollm2-135m-writer",
    weights: include_bytes!("../../adapters/smollm2-135m-writer/adapter_model.safetensors"),
    config: include_bytes!("../../adapters/smollm2-135m-writer/adapter_config.json"),
}];

/// Where the binary's copies are unpacked.
pub(super) fn root() -> PathBuf {
    crate::paths::cache_dir().join("shipped")
}

fn embedded(rel: &Path) -> Option<&'static Adapter> {
    ADAPTERS.iter().find(|a| Path::new(a.path) == rel)
}

/// Where a shipped entry's relative adapter `rel` is read from: under `source` (the
/// source tree) when its weights are there, else under `unpacked` ([`root`]) for an
/// adapter the binary carries (written by [`unpack`] when first opened), else under
/// `source` (which then reports the missing file).
pub(super) fn locate(rel: &Path, source: &Path, unpacked: &Path) -> PathBuf {
    let in_tree = source.join(rel);
    if in_tree.join(ADAPTER_WEIGHTS).exists() || embedded(rel).is_none() {
        return in_tree;
    }
    unpacked.join(rel)
}

/// Writes the binary's copy of the adapter that [`locate`] put at `path` (under
/// `unpacked`) when the files there are missing or differ from it (atomically: a kill
/// leaves the old files or the new ones). Returns whether anything was written; a path
/// that is not such an adapter is left alone.
pub(super) fn unpack_in(path: &Path, unpacked: &Path) -> std::io::Result<bool> {
    let Some(a) = path.strip_prefix(unpacked).ok().and_then(embedded) else { return Ok(false) };
    let mut wrote = false;
    for (name, bytes) in [(ADAPTER_WEIGHTS, a.weights), (ADAPTER_CONFIG, a.config)] {
        let file = path.join(name);
        if std::fs::read(&file).ok().as_deref() != Some(bytes) {
            std::fs::create_dir_all(path)?;
            crate::fsutil::atomic_write(&file, bytes)?;
            wrote = true;
        }
    }
    Ok(wrote)
}

/// [`unpack_in`] under [`root`]: what opening or verifying an adapter entry calls first.
pub fn unpack(path: &Path) -> std::io::Result<bool> {
    unpack_in(path, &root())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_binary_unpacks_its_own_copy_of_the_shipped_adapter() {
        let rel = Path::new("adapters/smollm2-135m-writer");
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let data = tempfile::tempdir().unwrap();
        // In a checkout, the source tree's files.
        assert_eq!(locate(rel, here, data.path()), here.join(rel));
        // Elsewhere (no source tree), the unpacked copy, written on first use.
        let nowhere = data.path().join("no-source-tree");
        let at = locate(rel, &nowhere, data.path());
        assert_eq!(at, data.path().join(rel));
        assert!(unpack_in(&at, data.path()).unwrap());
        for name in [ADAPTER_WEIGHTS, ADAPTER_CONFIG] {
            assert_eq!(std::fs::read(at.join(name)).unwrap(), std::fs::read(here.join(rel).join(name)).unwrap(), "{name}");
        }
        // Once there, left alone; damaged, written again.
        assert!(!unpack_in(&at, data.path()).unwrap());
        std::fs::write(at.join(ADAPTER_WEIGHTS), b"truncated").unwrap();
        assert!(unpack_in(&at, data.path()).unwrap());
        assert_eq!(std::fs::read(at.join(ADAPTER_WEIGHTS)).unwrap().len(), std::fs::read(here.join(rel).join(ADAPTER_WEIGHTS)).unwrap().len());
        // Anything else is not this module's to write.
        assert!(!unpack_in(&data.path().join("adapters/mine"), data.path()).unwrap());
        assert_eq!(locate(Path::new("adapters/mine"), &nowhere, data.path()), nowhere.join("adapters/mine"));
    }
}
