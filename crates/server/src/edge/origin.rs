//! Who may address the API: a web page the developer happens to visit must not drive it.
//!
//! One layer, before routing, on every listener:
//!
//! - **Host** (open mode only): a request must be addressed to `localhost`, `*.localhost` or a
//!   loopback address (any port), or to a name in `http.allowed_hosts`. A DNS-rebinding page
//!   reaches 127.0.0.1 under a name of its own, and its `Host` gives it away:
//!   `421 host_not_allowed`. A request without any `Host` (HTTP/1.0) passes: no browser sends one.
//! - **Origin** (both modes): browsers add `Origin` to every cross-origin request and to every
//!   non-GET one, so a request carrying one must come from the server's own origin (the
//!   scheme of the listener, the host and port of the request's `Host`) or from
//!   `http.cors_allowed_origins`; anything else, `Origin: null` included, is
//!   `403 cross_origin`. Requests without one (curl, the CLI) pass. A cross-site "simple"
//!   `POST /run` (`text/plain`, no preflight) is refused before its body is read.
//!
//! Only the allowed origins get CORS headers, and an answer to their preflights; no CORS
//! otherwise. The common request (a loopback `Host`, no `Origin`) costs a few comparisons and
//! no allocation.

use crate::ApiError;
use crate::config::ServerConfig;
use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, HOST,
    ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either, Ready, ready};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;
use warden_runtime::InvalidSetting;

/// Methods an allowed origin may use (answered to its preflight).
const CORS_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// Request headers an allowed origin may send.
const CORS_REQUEST_HEADERS: &str = "authorization, content-type, x-request-id";
/// Response headers an allowed origin's script may read.
const CORS_EXPOSED_HEADERS: &str = "warden-outcome, warden-request-id, warden-run-id, \
     warden-digest, warden-fuel-used, warden-wall-us, warden-log-lines, retry-after";
/// How long a browser may cache a preflight's answer, in seconds.
const CORS_MAX_AGE_SECS: &str = "600";
/// Longest part of a refused `Host` or `Origin` quoted back in the error message.
const MAX_QUOTED: usize = 200;

/// A name or address in `http.allowed_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedHost {
    Address(IpAddr),
    /// Lower case, without a trailing dot.
    Name(String),
}

impl AllowedHost {
    /// An IP address (IPv6 with or without brackets) or a DNS name; no port.
    fn parse(text: &str) -> Result<AllowedHost, String> {
        let bare = text
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(text);
        if let Ok(address) = bare.parse::<IpAddr>() {
            return Ok(AllowedHost::Address(address));
        }
        let name = text.strip_suffix('.').unwrap_or(text);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(format!(
                "has `{text}`, which is not a host name or an IP address (no scheme, no port)"
            ));
        }
        Ok(AllowedHost::Name(name.to_ascii_lowercase()))
    }
}

/// The host part of a request authority.
enum Host<'a> {
    /// Inside brackets: an IPv6 literal (unparsed).
    Bracketed(&'a str),
    /// A name or an IPv4 address (unparsed).
    Plain(&'a str),
}

/// Splits `host[:port]` or `[v6][:port]`; `None` when malformed (a port that is not a number).
fn host_of(authority: &str) -> Option<Host<'_>> {
    let port_ok = |port: &str| port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = authority.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        return match after {
            "" => Some(Host::Bracketed(inner)),
            _ => after
                .strip_prefix(':')
                .filter(|port| port_ok(port))
                .map(|_| Host::Bracketed(inner)),
        };
    }
    let host = match authority.split_once(':') {
        None => authority,
        Some((host, port)) => {
            if !port_ok(port) {
                return None;
            }
            host
        }
    };
    (!host.is_empty()).then_some(Host::Plain(host))
}

/// `localhost` or a name under it (browsers resolve them to loopback themselves), in any case,
/// with or without the trailing dot.
fn is_localhost(name: &str) -> bool {
    const SUFFIX: &[u8] = b".localhost";
    let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
    name.eq_ignore_ascii_case(&SUFFIX[1..])
        || (name.len() > SUFFIX.len()
            && name[name.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX))
}

/// A loopback address, also as an IPv4-mapped IPv6 one.
fn is_loopback_v6(address: Ipv6Addr) -> bool {
    address.is_loopback() || address.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
}

