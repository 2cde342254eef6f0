//! SKAdNetwork postbacks (1.0-4.0): strict parsing and the message Apple signed.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::error::{ParseError, ParseErrorKind};
use super::json::{Entries, read_bool, read_str, read_token, read_uint};
use super::value::{
    ConversionValue, SourceIdentifier, combine_conversion_value, read_coarse, read_country,
    read_fine, read_item_id, read_window,
};
use super::version::{Presence, SkanVersion, Slot, Version, composition, key, presence};

/// U+2063 INVISIBLE SEPARATOR, placed between (never around) signed values.
pub const SEPARATOR: char = '\u{2063}';

/// Where the ad that led to the install was shown, when Apple discloses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceApp {
    /// `source-app-id`: the App Store ID of the publishing app (0 in test scenarios).
    AppId(u64),
    /// `source-domain` (4.0, web ads).
    Domain(String),
}

impl SourceApp {
    /// The JSON key this value travels under.
    #[must_use]
    pub fn key(&self) -> &'static str {
        match self {
            Self::AppId(_) => key::SOURCE_APP_ID,
            Self::Domain(_) => key::SOURCE_DOMAIN,
        }
    }
}

/// `fidelity-type`: how the ad was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FidelityType {
    /// 0: a view-through ad.
    ViewThrough,
    /// 1: a StoreKit-rendered ad or a SKAdNetwork-attributed web ad (a click).
    StoreKitRendered,
}

impl FidelityType {
    /// The wire number.
    #[must_use]
    pub fn as_u8(self) -> u8 {
        match self {
            Self::ViewThrough => 0,
            Self::StoreKitRendered => 1,
        }
    }
}

/// A SKAdNetwork postback with every field typed as Apple sends it.
///
/// Optional fields are `None` exactly when the key was absent, because presence decides what the
/// signature covers.
#[derive(Debug, Clone, PartialEq)]
pub struct SkanPostback {
    /// Declared version (1.0 when the key is absent).
    pub version: Version,
    /// Whether the `version` key was present (1.0 postbacks may omit it).
    pub has_version_key: bool,
    /// `ad-network-id`.
    pub ad_network_id: String,
    /// `campaign-id` (versions up to 3.0).
    pub campaign_id: Option<u8>,
    /// `source-identifier` (4.0).
    pub source_identifier: Option<SourceIdentifier>,
    /// `app-id`: the advertised app.
    pub app_id: u64,
    /// `transaction-id`.
    pub transaction_id: String,
    /// `redownload` (2.0+; tolerated unsigned in 1.0).
    pub redownload: Option<bool>,
    /// `source-app-id` or `source-domain`.
    pub source_app: Option<SourceApp>,
    /// `fidelity-type` (2.2+).
    pub fidelity_type: Option<FidelityType>,
    /// `did-win` (3.0+).
    pub did_win: Option<bool>,
    /// `conversion-value` or `coarse-conversion-value` (unsigned).
    pub conversion_value: ConversionValue,
    /// `postback-sequence-index` (4.0).
    pub postback_sequence_index: Option<u8>,
    /// `country-code` (unsigned).
    pub country_code: Option<String>,
    /// `attribution-signature`: base64 DER ECDSA signature.
    pub attribution_signature: Option<String>,
    /// Keys this crate does not interpret (added by forwarders), in document order; never signed.
    pub extra: Vec<(String, Value)>,
}

