//! The domain: what a postback, a receipt, an aggregate and a role are, and the rules that need no
//! database, no network and no clock. Everything above (storage, services, HTTP, CLI) speaks in
//! these types; this folder imports only the protocol core (`skan`) and the error shape.

pub mod access;
pub mod aggregate;
pub mod postback;
pub mod routing;
