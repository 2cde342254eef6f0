//! Apple's public keys and the manifest that says which key verifies what.
//!
//! The key set is data, not code: `apple_keys/keys.toml` lists each PEM file, its curve, the
//! SKAdNetwork versions and AdAttributionKit `kid`s it verifies, and whether it is a development
//! key. The default set is compiled into the binary; `--keys DIR` swaps in a directory of the same
//! layout (tests and benchmarks use that to verify postbacks signed with their own key). Reading
//! files is the caller's business: this module only parses text it is handed.

use std::collections::HashMap;
use std::sync::Arc;

use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;

use super::fixed_key::FixedKeyVerifier;
use super::fixed_key::p192_tables::FixedKeyVerifier as FixedKeyVerifierP192;
use super::signature_cache::SignatureCache;
use super::version::{Curve, SkanVersion};

/// A parsed public key on one of the curves Apple uses.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// P-192 (SKAdNetwork 1.0 and 2.0).
    P192(p192::ecdsa::VerifyingKey),
    /// P-256 (SKAdNetwork 2.1+, AdAttributionKit).
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// The key's curve.
    #[must_use]
    pub fn curve(&self) -> Curve {
        match self {
            Self::P192(_) => Curve::P192,
            Self::P256(_) => Curve::P256,
        }
    }
}

/// One key of the set, with what it is trusted for.
#[derive(Debug, Clone)]
pub struct AppleKey {
    /// The manifest's file name without `.pem`; reported with every verification.
    pub name: String,
    /// The key itself.
    pub key: PublicKey,
    /// Development keys prove nothing about real installs; what they verify is marked as such.
    pub development: bool,
    /// SKAdNetwork versions this key verifies.
    pub skadnetwork_versions: Vec<SkanVersion>,
    /// AdAttributionKit `kid` values this key verifies.
    pub adattributionkit_kids: Vec<String>,
}

/// The keys a verifier trusts, indexed for lookup by SKAdNetwork version and by JWS `kid`, and
/// how to check signatures with them: the generic verifier by default, fixed-key tables after
/// [`KeySet::with_fixed_key_tables`], remembered answers after [`KeySet::with_signature_cache`].
/// Clones share tables and cache.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<AppleKey>,
    by_version: HashMap<SkanVersion, usize>,
    by_kid: HashMap<String, usize>,
    fixed: HashMap<String, Arc<FixedKeyVerifier>>,
    fixed_p192: HashMap<String, Arc<FixedKeyVerifierP192>>,
    cache: Option<Arc<SignatureCache>>,
}