impl SkanPostback {
    /// Interpret an object that is known to be a SKAdNetwork postback.
    pub(crate) fn from_entries(mut doc: Entries) -> Result<Self, ParseError> {
        let (version, has_version_key) = match doc.take(key::VERSION) {
            None => (Version::Known(SkanVersion::V1_0), false),
            Some(value) => {
                let text = read_str(key::VERSION, &value, "a version string such as \"4.0\"")?;
                let version = SkanVersion::from_exact(text)
                    .map_or_else(|| Version::Unknown(text.to_owned()), Version::Known);
                if version.known().is_none() && text.is_empty() {
                    return Err(ParseError::field(
                        key::VERSION,
                        ParseErrorKind::OutOfRange {
                            expected: "a version string such as \"4.0\"",
                            got: "an empty string".to_owned(),
                        },
                    ));
                }
                (version, true)
            }
        };
        let mut fields = Fields { doc, version: &version };

        let ad_network_id = fields.required(key::AD_NETWORK_ID, |f, v| {
            read_token(f, v, "a non-empty ad network ID string")
        })?;
        let campaign_id = fields
            .optional(key::CAMPAIGN_ID, |f, v| read_uint(f, v, "an integer 0-100", 100))?
            .map(|v| v as u8);
        let source_identifier = fields.optional(key::SOURCE_IDENTIFIER, SourceIdentifier::read)?;
        let app_id = fields.required(key::APP_ID, read_item_id)?;
        let transaction_id = fields.required(key::TRANSACTION_ID, |f, v| {
            read_token(f, v, "a non-empty transaction ID string")
        })?;
        let redownload = fields.optional(key::REDOWNLOAD, read_bool)?;
        let source_app_id = fields.optional(key::SOURCE_APP_ID, read_item_id)?;
        let source_domain =
            fields.optional(key::SOURCE_DOMAIN, |f, v| read_token(f, v, "a domain name string"))?;
        let fidelity_type =
            fields.optional(key::FIDELITY_TYPE, |f, v| read_uint(f, v, "0 or 1", 1))?.map(|v| {
                if v == 1 { FidelityType::StoreKitRendered } else { FidelityType::ViewThrough }
            });
        let did_win = fields.optional(key::DID_WIN, read_bool)?;
        let fine = fields.optional(key::CONVERSION_VALUE, read_fine)?;
        let coarse = fields.optional(key::COARSE_CONVERSION_VALUE, read_coarse)?;
        let postback_sequence_index = fields.optional(key::POSTBACK_SEQUENCE_INDEX, read_window)?;
        let country_code = fields.optional(key::COUNTRY_CODE, read_country)?;
        let attribution_signature = fields.optional(key::ATTRIBUTION_SIGNATURE, |f, v| {
            read_str(f, v, "a base64 signature string").map(str::to_owned)
        })?;

        let source_app = match (source_app_id, source_domain) {
            (Some(_), Some(_)) => {
                return Err(ParseError::field(
                    key::SOURCE_DOMAIN,
                    ParseErrorKind::Conflict { other: key::SOURCE_APP_ID },
                ));
            }
            (Some(id), None) => Some(SourceApp::AppId(id)),
            (None, Some(domain)) => Some(SourceApp::Domain(domain)),
            (None, None) => None,
        };
        let conversion_value = combine_conversion_value(
            fine,
            coarse,
            postback_sequence_index.unwrap_or(0),
            key::CONVERSION_VALUE,
            key::COARSE_CONVERSION_VALUE,
        )?;
        if version.known().is_none() && campaign_id.is_none() && source_identifier.is_none() {
            return Err(ParseError::field(
                key::SOURCE_IDENTIFIER,
                ParseErrorKind::MissingField {
                    context: "a postback needs source-identifier (4.0) or campaign-id (earlier \
                              versions)"
                        .to_owned(),
                },
            ));
        }

        let extra = fields.doc.into_rest();
        Ok(Self {
            version,
            has_version_key,
            ad_network_id,
            campaign_id,
            source_identifier,
            app_id,
            transaction_id,
            redownload,
            source_app,
            fidelity_type,
            did_win,
            conversion_value,
            postback_sequence_index,
            country_code,
            attribution_signature,
            extra,
        })
    }

    /// The exact bytes Apple signed, or `None` for a version whose composition is unknown.
    ///
    /// Values are joined by U+2063; integers are plain decimal and booleans `true`/`false`;
    /// `source-app-id`/`source-domain` take their slot only when present (SPEC.md §1).
    #[must_use]
    pub fn signed_message(&self) -> Option<String> {
        let version = self.version.known()?;
        let mut message = String::with_capacity(160);
        for (i, slot) in composition(version).iter().enumerate() {
            let value = match slot {
                Slot::SourceApp => match &self.source_app {
                    None => continue,
                    Some(SourceApp::AppId(id)) => SignedValue::Int(*id),
                    Some(SourceApp::Domain(domain)) => SignedValue::Str(domain),
                },
                Slot::Field(name) => self.signed_value(name)?,
            };
            if i > 0 {
                message.push(SEPARATOR);
            }
            // Writing to a String cannot fail.
            let _ = match value {
                SignedValue::Str(text) => message.write_str(text),
                SignedValue::Int(n) => write!(message, "{n}"),
                SignedValue::Bool(b) => message.write_str(if b { "true" } else { "false" }),
            };
        }
        Some(message)
    }

