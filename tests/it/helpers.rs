//! Shared test fixtures: the vector files and key sets in `testdata/`.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;
use skan_receiver::skan::{KeySet, PostbackSigner};

/// One vector as stored in `testdata/apple-published.json` and `testdata/vectors/own.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Vector {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) source: Option<String>,
    pub(crate) postback: Value,
    pub(crate) verifies: bool,
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) expect: Option<Value>,
}

impl Vector {
    pub(crate) fn label(&self) -> String {
        self.name.clone().or_else(|| self.source.clone()).unwrap_or_default()
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.postback).unwrap()
    }
}

pub(crate) fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn load(relative: &str) -> Vec<Vector> {
    let text = std::fs::read_to_string(repo_path(relative)).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub(crate) static APPLE_VECTORS: LazyLock<Vec<Vector>> =
    LazyLock::new(|| load("testdata/apple-published.json"));
pub(crate) static OWN_VECTORS: LazyLock<Vec<Vector>> =
    LazyLock::new(|| load("testdata/vectors/own.json"));

pub(crate) static APPLE_KEYS: LazyLock<KeySet> =
    LazyLock::new(|| skan_receiver::apple_keys::load(None).unwrap());
pub(crate) static TEST_KEYS: LazyLock<KeySet> =
    LazyLock::new(|| skan_receiver::apple_keys::load(Some(&repo_path("testdata/keys"))).unwrap());

/// Every vector with the key set it must verify under.
pub(crate) fn all_vectors() -> Vec<(Vector, &'static KeySet)> {
    let apple = APPLE_VECTORS.iter().cloned().map(|v| (v, &*APPLE_KEYS));
    let own = OWN_VECTORS.iter().cloned().map(|v| (v, &*TEST_KEYS));
    apple.chain(own).collect()
}

/// A signer holding the private halves of the test keys.
pub(crate) fn test_signer() -> PostbackSigner {
    let read =
        |name: &str| std::fs::read_to_string(repo_path(&format!("testdata/keys/{name}"))).unwrap();
    PostbackSigner::from_pkcs8_pem(
        Some(&read("test-p256.key.pem")),
        Some(&read("test-p192.key.pem")),
    )
    .unwrap()
}
