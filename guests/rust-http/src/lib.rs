//! Makes one outbound `GET` through `wasi:http/outgoing-handler` (world
//! `warden:plugin/transformer@0.2.0`): the input is `http://host[:port]/path`; the output is the
//! status and the body on the next line. The host decides whether it may (capability grants).

wit_bindgen::generate!({ path: "../../wit/warden-plugin-0.2.0", world: "transformer" });

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

struct Http;

impl Guest for Http {
    fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        let url = String::from_utf8(input).map_err(|e| e.to_string())?;
        let rest = url
            .trim()
            .strip_prefix("http://")
            .ok_or("only http:// URLs")?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let request = OutgoingRequest::new(Fields::new());
        request.set_method(&Method::Get).map_err(|()| "method")?;
        request.set_scheme(Some(&Scheme::Http)).map_err(|()| "scheme")?;
        request.set_authority(Some(authority)).map_err(|()| "authority")?;
        request.set_path_with_query(Some(path)).map_err(|()| "path")?;
        let pending =
            outgoing_handler::handle(request, None).map_err(|e| format!("refused: {e:?}"))?;
        pending.subscribe().block();
        let response = pending
            .get()
            .ok_or("no response")?
            .map_err(|()| "response taken twice")?
            .map_err(|e| format!("request failed: {e:?}"))?;
        let status = response.status();
        let body = response.consume().map_err(|()| "body")?;
        let stream = body.stream().map_err(|()| "stream")?;
        let mut out = format!("{status}\n").into_bytes();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => out.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(format!("reading the body failed: {}", e.to_debug_string()));
                }
            }
        }
        Ok(out)
    }
}

export!(Http);