/// Why a key manifest or key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `keys.toml` is not valid TOML of the expected shape.
    #[error("keys.toml: {0}")]
    Manifest(#[from] toml::de::Error),
    /// A key file could not be read.
    #[error("{file}: {reason}")]
    Read {
        /// The file named in the manifest.
        file: String,
        /// Why it could not be read.
        reason: String,
    },
    /// A key file is not a PEM SubjectPublicKeyInfo on the stated curve.
    #[error("{file}: not a PEM public key on {curve}: {reason}")]
    Pem {
        /// The file named in the manifest.
        file: String,
        /// The curve the manifest claims.
        curve: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// The manifest names a curve we do not know.
    #[error("{file}: unknown curve {curve:?} (expected \"P-192\" or \"P-256\")")]
    UnknownCurve {
        /// The file named in the manifest.
        file: String,
        /// What the manifest says.
        curve: String,
    },
    /// The manifest names a SKAdNetwork version without a published composition.
    #[error(
        "{file}: unknown SKAdNetwork version {version:?} (known: 1.0, 2.0, 2.1, 2.2, 3.0, 4.0)"
    )]
    UnknownVersion {
        /// The file named in the manifest.
        file: String,
        /// What the manifest says.
        version: String,
    },
    /// The key's curve is not the curve Apple uses for what the manifest assigns it.
    #[error("{file}: {what} is signed with {expected}, but this key is {actual}")]
    CurveMismatch {
        /// The file named in the manifest.
        file: String,
        /// The version or kid assigned.
        what: String,
        /// The curve Apple uses for it.
        expected: &'static str,
        /// The key's curve.
        actual: &'static str,
    },
    /// Two keys claim the same version or kid.
    #[error("{what} is assigned to both {first} and {second}")]
    Duplicate {
        /// The version or kid.
        what: String,
        /// The first file claiming it.
        first: String,
        /// The second file claiming it.
        second: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    key: Vec<ManifestKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestKey {
    file: String,
    curve: String,
    #[serde(default)]
    skadnetwork_versions: Vec<String>,
    #[serde(default)]
    adattributionkit_kids: Vec<String>,
    #[serde(default)]
    development: bool,
}

/// The manifest and key files compiled into the binary (the `apple_keys/` directory).
const EMBEDDED_MANIFEST: &str = include_str!("../../apple_keys/keys.toml");
const EMBEDDED_FILES: &[(&str, &str)] = &[
    ("skadnetwork-p192.pem", include_str!("../../apple_keys/skadnetwork-p192.pem")),
    ("skadnetwork-p256.pem", include_str!("../../apple_keys/skadnetwork-p256.pem")),
    (
        "adattributionkit-development-0.pem",
        include_str!("../../apple_keys/adattributionkit-development-0.pem"),
    ),
    (
        "adattributionkit-development-1.pem",
        include_str!("../../apple_keys/adattributionkit-development-1.pem"),
    ),
];

impl KeySet {
    /// Apple's published keys, as compiled into the binary.
    ///
    /// # Errors
    /// Only if the embedded files are corrupt, which the test suite rules out.
    pub fn embedded() -> Result<Self, KeyError> {
        Self::from_manifest(EMBEDDED_MANIFEST, |file| {
            EMBEDDED_FILES
                .iter()
                .find(|(name, _)| *name == file)
                .map(|(_, pem)| (*pem).to_owned())
                .ok_or_else(|| "not among the embedded key files".to_owned())
        })
    }

    /// Build a key set from a manifest, asking `read_file` for each PEM file it names.
    ///
    /// # Errors
    /// A [`KeyError`] naming the file and the problem: unreadable file, bad PEM, unknown curve or
    /// version, a curve that does not match what it is assigned, or a version/kid assigned twice.
    pub fn from_manifest(
        manifest: &str,
        mut read_file: impl FnMut(&str) -> Result<String, String>,
    ) -> Result<Self, KeyError> {
        let manifest: Manifest = toml::from_str(manifest)?;
        let mut set = Self {
            keys: Vec::new(),
            by_version: HashMap::new(),
            by_kid: HashMap::new(),
            fixed: HashMap::new(),
            fixed_p192: HashMap::new(),
            cache: None,
        };
        for entry in manifest.key {
            let pem = read_file(&entry.file)
                .map_err(|reason| KeyError::Read { file: entry.file.clone(), reason })?;
            let key = parse_key(&entry.file, &entry.curve, &pem)?;
            let name = entry.file.strip_suffix(".pem").unwrap_or(&entry.file).to_owned();
            let mut versions = Vec::new();
            for text in &entry.skadnetwork_versions {
                let version = SkanVersion::from_exact(text).ok_or_else(|| {
                    KeyError::UnknownVersion { file: entry.file.clone(), version: text.clone() }
                })?;
                check_curve(&entry.file, &format!("SKAdNetwork {version}"), version.curve(), &key)?;
                versions.push(version);
            }
            for kid in &entry.adattributionkit_kids {
                check_curve(
                    &entry.file,
                    &format!("AdAttributionKit kid {kid:?}"),
                    Curve::P256,
                    &key,
                )?;
            }
            let index = set.keys.len();
            for version in &versions {
                if let Some(&first) = set.by_version.get(version) {
                    return Err(set.duplicate(
                        format!("SKAdNetwork {version}"),
                        first,
                        &entry.file,
                    ));
                }
                set.by_version.insert(*version, index);
            }
            for kid in &entry.adattributionkit_kids {
                if let Some(&first) = set.by_kid.get(kid) {
                    return Err(set.duplicate(format!("kid {kid:?}"), first, &entry.file));
                }
                set.by_kid.insert(kid.clone(), index);
            }
            set.keys.push(AppleKey {
                name,
                key,
                development: entry.development,
                skadnetwork_versions: versions,
                adattributionkit_kids: entry.adattributionkit_kids,
            });
        }
        Ok(set)
    }

    fn duplicate(&self, what: String, first: usize, second: &str) -> KeyError {
        KeyError::Duplicate {
            what,
            first: self.keys[first].name.clone(),
            second: second.to_owned(),
        }
    }

    /// The key that verifies SKAdNetwork postbacks of `version`, if the set has one.
    #[must_use]
    pub fn for_skan(&self, version: SkanVersion) -> Option<&AppleKey> {
        self.by_version.get(&version).map(|&i| &self.keys[i])
    }

    /// The key an AdAttributionKit JWS names with `kid`, if the set has one.
    #[must_use]
    pub fn for_kid(&self, kid: &str) -> Option<&AppleKey> {
        self.by_kid.get(kid).map(|&i| &self.keys[i])
    }

    /// Every key, in manifest order.
    #[must_use]
    pub fn keys(&self) -> &[AppleKey] {
        &self.keys
    }

    /// Build a fixed-key table for every key, P-256 and P-192 (see [`FixedKeyVerifier`]), so
    /// verification takes the fast path. Tens of milliseconds per key; call once at start-up.
    #[must_use]
    pub fn with_fixed_key_tables(mut self) -> Self {
        for key in &self.keys {
            match &key.key {
                PublicKey::P256(verifying_key) => {
                    let fixed = Arc::new(FixedKeyVerifier::new(verifying_key));
                    self.fixed.insert(key.name.clone(), fixed);
                }
                PublicKey::P192(verifying_key) => {
                    let fixed = Arc::new(FixedKeyVerifierP192::new(verifying_key));
                    self.fixed_p192.insert(key.name.clone(), fixed);
                }
            }
        }
        self
    }

    /// Bytes held by fixed-key tables, the shared generator tables included (0 without tables).
    #[must_use]
    pub fn table_bytes(&self) -> usize {
        let p256 = if self.fixed.is_empty() {
            0
        } else {
            FixedKeyVerifier::generator_table_bytes()
                + self.fixed.values().map(|f| f.table_bytes()).sum::<usize>()
        };
        let p192 = if self.fixed_p192.is_empty() {
            0
        } else {
            FixedKeyVerifierP192::generator_table_bytes()
                + self.fixed_p192.values().map(|f| f.table_bytes()).sum::<usize>()
        };
        p256 + p192
    }

    /// Remember up to `capacity` verification answers, so duplicates are not verified again.
    #[must_use]
    pub fn with_signature_cache(mut self, capacity: usize) -> Self {
        self.cache = Some(Arc::new(SignatureCache::new(capacity)));
        self
    }

    /// The signature cache, when there is one.
    #[must_use]
    pub fn signature_cache(&self) -> Option<&SignatureCache> {
        self.cache.as_deref()
    }

    /// The fixed-key verifier for `key`, when tables were built.
    pub(super) fn fixed_verifier(&self, key: &AppleKey) -> Option<&FixedKeyVerifier> {
        self.fixed.get(&key.name).map(Arc::as_ref)
    }

    /// The P-192 fixed-key verifier for `key`, when tables were built.
    pub(super) fn fixed_verifier_p192(&self, key: &AppleKey) -> Option<&FixedKeyVerifierP192> {
        self.fixed_p192.get(&key.name).map(Arc::as_ref)
    }

    /// `check()`'s answer for this key, digest and signature, or the remembered one.
    pub(super) fn remembered(
        &self,
        key: &AppleKey,
        digest: &[u8],
        signature: &[u8],
        check: impl FnOnce() -> bool,
    ) -> bool {
        match &self.cache {
            Some(cache) => cache.get_or_check(&key.name, digest, signature, check),
            None => check(),
        }
    }

    /// The remembered answer for this key, digest and signature, if any.
    pub(super) fn recalled(&self, key: &AppleKey, digest: &[u8], signature: &[u8]) -> Option<bool> {
        self.cache.as_ref()?.get(&key.name, digest, signature)
    }

    /// Remember an answer (when the key set keeps a cache).
    pub(super) fn remember(&self, key: &AppleKey, digest: &[u8], signature: &[u8], answer: bool) {
        if let Some(cache) = &self.cache {
            cache.insert(&key.name, digest, signature, answer);
        }
    }
}

fn parse_key(file: &str, curve: &str, pem: &str) -> Result<PublicKey, KeyError> {
    let pem_error = |curve: Curve, reason: String| KeyError::Pem {
        file: file.to_owned(),
        curve: curve.as_str(),
        reason,
    };
    match curve {
        "P-192" => p192::ecdsa::VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey::P192)
            .map_err(|e| pem_error(Curve::P192, e.to_string())),
        "P-256" => p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey::P256)
            .map_err(|e| pem_error(Curve::P256, e.to_string())),
        other => Err(KeyError::UnknownCurve { file: file.to_owned(), curve: other.to_owned() }),
    }
}

