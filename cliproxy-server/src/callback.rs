//! The local listener the browser comes back to at the end of an authorization-code login (Claude's): the
//! provider redirects to `http://localhost:<port>/callback?code=…&state=…`, and this listener hands that to the
//! login flow, which checks the state and exchanges the code.
//!
//! The CLI, the management login endpoint and both bindings start logins through [`start_login`], so every
//! surface listens the same way. The listener binds 127.0.0.1 only, serves nothing but `/callback`, and closes
//! once the login ended. When the port is taken (another login is waiting on it), the login still starts: its
//! code can be pasted instead.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cliproxy_core::login::LoginFlow;
use cliproxy_core::{Client, Error};
use serde_json::Value;
use tokio::net::TcpListener;

/// How long the callback page waits for the code exchange before answering anyway.
const EXCHANGE_WAIT: Duration = Duration::from_secs(30);

/// A started login and, for an authorization-code login, where its callback listener listens (`None` when it
/// could not listen: then the code must be pasted).
pub struct StartedLogin {
    pub flow: LoginFlow,
    pub callback: Option<SocketAddr>,
}

/// Starts a login with `provider`. Authorization-code logins first bind their callback port on 127.0.0.1
/// (`callback_port` in `options`, 0 for any free port; the provider's default otherwise) and name the port
/// really bound in the redirect URI; `listen: false` skips that (a remote user pastes the code instead).
pub async fn start_login(
    client: &Client,
    provider: &str,
    mut options: Value,
    listen: bool,
) -> Result<StartedLogin, Error> {
    let port = if listen { client.login_callback_port(provider, &options) } else { None };
    let listener = match port {
        None => None,
        Some(port) => match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            Ok(l) => {
                let bound = l.local_addr().map_err(|e| Error::config(format!("callback listener: {e}")))?.port();
                if let Some(o) = options.as_object_mut() {
                    o.insert("callback_port".into(), bound.into());
                }
                Some(l)
            }
            Err(e) => {
                tracing::warn!(
                    port,
                    "cannot listen for the login's callback on 127.0.0.1:{port} ({e}); the code can be pasted instead"
                );
                None
            }
        },
    };
    let flow = client.login(provider, options).await?;
    let callback = match listener {
        Some(l) => {
            let addr = l.local_addr().ok();
            tokio::spawn(serve(l, flow.clone()));
            addr
        }
        None => None,
    };
    Ok(StartedLogin { flow, callback })
}

/// Serves `/callback` until the login ended (a little longer, so the page that brought the code gets its
/// answer), or until it expired.
async fn serve(listener: TcpListener, flow: LoginFlow) {
    let done = flow.clone();
    let app = Router::new().route("/callback", get(callback)).with_state(flow.clone());
    let shutdown = async move {
        let _ = done.wait().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let limit = Duration::from_secs(flow.expires_in) + EXCHANGE_WAIT;
    if tokio::time::timeout(limit, server).await.is_err() {
        tracing::debug!(flow = %flow.id, "login callback listener closed at the login's expiry");
    }
}

async fn callback(State(flow): State<LoginFlow>, RawQuery(query): RawQuery) -> Response {
    if let Err(e) = flow.complete(query.as_deref().unwrap_or_default()) {
        return page(StatusCode::BAD_REQUEST, "Login not completed", e.message());
    }
    match tokio::time::timeout(EXCHANGE_WAIT, flow.wait()).await {
        Ok(Ok(id)) => page(
            StatusCode::OK,
            "Logged in",
            &format!("The account is stored as credential {id} and ready to use. You can close this window."),
        ),
        Ok(Err(e)) => page(StatusCode::BAD_GATEWAY, "Login failed", e.message()),
        Err(_) => {
            page(StatusCode::ACCEPTED, "Login in progress", "The code was received; the login is still finishing.")
        }
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let (title, text) = (crate::family::html_escape(title), crate::family::html_escape(text));
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cliproxy · {title}</title></head>\
         <body style=\"font: 15px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 4rem auto\">\
         <h1>{title}</h1><p id=\"result\">{text}</p></body></html>"
    );
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    r
}
