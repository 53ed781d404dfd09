//! Outbound HTTP for `wasi:http/outgoing-handler`, under a call's [`HttpGrant`].
//!
//! Without a grant every request is refused. With one, the host checks, in order: the request
//! count, the method, the scheme, host and port against the allow-list; then it resolves the
//! name itself (giving up at the deadline), refuses internal addresses (loopback, private,
//! link-local and cloud metadata, CGNAT, multicast, unspecified, in v4, v6, and the v6 ranges
//! that embed or tunnel to v4: see [`restricted`]) unless the grant names their range, and
//! connects to the address it checked — so DNS rebinding cannot swap it between the check and
//! the connect. Redirects are never followed by the host (the guest sees the 3xx and a new
//! request is checked like any other). Request and response bodies are capped, and the whole
//! exchange, lookup included, ends by the grant's timeout and the call's deadline. Every
//! request is recorded (method, host, status, bytes, duration; never bodies); every denial is
//! logged.
//!
//! (Over 600 lines: a sixth of it is the unit tests of the refused address ranges and the
//! lookup deadline.)

use crate::grants::{HttpGrant, Origin};
use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Most requests remembered per call (denied or sent).
const MAX_REMEMBERED: usize = 64;

/// One outbound request of a call, as recorded: never its bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboundRequest {
    /// The method.
    pub method: String,
    /// `scheme://host:port`.
    pub origin: String,
    /// The address connected to, when one was.
    pub address: Option<String>,
    /// The response's status, when one came.
    pub status: Option<u16>,
    /// Why it failed or was refused.
    pub error: Option<String>,
    /// Request body bytes sent.
    pub bytes_out: u64,
    /// Response body bytes the guest read.
    pub bytes_in: u64,
    /// Time from the request to its response head, in microseconds.
    pub duration_us: u64,
}

/// A request in flight or done: its record, and its body counters (filled as bytes flow).
struct Pending {
    record: OutboundRequest,
    bytes_out: Arc<AtomicU64>,
    bytes_in: Arc<AtomicU64>,
}

/// The `wasi:http` hooks of one call.
pub(crate) struct Egress {
    grant: Option<Arc<Policy>>,
    deadline: Instant,
    sent: u32,
    requests: Arc<Mutex<Vec<Pending>>>,
    /// Refusals, for the call's log.
    pub(crate) denied: Vec<String>,
}

/// A grant, parsed once per call (only for calls that have one).
struct Policy {
    grant: HttpGrant,
    origins: Vec<Origin>,
    private: Vec<ipnet::IpNet>,
    /// `warden/<version> (<tenant>)`.
    user_agent: http::HeaderValue,
}

impl Egress {
    pub(crate) fn new(grant: Option<&HttpGrant>, caller: &str, deadline: Instant) -> Egress {
        let grant = grant.map(|grant| {
            Arc::new(Policy {
                origins: grant
                    .allow
                    .iter()
                    .filter_map(|p| Origin::parse(p).ok())
                    .collect(),
                private: grant
                    .private
                    .iter()
                    .filter_map(|r| r.parse().ok())
                    .collect(),
                grant: grant.clone(),
                user_agent: http::HeaderValue::from_str(&format!(
                    "warden/{} ({caller})",
                    env!("CARGO_PKG_VERSION")
                ))
                .unwrap_or(http::HeaderValue::from_static("warden")),
            })
        });
        Egress {
            grant,
            deadline,
            sent: 0,
            requests: Arc::default(),
            denied: Vec::new(),
        }
    }

    /// A reused instance's next call: its own deadline and request count.
    pub(crate) fn start_call(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.sent = 0;
    }

    /// The call's outbound requests, with their final byte counts.
    pub(crate) fn take_requests(&mut self) -> Vec<OutboundRequest> {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests
            .drain(..)
            .map(|pending| OutboundRequest {
                bytes_out: pending.bytes_out.load(Ordering::Relaxed),
                bytes_in: pending.bytes_in.load(Ordering::Relaxed),
                ..pending.record
            })
            .collect()
    }

    /// Remembers a refusal for the call's log; answers the error the guest gets.
    fn deny(&mut self, why: String) -> HttpError {
        if self.denied.len() < MAX_REMEMBERED {
            self.denied.push(why);
        }
        HttpError::HttpRequestDenied
    }

