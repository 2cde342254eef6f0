//! The domain: what a postback, a receipt, an aggregate and a role are, and the rules that need no
//! database, no network and no clock. Everything above (storage, services, HTTP, CLI) speaks in
//! these types; this folder imports only the protocol core (`skan`) and the error shape.
//!
//! # One postback's verdicts, stage by stage
//!
//! | stage | type | says |
//! |---|---|---|
//! | protocol | [`crate::skan::Outcome`] | the signature check in detail: valid, or why not (mismatch, no key, ...) |
//! | protocol | [`crate::skan::OutcomeClass`] | the same, in three classes: valid, invalid, unverifiable |
//! | storage | [`postback::CopyComparison`] | a copy against the stored postback: same values, or a mismatch and whose values win |
//! | storage | [`postback::RecordOutcome`] | what recording an item did: accepted, duplicate, quarantined, rejected (with ids) |
//! | storage | [`postback::ReceiptResult`] | the same, as kept on the receipt and counted in metrics |
//! | API | `ingest::ItemResult` | the per-item answer: result, ids, dedup key, flags, error |

pub mod access;
pub mod aggregate;
pub mod postback;
pub mod quality;
pub mod routing;
