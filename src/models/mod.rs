//! The model registry (`models.toml`) and getting model files onto disk.
//!
//! A shipped registry is compiled into the binary; a `models.toml` in the config dir
//! adds entries or replaces shipped ones by name.

mod fetch;
mod registry;
mod shipped;

pub use shipped::unpack as unpack_shipped;
pub use fetch::{companion_paths, ensure, is_present, local_path, remove, verify, FetchError, Progress, Silent, VerifyOutcome};
pub use registry::{check_length_shares, language_warning, length_control_on, Companion, Format, ModelEntry, RemoteApi, Role, Registry, RegistryError, SamplingDefaults, Source, Trained, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