/// Whether `origin` is `scheme://authority` (ASCII case ignored; a default port on either side
/// is the same as none).
fn same_origin(origin: &str, scheme: &str, authority: &str) -> bool {
    let Some(rest) = origin
        .get(..scheme.len())
        .filter(|prefix| prefix.eq_ignore_ascii_case(scheme))
        .and_then(|_| origin[scheme.len()..].strip_prefix("://"))
    else {
        return false;
    };
    if rest.is_empty() {
        return false;
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    without_port(rest, default_port).eq_ignore_ascii_case(without_port(authority, default_port))
}

/// `authority` without a trailing `port` (`:80`, `:443`), unless that would leave nothing.
fn without_port<'a>(authority: &'a str, port: &str) -> &'a str {
    match authority.strip_suffix(port) {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => authority,
    }
}

/// One `http.cors_allowed_origins` entry as a browser serialises it: `http` or `https`, a host
/// in lower case, the port unless it is the scheme's default; no path.
fn parse_origin(text: &str) -> Result<String, String> {
    let invalid = |why: &str| {
        format!("has `{text}`, which is not an origin ({why}), e.g. http://localhost:5173")
    };
    let lower = text.to_ascii_lowercase();
    let (scheme, authority) = lower
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
        .ok_or_else(|| invalid("it needs http:// or https://"))?;
    if authority.is_empty()
        || authority
            .bytes()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b'*') || !b.is_ascii_graphic())
    {
        return Err(invalid("a scheme and a host, no path, no wildcard"));
    }
    let host = match host_of(authority).ok_or_else(|| invalid("a malformed port"))? {
        Host::Bracketed(inner) => {
            inner
                .parse::<Ipv6Addr>()
                .map_err(|_| invalid("a malformed IPv6 address"))?;
            None
        }
        Host::Plain(host) => Some(host),
    };
    if let Some(host) = host {
        AllowedHost::parse(host).map_err(|_| invalid("a malformed host"))?;
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    Ok(format!(
        "{scheme}://{}",
        without_port(authority, default_port)
    ))
}

/// Quotes a refused header value back to the client, cut short.
fn quoted(text: &str) -> &str {
    // Header text that passed `to_str` is ASCII, so any byte index is a char boundary.
    text.get(..MAX_QUOTED).unwrap_or(text)
}

/// What the layer checks, built once from the configuration.
#[derive(Debug)]
pub(crate) struct OriginPolicy {
    /// Open mode: refuse a `Host` that is not loopback or allowed.
    check_host: bool,
    allowed_hosts: Box<[AllowedHost]>,
    /// As browsers serialise them (see [`parse_origin`]).
    cors_allowed_origins: Box<[String]>,
    /// The listeners' scheme: `https` with `http.tls`, else `http`.
    scheme: &'static str,
}

/// The layer's decision on one request.
enum Verdict {
    /// On to the router, untouched (the common case).
    Pass,
    /// An allowed foreign origin: on to the router, CORS headers on the answer.
    Cors(HeaderValue),
    /// An allowed foreign origin's preflight: answered here.
    Preflight(HeaderValue),
    Refuse(ApiError),
}

impl OriginPolicy {
    /// The policy of `config`.
    ///
    /// # Errors
    /// The first malformed `http.allowed_hosts` or `http.cors_allowed_origins` entry.
    pub(crate) fn new(config: &ServerConfig) -> Result<OriginPolicy, InvalidSetting> {
        let allowed_hosts = config
            .http
            .allowed_hosts
            .iter()
            .map(|host| AllowedHost::parse(host))
            .collect::<Result<_, _>>()
            .map_err(|reason| InvalidSetting::new("http.allowed_hosts", reason))?;
        let cors_allowed_origins = config
            .http
            .cors_allowed_origins
            .iter()
            .map(|origin| parse_origin(origin))
            .collect::<Result<_, _>>()
            .map_err(|reason| InvalidSetting::new("http.cors_allowed_origins", reason))?;
        Ok(OriginPolicy {
            check_host: config.admin_token.is_none(),
            allowed_hosts,
            cors_allowed_origins,
            scheme: if config.http.tls.is_some() {
                "https"
            } else {
                "http"
            },
        })
    }

