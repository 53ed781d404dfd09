//! Outbound HTTP for `wasi:http/outgoing-handler`, under a call's [`HttpGrant`].
//!
//! Without a grant every request is refused. With one, the host checks, in order: the request
//! count, the method, the scheme, host and port against the allow-list; then it resolves the
//! name itself, refuses internal addresses (loopback, private, link-local and cloud metadata,
//! CGNAT, multicast, unspecified, in v4, v6 and v4-mapped v6) unless the grant names their
//! range, and connects to the address it checked — so DNS rebinding cannot swap it between the
//! check and the connect. Redirects are never followed by the host (the guest sees the 3xx and
//! a new request is checked like any other). Request and response bodies are capped, and the
//! whole exchange ends by the grant's timeout and the call's deadline. Every request is
//! recorded (method, host, status, bytes, duration; never bodies); every denial is logged.

use crate::grants::{HttpGrant, Origin, restricted};
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
        let deadline = self.deadline.min(Instant::now() + grant_time);
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
    let address = resolve(target, record).await?;
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

/// The address to connect to: the host's own if it is an IP literal, else the first address
/// the name resolves to that is public or in a granted range. Refused when none is.
async fn resolve(target: &Target, record: &mut OutboundRequest) -> Result<SocketAddr, HttpError> {
    let literal = target
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    let candidates: Vec<SocketAddr> = match literal {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|_| HttpError::DestinationNotFound)?
            .take(16)
            .collect(),
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