    /// The checks that need no network: count, method, allow-list.
    fn admit(&mut self, request: &http::Request<WasiBody>) -> Result<Target, HttpError> {
        let method = request.method().as_str().to_owned();
        let uri = request.uri();
        let shown = crate::capture::truncate_marked(&uri.to_string(), 256, |kept| kept);
        let Some(policy) = self.grant.clone() else {
            return Err(self.deny(format!("network access not granted: {method} {shown}")));
        };
        if self.sent >= policy.grant.max_requests {
            return Err(self.deny(format!(
                "request {} refused: the grant allows {} per call ({method} {shown})",
                self.sent + 1,
                policy.grant.max_requests
            )));
        }
        if !policy.grant.methods.contains(&method) {
            return Err(self.deny(format!("method {method} not granted ({shown})")));
        }
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        if !policy
            .origins
            .iter()
            .any(|origin| origin.covers(&scheme, &host, port))
        {
            return Err(self.deny(format!(
                "{scheme}://{host}:{port} is not on the grant's allow-list ({method} {shown})"
            )));
        }
        self.sent += 1;
        Ok(Target {
            tls: scheme == "https",
            origin: format!("{scheme}://{host}:{port}"),
            host,
            port,
            method,
            policy,
        })
    }
}

/// An admitted request's destination.
struct Target {
    tls: bool,
    origin: String,
    host: String,
    port: u16,
    method: String,
    policy: Arc<Policy>,
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        let target = match self.admit(&request) {
            Ok(target) => target,
            Err(error) => return Box::new(async move { Err(error) }),
        };
        request
            .headers_mut()
            .insert(http::header::USER_AGENT, target.policy.user_agent.clone());
        let bytes_out = Arc::new(AtomicU64::new(0));
        let bytes_in = Arc::new(AtomicU64::new(0));
        let requests = Arc::clone(&self.requests);
        let grant_time = Duration::from_millis(target.policy.grant.timeout_ms);
        let deadline = Instant::now()
            .checked_add(grant_time)
            .map_or(self.deadline, |end| end.min(self.deadline));
        let counters = (Arc::clone(&bytes_out), Arc::clone(&bytes_in));
        Box::new(async move {
            let started = Instant::now();
            let mut record = OutboundRequest {
                method: target.method.clone(),
                origin: target.origin.clone(),
                address: None,
                status: None,
                error: None,
                bytes_out: 0,
                bytes_in: 0,
                duration_us: 0,
            };
            let sent = tokio::time::timeout_at(
                deadline.into(),
                exchange(request, &target, deadline, counters, &mut record),
            )
            .await
            .unwrap_or(Err(HttpError::ConnectionTimeout));
            record.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            if let Err(error) = &sent {
                record.error.get_or_insert_with(|| format!("{error:?}"));
            }
            let mut requests = requests.lock().unwrap_or_else(PoisonError::into_inner);
            if requests.len() < MAX_REMEMBERED {
                requests.push(Pending {
                    record,
                    bytes_out,
                    bytes_in,
                });
            }
            drop(requests);
            let response = sent?;
            let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// Resolves, checks every address, connects to a checked one, and sends.
async fn exchange(
    request: http::Request<WasiBody>,
    target: &Target,
    deadline: Instant,
    (bytes_out, bytes_in): (Arc<AtomicU64>, Arc<AtomicU64>),
    record: &mut OutboundRequest,
) -> Result<http::Response<WasiBody>, HttpError> {
    let address = resolve(target, deadline, record).await?;
    record.address = Some(address.to_string());
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(HttpError::Connect)?;
    let grant = &target.policy.grant;
    let (mut parts, body) = request.into_parts();
    // HTTP/1.1 to an origin server: the request target is the path and query only.
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = http::Uri::try_from(path).map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let body = Capped {
        inner: body,
        left: grant.max_request_bytes,
        count: bytes_out,
        error: HttpError::HttpRequestBodySize(Some(grant.max_request_bytes)),
        deadline: None,
    };
    let request = http::Request::from_parts(parts, body);
    let response = if target.tls {
        send(tls(tcp, &target.host).await?, request, deadline).await?
    } else {
        send(tcp, request, deadline).await?
    };
    record.status = Some(response.status().as_u16());
    Ok(response.map(|incoming| {
        Capped {
            inner: incoming.map_err(HttpError::from).boxed_unsync(),
            left: grant.max_response_bytes,
            count: bytes_in,
            error: HttpError::HttpResponseBodySize(Some(grant.max_response_bytes)),
            deadline: Some(Box::pin(tokio::time::sleep_until(deadline.into()))),
        }
        .boxed_unsync()
    }))
}

/// Why an address is refused unless a grant names its range, or `None` for a public address.
///
/// Addresses that embed an IPv4 address a router would translate or tunnel to are judged by
/// it (v4-mapped `::ffff:0:0/96`, NAT64's well-known `64:ff9b::/96`), or refused whole where
/// the embedding leaves the path to the v4 host to someone else's translator or relay:
/// local-use NAT64 (`64:ff9b:1::/48`), IPv4-translated (`::ffff:0:0:0/96`), 6to4 (`2002::/16`,
/// deprecated) and Teredo (`2001::/32`). A grant's `private` can still name any of them.
pub fn restricted(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if v4.is_link_local() {
                Some("link-local (cloud metadata)")
            } else if v4.is_private() {
                Some("private")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared address space (CGNAT)")
            } else if v4.is_multicast() || v4.is_broadcast() || a >= 240 {
                Some("multicast, broadcast or reserved")
            } else if (a == 192 && b == 0 && v4.octets()[2] == 0) || (a == 198 && (b & 0xfe) == 18)
            {
                Some("special-purpose")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return restricted(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address: judge that one.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return restricted(IpAddr::from([a, b, c, d]));
            }
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if (segments[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if (segments[0] & 0xfe00) == 0xfc00 {
                Some("unique local (private)")
            } else if segments[..6] == [0; 6] {
                Some("IPv4-compatible (deprecated)")
            } else if segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
                Some("IPv4-translated")
            } else if segments[..3] == [0x64, 0xff9b, 1] {
                Some("local-use NAT64")
            } else if segments[0] == 0x2002 {
                Some("6to4 (may embed a private IPv4 address)")
            } else if segments[..2] == [0x2001, 0] {
                Some("Teredo (may embed a private IPv4 address)")
            } else {
                None
            }
        }
    }
}

/// Most addresses of a name that are considered.
const MAX_ADDRESSES: usize = 16;

/// Name lookups of outbound requests running at once, in the whole process. A lookup runs the
/// system's `getaddrinfo` on a blocking thread, which nothing can stop: a call stops waiting
/// for it at its deadline, and this bounds the threads that lookups outliving their calls (a
/// silent DNS server) can hold.
const MAX_LOOKUPS: usize = 32;
static LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_LOOKUPS);

/// A blocking name lookup.
type Resolver = fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>;

/// The system's resolver (`getaddrinfo`).
fn system_resolver(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    Ok((host, port)
        .to_socket_addrs()?
        .take(MAX_ADDRESSES)
        .collect())
}

/// `host`'s addresses from `resolver`, on a blocking thread once one of the [`MAX_LOOKUPS`] is
/// free; given up at `deadline` (`DnsTimeout`), waiting included.
async fn lookup(
    resolver: Resolver,
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, HttpError> {
    let looked_up = async {
        let permit = LOOKUPS.acquire().await.map_err(|_| HttpError::DnsTimeout)?;
        let host = host.to_owned();
        // The permit stays with the thread until the lookup returns, even if the call gave up.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            resolver(&host, port)
        })
        .await
        .map_err(|_| HttpError::DestinationNotFound)?
        .map_err(|_| HttpError::DestinationNotFound)
    };
    tokio::time::timeout_at(deadline.into(), looked_up)
        .await
        .unwrap_or(Err(HttpError::DnsTimeout))
}

/// The address to connect to: the host's own if it is an IP literal, else the first address
/// the name resolves to (by `deadline`) that is public or in a granted range. Refused when none
/// is.
async fn resolve(
    target: &Target,
    deadline: Instant,
    record: &mut OutboundRequest,
) -> Result<SocketAddr, HttpError> {
    let literal = target
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    let candidates: Vec<SocketAddr> = match literal {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => {
            let found = lookup(system_resolver, &target.host, target.port, deadline).await;
            if let Err(HttpError::DnsTimeout) = found {
                record.error = Some(format!(
                    "looking up {} did not finish by the deadline",
                    target.host
                ));
            }
            found?
        }
    };
    let mut refused = None;
    for address in candidates {
        match restricted(address.ip()) {
            Some(why)
                if !target
                    .policy
                    .private
                    .iter()
                    .any(|range| range.contains(&address.ip())) =>
            {
                refused.get_or_insert(format!(
                    "{} resolves to {} ({why}), which the grant does not name",
                    target.host,
                    address.ip()
                ));
            }
            _ => return Ok(address),
        }
    }
    record.error = Some(refused.unwrap_or_else(|| format!("{} has no address", target.host)));
    Err(HttpError::DestinationIpProhibited)
}

async fn tls(
    tcp: tokio::net::TcpStream,
    host: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, HttpError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| HttpError::TlsCertificateError)?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|_| HttpError::TlsProtocolError)
}