    /// Whether open mode answers a request addressed to `authority`.
    fn host_allowed(&self, authority: &str) -> bool {
        let allows = |address: IpAddr| self.allowed_hosts.contains(&AllowedHost::Address(address));
        match host_of(authority) {
            None => false,
            Some(Host::Bracketed(inner)) => inner
                .parse::<Ipv6Addr>()
                .is_ok_and(|v6| is_loopback_v6(v6) || allows(IpAddr::V6(v6))),
            Some(Host::Plain(host)) => match host.parse::<Ipv4Addr>() {
                Ok(v4) => v4.is_loopback() || allows(IpAddr::V4(v4)),
                Err(_) => {
                    let name = host.strip_suffix('.').unwrap_or(host);
                    is_localhost(name)
                        || self.allowed_hosts.iter().any(|allowed| match allowed {
                            AllowedHost::Name(allowed) => allowed.eq_ignore_ascii_case(name),
                            AllowedHost::Address(_) => false,
                        })
                }
            },
        }
    }

    fn judge(&self, request: &Request) -> Verdict {
        let headers = request.headers();
        // HTTP/2 and absolute-form requests carry the authority in the URI; HTTP/1.1 in `Host`.
        let uri_authority = request.uri().authority().map(|a| a.as_str());
        let mut hosts = headers.get_all(HOST).iter();
        let host_header = hosts.next();
        if hosts.next().is_some() {
            return Verdict::Refuse(ApiError::BadRequest("more than one Host header".into()));
        }
        let host_text = match host_header.map(HeaderValue::to_str) {
            None => None,
            Some(Ok(text)) => Some(text),
            Some(Err(_)) => {
                return Verdict::Refuse(ApiError::BadRequest("a Host that is not ASCII".into()));
            }
        };
        if self.check_host {
            for authority in [uri_authority, host_text].into_iter().flatten() {
                if !self.host_allowed(authority) {
                    return Verdict::Refuse(ApiError::HostNotAllowed(format!(
                        "open mode answers only requests addressed to localhost or a loopback \
                         address, not `{}` (a web page could reach this server by DNS \
                         rebinding); use http://localhost:PORT, name the host in \
                         http.allowed_hosts, or set an admin_token",
                        quoted(authority)
                    )));
                }
            }
        }
        let mut origins = headers.get_all(ORIGIN).iter();
        let Some(origin) = origins.next() else {
            return Verdict::Pass;
        };
        let text = match origin.to_str() {
            Ok(text) if origins.next().is_none() => text,
            _ => {
                return Verdict::Refuse(ApiError::CrossOrigin(
                    "a malformed or repeated Origin header".into(),
                ));
            }
        };
        let authority = uri_authority.or(host_text);
        if authority.is_some_and(|authority| same_origin(text, self.scheme, authority)) {
            return Verdict::Pass;
        }
        if self
            .cors_allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(text))
        {
            let preflight = request.method() == Method::OPTIONS
                && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
            return match preflight {
                true => Verdict::Preflight(origin.clone()),
                false => Verdict::Cors(origin.clone()),
            };
        }
        Verdict::Refuse(ApiError::CrossOrigin(format!(
            "requests from the web origin `{}` are refused: Warden answers its own origin and \
             the origins in http.cors_allowed_origins only",
            quoted(text)
        )))
    }
}

/// The CORS headers of an allowed origin's answer.
fn allow_origin(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(VARY, HeaderValue::from_static("origin"));
}

/// The answer to an allowed origin's preflight.
fn preflight(origin: HeaderValue) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    allow_origin(headers, origin);
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(CORS_METHODS),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(CORS_REQUEST_HEADERS),
    );
    headers.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(CORS_MAX_AGE_SECS),
    );
    response
}

/// The layer: wraps each route (and the fallback) in an [`OriginGuard`].
#[derive(Clone)]
pub(crate) struct OriginLayer(Arc<OriginPolicy>);

impl OriginLayer {
    pub(crate) fn new(policy: OriginPolicy) -> OriginLayer {
        OriginLayer(Arc::new(policy))
    }
}

impl<S> Layer<S> for OriginLayer {
    type Service = OriginGuard<S>;

    fn layer(&self, inner: S) -> OriginGuard<S> {
        OriginGuard {
            inner,
            policy: Arc::clone(&self.0),
        }
    }
}

/// Checks a request's `Host` and `Origin` before the inner service sees it.
#[derive(Clone)]
pub(crate) struct OriginGuard<S> {
    inner: S,
    policy: Arc<OriginPolicy>,
}

/// The guard's future: the inner one as it is on the common path (no box); a ready answer
/// for a refusal or a preflight; boxed only for an allowed foreign origin.
type GuardFuture<F, E> =
    Either<F, Either<Ready<Result<Response, E>>, BoxFuture<'static, Result<Response, E>>>>;

