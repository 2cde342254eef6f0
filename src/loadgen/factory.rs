//! Realistic signed postbacks of every version, from test keys.
//!
//! The mix follows what a network sees: mostly SKAdNetwork 4.0 and AdAttributionKit across three
//! windows and four crowd-anonymity tiers, some older versions, nonwinning and redownload
//! postbacks. Every postback is signed exactly as Apple signs (see [`crate::skan::sign`]) with
//! keys whose public halves are in the same key directory the receiver is told to trust.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use serde_json::json;

use crate::skan::{
    CoarseValue, ConversionValue, FidelityType, KeySet, PostbackSigner, SignError, SkanPostback,
    SkanVersion, SourceApp, SourceIdentifier, Version,
};

/// Why a factory could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FactoryError {
    /// The key directory could not be read.
    #[error(transparent)]
    Keys(#[from] crate::apple_keys::LoadKeysError),
    /// A private key file is missing or unreadable.
    #[error("{path}: {reason} (the load generator needs NAME.key.pem beside each NAME.pem)")]
    PrivateKey {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A private key did not parse.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The key set cannot sign what was asked.
    #[error("the key set has no key for {0}")]
    Missing(&'static str),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct FactoryConfig {
    /// Advertised apps to spread postbacks over.
    pub app_ids: Vec<u64>,
    /// Ad networks to spread postbacks over.
    pub ad_networks: Vec<String>,
    /// Share of postbacks that repeat an earlier one byte for byte (device retries), 0-1.
    pub duplicate_ratio: f64,
    /// Campaigns (4-digit source identifiers) each network runs.
    pub campaigns_per_network: u32,
    /// Sign the postbacks. Without it they carry no signature and verify as invalid; only for
    /// loading bulk data whose aggregates, not signatures, are under test.
    pub sign: bool,
}

impl Default for FactoryConfig {
    fn default() -> Self {
        Self {
            app_ids: vec![525_463_029, 1_234_567_890, 987_654_321],
            ad_networks: (1..=5).map(|i| format!("net{i}.skadnetwork")).collect(),
            duplicate_ratio: 0.0,
            campaigns_per_network: 24,
            sign: true,
        }
    }
}

/// Generates signed postbacks.
pub struct PostbackFactory {
    signer: PostbackSigner,
    kid: String,
    rng: StdRng,
    config: FactoryConfig,
    counter: u64,
    recent: Vec<Vec<u8>>,
}

impl std::fmt::Debug for PostbackFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostbackFactory")
            .field("kid", &self.kid)
            .field("counter", &self.counter)
            .finish()
    }
}

/// The shares of versions generated, in per-mille.
const MIX: [(&str, u32); 7] =
    [("4.0", 600), ("aak", 150), ("3.0", 100), ("2.2", 50), ("2.1", 50), ("2.0", 30), ("1.0", 20)];