    fn signed_value(&self, name: &str) -> Option<SignedValue<'_>> {
        Some(match name {
            key::VERSION => SignedValue::Str(self.version.as_str()),
            key::AD_NETWORK_ID => SignedValue::Str(&self.ad_network_id),
            key::CAMPAIGN_ID => SignedValue::Int(u64::from(self.campaign_id?)),
            key::SOURCE_IDENTIFIER => SignedValue::Str(self.source_identifier.as_ref()?.as_str()),
            key::APP_ID => SignedValue::Int(self.app_id),
            key::TRANSACTION_ID => SignedValue::Str(&self.transaction_id),
            key::REDOWNLOAD => SignedValue::Bool(self.redownload?),
            key::FIDELITY_TYPE => SignedValue::Int(u64::from(self.fidelity_type?.as_u8())),
            key::DID_WIN => SignedValue::Bool(self.did_win?),
            key::POSTBACK_SEQUENCE_INDEX => {
                SignedValue::Int(u64::from(self.postback_sequence_index?))
            }
            _ => return None,
        })
    }

    /// The keys the signature covers, in signing order (empty for an unknown version).
    #[must_use]
    pub fn signed_keys(&self) -> Vec<&'static str> {
        let Some(version) = self.version.known() else { return Vec::new() };
        composition(version)
            .iter()
            .filter_map(|slot| match slot {
                Slot::Field(name) => Some(*name),
                Slot::SourceApp => self.source_app.as_ref().map(SourceApp::key),
            })
            .collect()
    }

    /// The keys present in the postback that the signature does not cover, in a stable order.
    ///
    /// Conversion values and `country-code` are never signed; nor is anything a forwarder added.
    #[must_use]
    pub fn unsigned_keys(&self) -> Vec<&str> {
        let signed = self.signed_keys();
        let mut keys: Vec<&str> = self
            .present_keys()
            .into_iter()
            .filter(|k| *k != key::ATTRIBUTION_SIGNATURE && !signed.contains(k))
            .collect();
        keys.extend(self.extra.iter().map(|(k, _)| k.as_str()));
        keys
    }

    /// The interpreted keys that were present, in canonical order.
    fn present_keys(&self) -> Vec<&'static str> {
        let candidates = [
            (self.has_version_key, key::VERSION),
            (true, key::AD_NETWORK_ID),
            (self.campaign_id.is_some(), key::CAMPAIGN_ID),
            (self.source_identifier.is_some(), key::SOURCE_IDENTIFIER),
            (true, key::APP_ID),
            (true, key::TRANSACTION_ID),
            (self.redownload.is_some(), key::REDOWNLOAD),
            (matches!(self.source_app, Some(SourceApp::AppId(_))), key::SOURCE_APP_ID),
            (matches!(self.source_app, Some(SourceApp::Domain(_))), key::SOURCE_DOMAIN),
            (self.fidelity_type.is_some(), key::FIDELITY_TYPE),
            (self.did_win.is_some(), key::DID_WIN),
            (self.conversion_value.fine().is_some(), key::CONVERSION_VALUE),
            (self.conversion_value.coarse().is_some(), key::COARSE_CONVERSION_VALUE),
            (self.postback_sequence_index.is_some(), key::POSTBACK_SEQUENCE_INDEX),
            (self.country_code.is_some(), key::COUNTRY_CODE),
            (self.attribution_signature.is_some(), key::ATTRIBUTION_SIGNATURE),
        ];
        candidates.into_iter().filter(|(present, _)| *present).map(|(_, k)| k).collect()
    }

    /// Render the postback as the JSON object Apple would send, interpreted keys first in
    /// canonical order, then the forwarder's keys.
    ///
    /// Used by the signer for test vectors and load generation; a parsed postback renders to an
    /// object that parses back to an equal postback.
    #[must_use]
    pub fn to_json(&self) -> Map<String, Value> {
        let mut map = Map::new();
        for name in self.present_keys() {
            let value = match name {
                key::VERSION => Value::from(self.version.as_str()),
                key::AD_NETWORK_ID => Value::from(self.ad_network_id.as_str()),
                key::CAMPAIGN_ID => Value::from(self.campaign_id),
                key::SOURCE_IDENTIFIER => {
                    Value::from(self.source_identifier.as_ref().map(SourceIdentifier::as_str))
                }
                key::APP_ID => Value::from(self.app_id),
                key::TRANSACTION_ID => Value::from(self.transaction_id.as_str()),
                key::REDOWNLOAD => Value::from(self.redownload),
                key::SOURCE_APP_ID | key::SOURCE_DOMAIN => match &self.source_app {
                    Some(SourceApp::AppId(id)) => Value::from(*id),
                    Some(SourceApp::Domain(d)) => Value::from(d.as_str()),
                    None => Value::Null,
                },
                key::FIDELITY_TYPE => Value::from(self.fidelity_type.map(FidelityType::as_u8)),
                key::DID_WIN => Value::from(self.did_win),
                key::CONVERSION_VALUE => Value::from(self.conversion_value.fine()),
                key::COARSE_CONVERSION_VALUE => {
                    Value::from(self.conversion_value.coarse().map(|c| c.as_str()))
                }
                key::POSTBACK_SEQUENCE_INDEX => Value::from(self.postback_sequence_index),
                key::COUNTRY_CODE => Value::from(self.country_code.as_deref()),
                key::ATTRIBUTION_SIGNATURE => Value::from(self.attribution_signature.as_deref()),
                _ => continue,
            };
            map.insert(name.to_owned(), value);
        }
        for (k, v) in &self.extra {
            map.insert(k.clone(), v.clone());
        }
        map
    }
}

