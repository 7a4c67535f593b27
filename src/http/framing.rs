//! What RFC 9112 asks of a server that hyper leaves to the application, checked in the accept
//! path before any route runs, and the deadline on a request body.
//!
//! hyper itself refuses (400) a malformed request line or header line, obsolete line folding,
//! a `Transfer-Encoding` whose final coding is not `chunked` or in an HTTP/1.0 request, and
//! differing `Content-Length`s; with both `Transfer-Encoding` and `Content-Length` it reads by
//! the former and closes the connection afterwards (§6.3). The rest is here.

use axum::body::{Body, Bytes};
use axum::http::{header, Method, Request, Version};
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// Why a request head breaks RFC 9112; answered 400 and the connection closed.
pub fn check_head<B>(request: &Request<B>) -> Result<(), &'static str> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        // §3.2: an HTTP/1.1 request without Host, with more than one, or with an invalid one.
        (None, _) if request.version() == Version::HTTP_11 => {
            return Err("an HTTP/1.1 request must have a Host header (RFC 9112, section 3.2)")
        }
        (Some(_), Some(_)) => {
            return Err("a request must have one Host header, not several (RFC 9112, section 3.2)")
        }
        (Some(host), None) if !is_valid_host(host.as_bytes()) => {
            return Err("the Host header is not a valid host[:port] (RFC 9112, section 3.2)")
        }
        _ => {}
    }
    let uri = request.uri();
    // §3.2.3: the authority form is only for CONNECT; §3.2.4: the asterisk form only for a
    // server-wide OPTIONS.
    if uri.scheme().is_none() && uri.authority().is_some() && request.method() != Method::CONNECT {
        return Err(
            "the authority form of a request target is only for CONNECT (RFC 9112, section 3.2.3)",
        );
    }
    if uri.path() == "*" && request.method() != Method::OPTIONS {
        return Err(
            "the asterisk form of a request target is only for OPTIONS (RFC 9112, section 3.2.4)",
        );
    }
    Ok(())
}

/// `Host = uri-host [ ":" port ]` (RFC 9110, section 7.2): an authority with no user
/// information. Empty is allowed: a client sends it when the target has no authority.
fn is_valid_host(value: &[u8]) -> bool {
    if value.is_empty() {
        return true;
    }
    let Ok(authority) = axum::http::uri::Authority::try_from(value) else {
        return false;
    };
    let text = authority.as_str();
    // `http` takes user information and any port text; RFC 9110 takes neither.
    let port = text.get(authority.host().len()..).unwrap_or_default();
    let port_is_digits = match port.strip_prefix(':') {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        None => port.is_empty(),
    };
    !text.contains('@') && port_is_digits
}

/// How long a request body may take: `timeout` for the first bytes, extended by one second
/// per `min_rate` bytes received, as Apache's mod_reqtimeout does (`body=20,MinRate=500`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadline {
    pub timeout: Duration,
    /// Bytes per second; 0: no extension, the whole body within `timeout`.
    pub min_rate: u64,
}

/// A request body under a [`BodyDeadline`]. Past it the body fails, and `expired` tells the
/// accept loop to answer 408 and close.
pub struct TimedBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    min_rate: u64,
    expired: Arc<AtomicBool>,
}

/// The error a body read past its deadline fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl TimedBody {
    pub fn new(inner: Body, limit: BodyDeadline, expired: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit.timeout)),
            min_rate: limit.min_rate,
            expired,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), rate) = (frame.data_ref(), this.min_rate) {
                    if rate > 0 {
                        let earned = Duration::from_secs_f64(data.len() as f64 / rate as f64);
                        let until = this.deadline.deadline() + earned;
                        this.deadline.as_mut().reset(until);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.expired.store(true, Ordering::Release);
                    Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, hosts: &[&[u8]], target: &str, method: Method) -> Request<()> {
        let mut request = Request::builder()
            .method(method)
            .uri(target)
            .version(version)
            .body(())
            .expect("a request");
        for host in hosts {
            let value = axum::http::HeaderValue::from_bytes(host).expect("a header value");
            request.headers_mut().append(header::HOST, value);
        }
        request
    }

    #[test]
    fn host_is_required_once_and_valid() {
        let get = |version, hosts: &[&[u8]]| {
            check_head(&request(version, hosts, "/graphql", Method::GET))
        };
        assert!(get(Version::HTTP_11, &[b"example.com"]).is_ok());
        assert!(get(Version::HTTP_11, &[b"127.0.0.1:8000"]).is_ok());
        assert!(get(Version::HTTP_11, &[b"[::1]:8000"]).is_ok());
        assert!(get(Version::HTTP_11, &[b""]).is_ok());
        assert!(
            get(Version::HTTP_10, &[]).is_ok(),
            "HTTP/1.0 has no Host rule"
        );
        assert!(get(Version::HTTP_11, &[]).is_err());
        assert!(get(Version::HTTP_11, &[b"a", b"a"]).is_err());
        assert!(get(Version::HTTP_10, &[b"a", b"b"]).is_err());
        for bad in [
            &b"a b"[..],
            b"user@example.com",
            b"a/b",
            b"example.com:port",
            b"a?b",
        ] {
            assert!(
                get(Version::HTTP_11, &[bad]).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn request_target_forms_match_their_methods() {
        let head = |target, method| check_head(&request(Version::HTTP_11, &[b"h"], target, method));
        assert!(head("*", Method::OPTIONS).is_ok());
        assert!(head("*", Method::GET).is_err());
        assert!(head("example.com:443", Method::GET).is_err());
        assert!(head("http://example.com/graphql", Method::GET).is_ok());
    }
}