impl<S> Service<Request> for OriginGuard<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.policy.judge(&request) {
            Verdict::Pass => Either::Left(self.inner.call(request)),
            Verdict::Refuse(error) => {
                tracing::debug!(%error, "refused by the host and origin checks");
                Either::Right(Either::Left(ready(Ok(error.into_response()))))
            }
            Verdict::Preflight(origin) => Either::Right(Either::Left(ready(Ok(preflight(origin))))),
            Verdict::Cors(origin) => {
                let answer = self.inner.call(request);
                Either::Right(Either::Right(Box::pin(async move {
                    let mut response = answer.await?;
                    let headers = response.headers_mut();
                    allow_origin(headers, origin);
                    headers.insert(
                        ACCESS_CONTROL_EXPOSE_HEADERS,
                        HeaderValue::from_static(CORS_EXPOSED_HEADERS),
                    );
                    Ok(response)
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(edit: impl FnOnce(&mut ServerConfig)) -> OriginPolicy {
        let mut config = ServerConfig::default();
        edit(&mut config);
        OriginPolicy::new(&config).expect("a valid policy")
    }

    #[test]
    fn open_mode_answers_loopback_hosts_only() {
        let open = policy(|_| {});
        for host in [
            "localhost",
            "localhost:8080",
            "LocalHost:1",
            "localhost.:8080",
            "app.localhost:3000",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.255.0.9:80",
            "[::1]",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:8080",
            "localhost:",
        ] {
            assert!(open.host_allowed(host), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.1.attacker.example",
            "xlocalhost",
            ".localhost",
            "0.0.0.0:8080",
            "10.0.0.1",
            "[::2]:8080",
            "[::1]x",
            "::1",
            "localhost:80a",
            "localhost:123456",
            "",
            ":8080",
            "[::1",
        ] {
            assert!(!open.host_allowed(host), "{host}");
        }
    }

    #[test]
    fn allowed_hosts_add_names_and_addresses() {
        let open = policy(|config| {
            config.http.allowed_hosts = vec![
                "Warden.Internal.".into(),
                "10.1.2.3".into(),
                "[2001:db8::1]".into(),
            ];
        });
        for host in [
            "warden.internal:8080",
            "WARDEN.internal",
            "10.1.2.3:80",
            "[2001:db8::1]:8080",
            "localhost",
        ] {
            assert!(open.host_allowed(host), "{host}");
        }
        for host in ["other.internal", "10.1.2.4", "internal"] {
            assert!(!open.host_allowed(host), "{host}");
        }
        for bad in ["http://x", "x:80", "a b", "", "a..b", "*.example"] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn same_origin_compares_scheme_host_and_port() {
        assert!(same_origin(
            "http://127.0.0.1:8080",
            "http",
            "127.0.0.1:8080"
        ));
        assert!(same_origin(
            "HTTP://LocalHost:8080",
            "http",
            "localhost:8080"
        ));
        assert!(same_origin("http://localhost", "http", "localhost:80"));
        assert!(same_origin("https://w.example", "https", "w.example"));
        assert!(!same_origin(
            "https://127.0.0.1:8080",
            "http",
            "127.0.0.1:8080"
        ));
        assert!(!same_origin(
            "http://localhost:8080",
            "http",
            "127.0.0.1:8080"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:8081",
            "http",
            "127.0.0.1:8080"
        ));
        assert!(!same_origin("null", "http", "127.0.0.1:8080"));
        assert!(!same_origin("http://", "http", ""));
        assert!(!same_origin("http://a:8080/", "http", "a:8080"));
    }

    #[test]
    fn cors_origins_are_parsed_as_browsers_send_them() {
        assert_eq!(
            parse_origin("HTTP://Console.Example:5173"),
            Ok("http://console.example:5173".to_owned())
        );
        assert_eq!(
            parse_origin("https://console.example:443"),
            Ok("https://console.example".to_owned())
        );
        assert_eq!(
            parse_origin("http://[::1]:3000"),
            Ok("http://[::1]:3000".to_owned())
        );
        for bad in [
            "*",
            "null",
            "console.example",
            "ftp://console.example",
            "http://console.example/",
            "http://console.example/app",
            "http://*.example",
            "http://user@console.example",
            "http://console.example:port",
            "http://",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