impl PostbackFactory {
    /// A factory signing with the private keys beside the public keys of `dir`'s manifest.
    ///
    /// # Errors
    /// [`FactoryError`] when a needed key or private key is missing.
    pub fn from_key_dir(
        dir: &Path,
        seed: u64,
        config: FactoryConfig,
    ) -> Result<Self, FactoryError> {
        let keys = crate::apple_keys::load(Some(dir))?;
        let private = |version: SkanVersion| -> Result<String, FactoryError> {
            let key = keys.for_skan(version).ok_or(FactoryError::Missing(version.as_str()))?;
            let path = dir.join(format!("{}.key.pem", key.name));
            std::fs::read_to_string(&path).map_err(|e| FactoryError::PrivateKey {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        };
        let signer = PostbackSigner::from_pkcs8_pem(
            Some(&private(SkanVersion::V4_0)?),
            Some(&private(SkanVersion::V1_0)?),
        )?;
        let kid = production_kid(&keys).ok_or(FactoryError::Missing("an AdAttributionKit kid"))?;
        Ok(Self {
            signer,
            kid,
            rng: StdRng::seed_from_u64(seed),
            config,
            counter: 0,
            recent: Vec::new(),
        })
    }

    /// The next postback's bytes.
    pub fn next_postback(&mut self) -> Vec<u8> {
        if !self.recent.is_empty()
            && self.rng.random_bool(self.config.duplicate_ratio.clamp(0.0, 1.0))
        {
            let i = self.rng.random_range(0..self.recent.len());
            return self.recent[i].clone();
        }
        let pick = self.rng.random_range(0..1000);
        let mut acc = 0;
        let mut kind = "4.0";
        for (name, share) in MIX {
            acc += share;
            if pick < acc {
                kind = name;
                break;
            }
        }
        let bytes = match kind {
            "aak" => self.aak(),
            version => {
                let version = SkanVersion::from_exact(version).unwrap_or(SkanVersion::V4_0);
                let skan = self.skan(version);
                serde_json::to_vec(&skan.to_json()).unwrap_or_default()
            }
        };
        if self.recent.len() < 1024 {
            self.recent.push(bytes.clone());
        } else {
            let i = (self.counter % 1024) as usize;
            self.recent[i] = bytes.clone();
        }
        bytes
    }

    fn transaction_id(&mut self) -> String {
        self.counter += 1;
        let a: u32 = self.rng.random();
        let b: u16 = self.rng.random();
        format!("{a:08x}-{b:04x}-4000-8000-{:012x}", self.counter)
    }

    /// An index into `len` items, skewed towards the first ones (a few networks, campaigns and
    /// values carry most of the traffic, as in real data).
    fn skewed(&mut self, len: usize) -> usize {
        let u: f64 = self.rng.random();
        ((u * u * len as f64) as usize).min(len.saturating_sub(1))
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        let i = self.skewed(items.len());
        items[i].clone()
    }

    /// A network and one of its campaigns' 4-digit source identifier.
    fn network_and_source(&mut self) -> (String, u32) {
        let network = self.skewed(self.config.ad_networks.len());
        let campaign = self.skewed(self.config.campaigns_per_network.max(1) as usize) as u32;
        let source = (1000 + network as u32 * 997 + campaign * 113) % 10_000;
        (self.config.ad_networks[network].clone(), source)
    }

    /// A fine value: most users stop early, a few reach high values.
    fn fine(&mut self) -> u8 {
        let u: f64 = self.rng.random();
        ((u * u * u * 64.0) as u8).min(63)
    }

    /// A signed SKAdNetwork postback of `version` with realistic, varied fields.
    pub fn skan(&mut self, version: SkanVersion) -> SkanPostback {
        let v4 = version == SkanVersion::V4_0;
        let did_win = version < SkanVersion::V3_0 || self.rng.random_bool(0.9);
        let window = if v4 && did_win {
            [0, 0, 0, 0, 0, 0, 0, 1, 1, 2][self.rng.random_range(0..10)]
        } else {
            0
        };
        let tier = self.rng.random_range(0..10); // 0-3: tier 3, 4-6: tier 2, 7-8: tier 1, 9: tier 0
        let (ad_network_id, digits) = self.network_and_source();
        let (source_digits, value, source_app) = if !v4 {
            let value = if version >= SkanVersion::V2_0 && did_win && tier < 8 {
                ConversionValue::Fine(self.fine())
            } else {
                ConversionValue::None
            };
            let app = (version >= SkanVersion::V2_0 && did_win && tier < 4)
                .then(|| SourceApp::AppId(self.rng.random_range(100_000_000..2_000_000_000)));
            (None, value, app)
        } else if !did_win {
            (Some(format!("{:02}", digits % 100)), ConversionValue::None, None)
        } else if window > 0 {
            let coarse = CoarseValue::ALL[self.rng.random_range(0..3)];
            (Some(format!("{:02}", digits % 100)), ConversionValue::Coarse(coarse), None)
        } else {
            match tier {
                0..=3 => (
                    Some(format!("{digits:04}")),
                    ConversionValue::Fine(self.fine()),
                    Some(if self.rng.random_bool(0.8) {
                        SourceApp::AppId(self.rng.random_range(100_000_000..2_000_000_000))
                    } else {
                        SourceApp::Domain(format!("site{}.example", digits % 50))
                    }),
                ),
                4..=6 => (
                    Some(format!("{:03}", digits % 1000)),
                    ConversionValue::Fine(self.fine()),
                    None,
                ),
                7 | 8 => (
                    Some(format!("{:02}", digits % 100)),
                    ConversionValue::Coarse(CoarseValue::ALL[self.rng.random_range(0..3)]),
                    None,
                ),
                _ => (Some(format!("{:02}", digits % 100)), ConversionValue::None, None),
            }
        };
        let app_ids = self.config.app_ids.clone();
        let mut skan = SkanPostback {
            version: Version::Known(version),
            has_version_key: version != SkanVersion::V1_0,
            ad_network_id,
            campaign_id: (!v4).then_some((digits % 100) as u8),
            source_identifier: source_digits.as_deref().and_then(SourceIdentifier::new),
            app_id: self.pick(&app_ids),
            transaction_id: self.transaction_id(),
            redownload: (version != SkanVersion::V1_0).then(|| self.rng.random_bool(0.1)),
            source_app,
            fidelity_type: (version >= SkanVersion::V2_2).then(|| {
                if self.rng.random_bool(0.7) {
                    FidelityType::StoreKitRendered
                } else {
                    FidelityType::ViewThrough
                }
            }),
            did_win: (version >= SkanVersion::V3_0).then_some(did_win),
            conversion_value: value,
            postback_sequence_index: v4.then_some(window),
            country_code: None,
            attribution_signature: None,
            extra: Vec::new(),
        };
        if self.config.sign {
            // The signer holds keys for every known version, so this cannot fail.
            let _ = self.signer.sign_skan(&mut skan);
        }
        skan
    }

    /// A signed AdAttributionKit postback.
    pub fn aak(&mut self) -> Vec<u8> {
        let did_win = self.rng.random_bool(0.9);
        let window: u8 =
            if did_win { [0, 0, 0, 0, 0, 0, 0, 1, 1, 2][self.rng.random_range(0..10)] } else { 0 };
        let (ad_network_id, digits) = self.network_and_source();
        let tier = self.rng.random_range(0..10);
        let high = did_win && window == 0 && tier < 7;
        let app_ids = self.config.app_ids.clone();
        let conversion_type = ["download", "download", "download", "redownload", "re-engagement"]
            [self.rng.random_range(0..5)];
        let mut payload = json!({
            "ad-network-identifier": ad_network_id,
            "advertised-item-identifier": self.pick(&app_ids),
            "conversion-type": conversion_type,
            "did-win": did_win,
            "impression-type": "app-impression",
            "postback-identifier": self.transaction_id().to_uppercase(),
            "postback-sequence-index": window,
            "source-identifier": if high { format!("{digits:04}") } else { format!("{:02}", digits % 100) },
        });
        if high && tier < 4 {
            payload["publisher-item-identifier"] =
                json!(self.rng.random_range(100_000_000u64..2_000_000_000));
            payload["marketplace-identifier"] = json!("com.apple.AppStore");
        }
        let payload = serde_json::to_vec(&payload).unwrap_or_default();
        let jws = if self.config.sign {
            self.signer.sign_jws(&self.kid, &payload).unwrap_or_default()
        } else {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let header = json!({ "kid": self.kid, "alg": "ES256" }).to_string();
            format!("{}.{}.AA", b64.encode(header), b64.encode(payload))
        };
        let mut outer = json!({
            "jws-string": jws,
            "ad-interaction-type": if self.rng.random_bool(0.7) { "click" } else { "view" },
        });
        if did_win {
            if high {
                outer["conversion-value"] = json!(self.fine());
            } else if tier < 9 {
                outer["coarse-conversion-value"] =
                    json!(CoarseValue::ALL[self.rng.random_range(0..3)].as_str());
            }
        }
        serde_json::to_vec(&outer).unwrap_or_default()
    }
}

fn production_kid(keys: &KeySet) -> Option<String> {
    let signing_key = keys.for_skan(SkanVersion::V4_0)?;
    signing_key.adattributionkit_kids.first().cloned()
}