fn check_curve(file: &str, what: &str, expected: Curve, key: &PublicKey) -> Result<(), KeyError> {
    if key.curve() == expected {
        Ok(())
    } else {
        Err(KeyError::CurveMismatch {
            file: file.to_owned(),
            what: what.to_owned(),
            expected: expected.as_str(),
            actual: key.curve().as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_set_maps_every_version_and_apples_three_kids() {
        let set = KeySet::embedded().expect("embedded keys parse");
        for v in SkanVersion::ALL {
            let key = set.for_skan(v).expect("every version has a key");
            assert_eq!(key.key.curve(), v.curve(), "{v}");
            assert!(!key.development);
        }
        assert!(!set.for_kid("apple-cas-identifier/0").expect("production kid").development);
        assert!(set.for_kid("apple-development-identifier/0").expect("dev kid 0").development);
        assert!(set.for_kid("apple-development-identifier/1").expect("dev kid 1").development);
        assert!(set.for_kid("apple-development-identifier/2").is_none());
    }

    #[test]
    fn a_version_assigned_to_a_key_on_the_wrong_curve_is_refused() {
        let manifest = r#"
            [[key]]
            file = "skadnetwork-p192.pem"
            curve = "P-192"
            skadnetwork_versions = ["4.0"]
        "#;
        let err = KeySet::from_manifest(manifest, |f| {
            Ok(EMBEDDED_FILES.iter().find(|(n, _)| *n == f).unwrap().1.to_owned())
        })
        .unwrap_err();
        assert!(matches!(err, KeyError::CurveMismatch { .. }), "{err}");
    }

    #[test]
    fn a_pem_on_another_curve_than_stated_is_refused() {
        let manifest = r#"
            [[key]]
            file = "skadnetwork-p192.pem"
            curve = "P-256"
        "#;
        let err = KeySet::from_manifest(manifest, |f| {
            Ok(EMBEDDED_FILES.iter().find(|(n, _)| *n == f).unwrap().1.to_owned())
        })
        .unwrap_err();
        assert!(matches!(err, KeyError::Pem { .. }), "{err}");
    }

    #[test]
    fn a_version_claimed_twice_is_refused() {
        let manifest = r#"
            [[key]]
            file = "skadnetwork-p256.pem"
            curve = "P-256"
            skadnetwork_versions = ["4.0"]
            [[key]]
            file = "adattributionkit-development-0.pem"
            curve = "P-256"
            skadnetwork_versions = ["4.0"]
        "#;
        let err = KeySet::from_manifest(manifest, |f| {
            Ok(EMBEDDED_FILES.iter().find(|(n, _)| *n == f).unwrap().1.to_owned())
        })
        .unwrap_err();
        assert!(matches!(err, KeyError::Duplicate { .. }), "{err}");
    }

    #[test]
    fn unknown_manifest_keys_and_versions_are_refused() {
        let read = |_: &str| -> Result<String, String> { Err("unused".into()) };
        assert!(
            KeySet::from_manifest("[[key]]\nfile='a'\ncurve='P-256'\ncolour='red'", read).is_err()
        );
        let read = |f: &str| -> Result<String, String> {
            Ok(EMBEDDED_FILES.iter().find(|(n, _)| *n == f).unwrap().1.to_owned())
        };
        let err = KeySet::from_manifest(
            "[[key]]\nfile='skadnetwork-p256.pem'\ncurve='P-256'\nskadnetwork_versions=['5.0']",
            read,
        )
        .unwrap_err();
        assert!(matches!(err, KeyError::UnknownVersion { .. }), "{err}");
    }
}
