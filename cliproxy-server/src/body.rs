//! Reading request bodies: the one place a body is buffered, with a size limit (413) and a deadline (408) in
//! the family of the route, so neither a huge body nor a client that announces a body and never sends it can
//! hold memory or a connection.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use cliproxy_core::{Error, ErrorKind};
use http_body_util::BodyExt;

use crate::family::{ApiError, Family};

/// Reads `body` whole: at most `limit` bytes, within `deadline`.
pub async fn read(body: Body, limit: usize, deadline: Duration, family: Family) -> Result<Bytes, ApiError> {
    let collected = tokio::time::timeout(deadline, http_body_util::Limited::new(body, limit).collect()).await;
    let e = match collected {
        Ok(Ok(c)) => return Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            let size = if limit >= 1 << 20 {
                format!("{} MiB (body-limit-mb)", limit >> 20)
            } else {
                format!("{} KiB", limit >> 10)
            };
            Error::invalid_request(format!("request body exceeds {size}"))
                .with_code("request_too_large")
                .with_http_status(413)
        }
        Ok(Err(e)) => {
            Error::new(ErrorKind::Cancelled, format!("could not read the request body: {e}")).with_http_status(400)
        }
        Err(_) => Error::invalid_request(format!("the request body did not arrive within {} s", deadline.as_secs()))
            .with_code("request_timeout")
            .with_http_status(408),
    };
    Err(ApiError::new(family, e))
}
