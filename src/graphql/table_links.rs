//! The links printed on tables: a customer token per table, in a URL and a QR code, for the
//! manager screen's QR sheet. Not in the contract: an addition of this server.

use async_graphql::Object;
use orderhub_actors::domain::{self, Role, Timestamp};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use std::time::Duration;

use super::types::{DateTime, Table};
use super::{ApiError, ApiResult};
use crate::auth::Tokens;

/// The longest `baseUrl` accepted, in bytes: with a token (about 300 bytes) it stays well
/// inside what a QR code at level M holds (2,331 bytes, version 40).
pub const MAX_BASE_URL: usize = 512;

/// Mints the customer tokens of table links: the node's token issuer and how long a printed
/// link stays valid (`ORDERHUB_TABLE_TOKEN_TTL`).
#[derive(Clone)]
pub struct TableLinks {
    pub tokens: Tokens,
    pub ttl: Duration,
}

impl TableLinks {
    /// A customer token for `table`, its link `base` + `/order#token=…`, and the link's QR code.
    /// `base` is a [`base_url`] already checked.
    pub(crate) fn link(&self, base: &str, table: domain::Table) -> ApiResult<TableLink> {
        // One subject per table: every phone at the table is the same client to the rate
        // limit and in logs, as with any customer token of that table.
        let subject = format!("table-{}", table.id);
        let (token, expires_at) = self.tokens.issue_expiring(
            &subject,
            Role::Customer,
            Some(&table.restaurant_id),
            Some(&table.id),
            self.ttl,
        );
        let url = format!("{base}/order#token={token}");
        let qr_svg = qr_svg(&url)?;
        Ok(TableLink {
            table,
            url,
            qr_svg,
            expires_at,
        })
    }
}

/// A table's customer link.
pub struct TableLink {
    table: domain::Table,
    url: String,
    qr_svg: String,
    expires_at: Timestamp,
}

/// A table's customer link and its QR code, to print and put on the table.
#[Object]
impl TableLink {
    async fn table(&self) -> Table {
        Table(self.table.clone())
    }
    /// baseUrl + "/order#token=" + a customer token for this table.
    async fn url(&self) -> &str {
        &self.url
    }
    /// The url as a QR code (error correction M, with its quiet zone): an SVG document.
    async fn qr_svg(&self) -> &str {
        &self.qr_svg
    }
    /// When the token in the url expires (ORDERHUB_TABLE_TOKEN_TTL after it was issued).
    async fn expires_at(&self) -> DateTime {
        DateTime(self.expires_at)
    }
}

/// `baseUrl` checked and without its trailing slashes: an absolute `http://` or `https://` URL
/// with a host, at most [`MAX_BASE_URL`] bytes, with no fragment (the link's own fragment
/// carries the token), no query (`/order` is appended to it), no user info and no whitespace
/// or control characters. Anything else is BAD_USER_INPUT.
pub(crate) fn base_url(raw: &str) -> ApiResult<String> {
    let refuse = |why: &str| Err(ApiError::bad_input(format!("baseUrl {why}")));
    if raw.len() > MAX_BASE_URL {
        return refuse(&format!("is longer than {MAX_BASE_URL} bytes"));
    }
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let Some(rest) = ["http://", "https://"]
        .iter()
        .find(|scheme| lower.starts_with(**scheme))
        .map(|scheme| &raw[scheme.len()..])
    else {
        return refuse("must be an absolute http:// or https:// URL");
    };
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("must not contain spaces or control characters");
    }
    if raw.contains('#') {
        return refuse("must not have a fragment (#…)");
    }
    if raw.contains('?') {
        return refuse("must not have a query (?…)");
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return refuse("must not carry user info (…@)");
    }
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(authority, |(host, _)| host);
    if host.is_empty() {
        return refuse("has no host");
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// The QR code of `text` at error correction level M (15 % of it may be lost, a table's
/// wear and stains), as an SVG document with the 4-module quiet zone ISO/IEC 18004 requires.
fn qr_svg(text: &str) -> ApiResult<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| ApiError::bad_input(format!("the link does not fit in a QR code: {e}")))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(264, 264)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_absolute_http_without_fragment_or_query() {
        for (raw, expected) in [
            ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
            ("https://orders.example/", "https://orders.example"),
            (
                "HTTPS://Orders.Example/shop//",
                "HTTPS://Orders.Example/shop",
            ),
            ("http://[::1]:8000", "http://[::1]:8000"),
        ] {
            assert_eq!(base_url(raw).ok().as_deref(), Some(expected), "{raw}");
        }
        for raw in [
            "",
            "/order",
            "orders.example",
            "ftp://orders.example",
            "javascript:alert(1)",
            "http://",
            "http:///path",
            "http://:8000",
            "https://orders.example/#x",
            "https://orders.example/?x=1",
            "https://user:pw@orders.example",
            "https://orders.example/a b",
            "https://orders.example/\n",
        ] {
            let refused = base_url(raw).err().map(|e| e.code());
            assert_eq!(
                refused,
                Some(orderhub_actors::ErrorCode::BadUserInput),
                "{raw:?}"
            );
        }
        let long = format!("https://orders.example/{}", "a".repeat(MAX_BASE_URL));
        assert!(base_url(&long).is_err());
    }

    #[test]
    fn the_qr_code_is_an_svg_document() {
        let svg = qr_svg("http://127.0.0.1:8000/order#token=abc").expect("fits");
        assert!(svg.starts_with("<?xml"), "{svg}");
        assert!(svg.contains("<svg") && svg.ends_with("</svg>"), "{svg}");
    }
}
