//! Who may do what: the roles API keys carry.

use std::fmt;

/// API key roles; `admin` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May submit postbacks.
    Ingest,
    /// May read postbacks and reports.
    Viewer,
    /// May read, and edit conversion-value schemas.
    Editor,
    /// May do everything, including destinations and keys.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Self; 4] = [Self::Ingest, Self::Viewer, Self::Editor, Self::Admin];

    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    /// Read a stored name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Whether a key with this role may do what `required` guards. Reading is implied by
    /// editing; ingest is its own narrow role (a forwarder's key reads nothing).
    #[must_use]
    pub fn allows(self, required: Self) -> bool {
        match self {
            Self::Admin => true,
            Self::Editor => matches!(required, Self::Editor | Self::Viewer),
            Self::Viewer => required == Self::Viewer,
            Self::Ingest => required == Self::Ingest,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a key restricted to `networks` may be used from `address` (no networks: anywhere).
/// IPv4 addresses seen as IPv6 (`::ffff:203.0.113.7`) match IPv4 networks.
#[must_use]
pub fn address_allowed(networks: &[ipnet::IpNet], address: std::net::IpAddr) -> bool {
    let address = address.to_canonical();
    networks.is_empty() || networks.iter().any(|n| n.contains(&address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_limited_to_networks_is_accepted_only_from_them() {
        let nets: Vec<ipnet::IpNet> =
            vec!["203.0.113.0/24".parse().unwrap(), "2001:db8::/32".parse().unwrap()];
        assert!(address_allowed(&nets, "203.0.113.7".parse().unwrap()));
        assert!(address_allowed(&nets, "::ffff:203.0.113.7".parse().unwrap()));
        assert!(address_allowed(&nets, "2001:db8::1".parse().unwrap()));
        assert!(!address_allowed(&nets, "198.51.100.1".parse().unwrap()));
        assert!(address_allowed(&[], "198.51.100.1".parse().unwrap()));
    }
}