/// Sends over an HTTP/1.1 connection; the connection is driven by a task that ends with the
/// exchange or at the deadline.
async fn send<S>(
    stream: S,
    request: http::Request<Capped>,
    deadline: Instant,
) -> Result<http::Response<hyper::body::Incoming>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(HttpError::from)?;
    tokio::spawn(async move {
        let _ = tokio::time::timeout_at(deadline.into(), connection).await;
    });
    sender.send_request(request).await.map_err(HttpError::from)
}

/// A body capped at `left` bytes, counting what passes, ending with `error` past the cap (and,
/// for responses, at the deadline).
struct Capped {
    inner: WasiBody,
    left: u64,
    count: Arc<AtomicU64>,
    error: HttpError,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for Capped {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)));
        }
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.left {
                self.left = 0;
                let error = std::mem::replace(&mut self.error, HttpError::HttpProtocolError);
                return Poll::Ready(Some(Err(error)));
            }
            self.left -= len;
            self.count.fetch_add(len, Ordering::Relaxed);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn refuses_every_internal_range_in_v4_and_v6() {
        for refused in [
            "127.0.0.1",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "198.19.255.254",
        ] {
            assert!(
                restricted(ip(refused)).is_some(),
                "{refused} must be refused"
            );
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2001:4860:4860::8888",
            "2001:db9::1",
            "192.0.1.1",
            "198.20.0.1",
            "198.17.255.254",
            "100.63.255.254",
            "100.128.0.1",
            "8.100.1.1",
        ] {
            assert_eq!(restricted(ip(public)), None, "{public} is public");
        }
    }

    /// A DNS server that does not answer for 1.5 s.
    fn silent_resolver(_host: &str, _port: u16) -> std::io::Result<Vec<SocketAddr>> {
        std::thread::sleep(Duration::from_millis(1500));
        Ok(vec![SocketAddr::from(([93, 184, 216, 34], 80))])
    }

    #[tokio::test]
    async fn a_lookup_is_given_up_at_the_deadline() {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(100);
        let found = lookup(silent_resolver, "slow.example", 80, deadline).await;
        assert!(matches!(found, Err(HttpError::DnsTimeout)), "{found:?}");
        let waited = started.elapsed();
        assert!(waited < Duration::from_millis(1000), "waited {waited:?}");
        // A lookup that answers in time is used.
        let fast = |_: &str, port| Ok(vec![SocketAddr::from(([1, 1, 1, 1], port))]);
        let found = lookup(
            fast,
            "fast.example",
            443,
            Instant::now() + Duration::from_secs(5),
        );
        assert_eq!(
            found.await.expect("found"),
            [SocketAddr::from(([1, 1, 1, 1], 443))]
        );
    }

    #[test]
    fn refuses_the_ranges_that_tunnel_or_translate_to_ipv4() {
        for (refused, why) in [
            // Local-use NAT64 (RFC 8215), whatever it embeds.
            ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
            ("64:ff9b:1:ffff::808:808", "local-use NAT64"),
            // 6to4 around 127.0.0.1, 10.0.0.1, 169.254.169.254 and a public address alike.
            ("2002:7f00:1::1", "6to4"),
            ("2002:a00:1::", "6to4"),
            ("2002:a9fe:a9fe::1", "6to4"),
            ("2002:808:808::1", "6to4"),
            // Teredo: server and (obfuscated) client IPv4 addresses.
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            ("2001::1", "Teredo"),
            // IPv4-translated (SIIT), around private and public addresses.
            ("::ffff:0:7f00:1", "IPv4-translated"),
            ("::ffff:0:a9fe:a9fe", "IPv4-translated"),
            ("::ffff:0:808:808", "IPv4-translated"),
        ] {
            let reason = restricted(ip(refused)).unwrap_or_else(|| panic!("{refused} refused"));
            assert!(reason.starts_with(why), "{refused}: {reason}");
        }
    }
}
