//! Loading the trusted key set: Apple's keys compiled into the binary, or a directory given with
//! `--keys` (same layout as `apple_keys/`: a `keys.toml` manifest beside its PEM files).

use std::path::{Path, PathBuf};

use crate::skan::{KeyError, KeySet};

/// Why the key set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadKeysError {
    /// The manifest could not be read.
    #[error("cannot read {path}: {source}")]
    Manifest {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest or a key file is not acceptable.
    #[error("key set in {dir}: {source}")]
    Keys {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        #[source]
        source: KeyError,
    },
}

/// Load the key set from `dir`, or the embedded Apple keys when `dir` is `None`.
///
/// # Errors
/// [`LoadKeysError`] naming the file and what is wrong with it.
pub fn load(dir: Option<&Path>) -> Result<KeySet, LoadKeysError> {
    let Some(dir) = dir else {
        return KeySet::embedded()
            .map_err(|source| LoadKeysError::Keys { dir: PathBuf::from("<embedded>"), source });
    };
    let manifest_path = dir.join("keys.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .map_err(|source| LoadKeysError::Manifest { path: manifest_path, source })?;
    KeySet::from_manifest(&manifest, |file| {
        if Path::new(file).components().count() != 1 {
            return Err("key files must sit in the key directory itself".to_owned());
        }
        std::fs::read_to_string(dir.join(file)).map_err(|e| e.to_string())
    })
    .map_err(|source| LoadKeysError::Keys { dir: dir.to_owned(), source })
}
