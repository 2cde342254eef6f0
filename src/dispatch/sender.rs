//! Sending one request to a partner, safely: no redirects, a hard timeout, the answer read only
//! up to a cap, and no connection to a private address unless the operator allows it.
//!
//! The [`Sender`] trait is the seam the dispatcher talks through, so its tests can count what
//! was sent without a network; [`HttpSender`] is the real one.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use super::policy::AttemptResult;
use super::ssrf::is_public;

/// Bytes of an answer read at most (the rest is dropped with the connection).
pub const RESPONSE_READ_LIMIT: usize = 64 * 1024;
/// Bytes of an answer kept in the attempt log.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;

/// A request ready to go.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// Every header, the signing and idempotency ones included.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Option<Vec<u8>>,
    /// Hard limit for the whole exchange.
    pub timeout: Duration,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    /// Classified for the retry policy.
    pub result: AttemptResult,
    /// The raw `Retry-After` value, when given (the dispatcher interprets it with its clock).
    pub retry_after: Option<String>,
    /// The first bytes of the answer, as text.
    pub excerpt: Option<String>,
    /// How long the exchange took.
    pub duration: Duration,
}

/// Sends requests.
#[async_trait::async_trait]
pub trait Sender: Send + Sync + std::fmt::Debug {
    /// Send and classify the result; never fails, every problem is an [`AttemptResult`].
    async fn send(&self, request: OutgoingRequest) -> SendOutcome;
}

/// An address check failed: the name resolves only to addresses that are not public.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PrivateAddress(String);

/// Resolves names like the system does, then drops every address that is not public.
#[derive(Debug)]
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                resolved.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() && !resolved.is_empty() {
                return Err(Box::new(PrivateAddress(private_message(&host, resolved[0].ip())))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn private_message(host: &str, ip: IpAddr) -> String {
    format!(
        "{host} resolves to {ip}, a loopback, private, link-local or reserved address; \
         destinations must be on the public internet (set --allow-private-destinations to allow)"
    )
}

/// Make sure rustls has its cryptography provider before any client is built.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A `reqwest` client builder with TLS ready; every outbound client in the crate starts here.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// The real sender.
#[derive(Debug, Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpSender {
    /// A sender; `allow_private` lets destinations reach loopback and private networks.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no usable TLS roots).
    pub fn new(allow_private: bool) -> Result<Self, reqwest::Error> {
        let mut builder = client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("skan-receiver/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .no_proxy();
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        Ok(Self { client: builder.build()?, allow_private })
    }

    /// Whether `host` may be contacted at all (IP literals skip the resolver, so they are
    /// checked here).
    fn refusal(&self, url: &str) -> Option<String> {
        if self.allow_private {
            return None;
        }
        let parsed = url::Url::parse(url).ok()?;
        let ip = match parsed.host()? {
            url::Host::Ipv4(v4) => IpAddr::V4(v4),
            url::Host::Ipv6(v6) => IpAddr::V6(v6),
            url::Host::Domain(_) => return None,
        };
        (!is_public(ip)).then(|| private_message(&ip.to_string(), ip))
    }
}

/// Whether an error (or anything in its chain) is the resolver refusing a private address.
fn private_refusal(err: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(private) = e.downcast_ref::<PrivateAddress>() {
            return Some(private.0.clone());
        }
        source = e.source();
    }
    None
}

fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[async_trait::async_trait]
impl Sender for HttpSender {
    async fn send(&self, request: OutgoingRequest) -> SendOutcome {
        let started = Instant::now();
        let done = |result, retry_after, excerpt| SendOutcome {
            result,
            retry_after,
            excerpt,
            duration: started.elapsed(),
        };
        if let Some(reason) = self.refusal(&request.url) {
            return done(AttemptResult::Refused(reason), None, None);
        }
        let method =
            if request.method == "POST" { reqwest::Method::POST } else { reqwest::Method::GET };
        let mut builder = self.client.request(method, &request.url).timeout(request.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let exchange = async {
            let mut response = builder.send().await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut read = Vec::new();
            while read.len() < RESPONSE_READ_LIMIT {
                match response.chunk().await? {
                    Some(chunk) => read.extend_from_slice(&chunk),
                    None => break,
                }
            }
            Ok::<_, reqwest::Error>((status, retry_after, read))
        };
        match exchange.await {
            Ok((status, retry_after, read)) => {
                let excerpt = (!read.is_empty()).then(|| {
                    let cut = read.len().min(RESPONSE_EXCERPT_BYTES);
                    String::from_utf8_lossy(&read[..cut]).into_owned()
                });
                done(AttemptResult::Http { status, retry_after: None }, retry_after, excerpt)
            }
            Err(err) if err.is_timeout() => done(AttemptResult::Timeout, None, None),
            Err(err) => match private_refusal(&err) {
                Some(reason) => done(AttemptResult::Refused(reason), None, None),
                // A request that cannot even be built will never work.
                None if err.is_builder() => {
                    done(AttemptResult::Refused(describe(&err)), None, None)
                }
                None => done(AttemptResult::Connection(describe(&err)), None, None),
            },
        }
    }
}