enum SignedValue<'a> {
    Str(&'a str),
    Int(u64),
    Bool(bool),
}

/// Takes keys out of the document while enforcing the version's presence rules.
struct Fields<'v> {
    doc: Entries,
    version: &'v Version,
}

impl Fields<'_> {
    fn presence(&self, field: &str) -> Presence {
        match self.version {
            Version::Known(v) => presence(*v, field),
            // A version we do not know: check the types of the keys we do know, demand only the
            // identity keys every version has, and let verification report it as unverifiable.
            Version::Unknown(_) => match field {
                key::AD_NETWORK_ID | key::APP_ID | key::TRANSACTION_ID => Presence::Required,
                _ => Presence::Optional,
            },
        }
    }

    fn optional<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&str, &Value) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ParseError> {
        let presence = self.presence(field);
        match self.doc.take(field) {
            None if presence == Presence::Required => Err(ParseError::field(
                field,
                ParseErrorKind::MissingField {
                    context: format!("required in SKAdNetwork {} postbacks", self.version.as_str()),
                },
            )),
            None => Ok(None),
            Some(_) if presence == Presence::NotAllowed => Err(ParseError::field(
                field,
                ParseErrorKind::NotAllowed { reason: not_allowed_reason(field, self.version) },
            )),
            Some(value) => read(field, &value).map(Some),
        }
    }

    fn required<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&str, &Value) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        // Required keys are required in every version, so `optional` has already refused absence.
        self.optional(field, read)?.ok_or_else(|| {
            ParseError::field(
                field,
                ParseErrorKind::MissingField { context: "required in every version".to_owned() },
            )
        })
    }
}

fn not_allowed_reason(field: &str, version: &Version) -> String {
    let v = version.as_str();
    match field {
        key::CAMPAIGN_ID => {
            format!("SKAdNetwork {v} postbacks carry source-identifier instead of campaign-id")
        }
        key::SOURCE_IDENTIFIER => format!(
            "source-identifier exists from SKAdNetwork 4.0; {v} postbacks carry campaign-id"
        ),
        key::COARSE_CONVERSION_VALUE => {
            format!("coarse conversion values exist from SKAdNetwork 4.0, this is a {v} postback")
        }
        key::SOURCE_DOMAIN | key::POSTBACK_SEQUENCE_INDEX => {
            format!("{field} exists from SKAdNetwork 4.0, this is a {v} postback")
        }
        key::FIDELITY_TYPE => {
            format!("fidelity-type exists from SKAdNetwork 2.2, this is a {v} postback")
        }
        key::DID_WIN => format!("did-win exists from SKAdNetwork 3.0, this is a {v} postback"),
        _ => format!("{field} is not part of SKAdNetwork {v} postbacks"),
    }
}
