//! A rate limit per client address on Apple's open paths, which take postbacks from anyone: each
//! address may make `--rate-limit-per-ip` requests a second, `--rate-limit-burst` at once after a
//! quiet spell (GCRA, the `governor` crate). Over it, 429 with `Retry-After`. The address is the
//! connection's peer, or, when the peer is a trusted proxy, the last address in
//! `X-Forwarded-For` that is not one.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use super::server::peer_of;
use crate::error_body::ErrorBody;

/// Addresses remembered at most before the idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;

/// The per-address limiter and who may speak for a client.
#[derive(Debug, Clone)]
pub(crate) struct AddressLimit {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

impl AddressLimit {
    /// A limit of `per_second` (with `burst`), or `None` when `per_second` is 0 (no limit).
    #[must_use]
    pub(crate) fn new(
        per_second: u32,
        burst: u32,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        Some(Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))),
            trusted_proxies: Arc::new(trusted_proxies),
        })
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip.to_canonical()))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy.
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted(peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        forwarded.into_iter().rev().find(|ip| !self.trusted(*ip)).unwrap_or(peer)
    }
}

/// The middleware: count the request against its client address.
pub(crate) async fn limit(
    State(limit): State<AddressLimit>,
    request: Request,
    next: Next,
) -> Response {
    let Some(peer) = peer_of(request.extensions()).map(|p| p.ip()) else {
        return next.run(request).await;
    };
    let client = limit.client(peer, request.headers());
    match limit.limiter.check_key(&client) {
        Ok(()) => {
            if limit.limiter.len() > MAX_TRACKED {
                limit.limiter.retain_recent();
            }
            next.run(request).await
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = ApiError::TooManyRequests(ErrorBody::new(
                "rate_limited",
                format!(
                    "too many requests from {client}; retry after {secs} s (the limit is per \
                     client address on Apple's paths)"
                ),
            ))
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwards_for_it() {
        let limit = AddressLimit::new(1, 1, vec!["10.0.0.0/8".parse().unwrap()]).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 10.1.1.1"));
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let stranger: IpAddr = "198.51.100.4".parse().unwrap();
        assert_eq!(limit.client(proxy, &headers), "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(limit.client(stranger, &headers), stranger, "an untrusted peer is not believed");
        assert!(AddressLimit::new(0, 10, Vec::new()).is_none(), "0 turns it off");
    }
}
