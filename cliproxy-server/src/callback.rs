//! The local listener the browser comes back to at the end of an authorization-code login (Claude's): the
//! provider redirects to `http://localhost:<port>/callback?code=…&state=…`, and this listener hands that to the
//! login flow, which checks the state and exchanges the code.
//!
//! The CLI, the management login endpoint and both bindings start logins through [`start_login`], so every
//! surface listens the same way. A listener binds 127.0.0.1 only, serves nothing but `/callback`, and closes
//! once no login waits on it any more. Logins started while one waits on the same port (the user clicked
//! again) join its listener, which hands each return to the login whose state it carries. When the port is
//! taken by another program, the login still starts: its code can be pasted instead.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cliproxy_core::login::{LoginFlow, LoginStatus};
use cliproxy_core::{Client, Error};
use serde_json::Value;
use tokio::net::TcpListener;

/// How long the callback page waits for the code exchange before answering anyway.
const EXCHANGE_WAIT: Duration = Duration::from_secs(30);

/// Who waits for their browser on one port: the logins, and how many are still being started to join them
/// (the listener stays while any is).
#[derive(Default)]
struct Queue {
    flows: Vec<LoginFlow>,
    joining: usize,
}

type Waiting = Arc<Mutex<Queue>>;

/// The ports this process listens on for logins, and who waits there.
static LISTENING: Mutex<Option<HashMap<u16, (SocketAddr, Waiting)>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A started login and, for an authorization-code login, where its callback listener listens (`None` when it
/// could not listen: then the code must be pasted).
pub struct StartedLogin {
    pub flow: LoginFlow,
    pub callback: Option<SocketAddr>,
}

/// Where the login will listen: a listener of this process already on the port, or a new one bound now.
enum Listen {
    Joined(SocketAddr, Waiting),
    Bound(TcpListener, SocketAddr),
    Not,
}

async fn listen(port: u16) -> Listen {
    if port != 0
        && let Some((addr, waiting)) = lock(&LISTENING).get_or_insert_default().get(&port)
    {
        lock(waiting).joining += 1;
        return Listen::Joined(*addr, waiting.clone());
    }
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await.and_then(|l| Ok((l.local_addr()?, l))) {
        Ok((addr, l)) => Listen::Bound(l, addr),
        Err(e) => {
            tracing::warn!(
                port,
                "cannot listen for the login's callback on 127.0.0.1:{port} ({e}); the code can be pasted instead"
            );
            Listen::Not
        }
    }
}

/// Starts a login with `provider`. Authorization-code logins first make sure something listens on their
/// callback port on 127.0.0.1 (`callback_port` in `options`, 0 for any free port; the provider's default
/// otherwise) and name the port really used in the redirect URI; `listen: false` skips that (a remote user
/// pastes the code instead).
pub async fn start_login(
    client: &Client,
    provider: &str,
    mut options: Value,
    listen_for_it: bool,
) -> Result<StartedLogin, Error> {
    let port = if listen_for_it { client.login_callback_port(provider, &options) } else { None };
    let how = match port {
        Some(port) => listen(port).await,
        None => Listen::Not,
    };
    let addr = match &how {
        Listen::Joined(addr, _) | Listen::Bound(_, addr) => Some(*addr),
        Listen::Not => None,
    };
    if let (Some(addr), Some(o)) = (addr, options.as_object_mut()) {
        o.insert("callback_port".into(), addr.port().into());
    }
    let flow = client.login(provider, options).await;
    if let Listen::Joined(_, waiting) = &how {
        let mut queue = lock(waiting);
        queue.joining -= 1;
        if let Ok(flow) = &flow {
            queue.flows.push(flow.clone());
        }
    }
    let flow = flow?;
    match how {
        Listen::Joined(..) | Listen::Not => {}
        Listen::Bound(listener, addr) => {
            let waiting: Waiting = Arc::new(Mutex::new(Queue { flows: vec![flow.clone()], joining: 0 }));
            lock(&LISTENING).get_or_insert_default().insert(addr.port(), (addr, waiting.clone()));
            tokio::spawn(serve(listener, addr.port(), waiting));
        }
    }
    Ok(StartedLogin { flow, callback: addr })
}

fn pending(waiting: &Waiting) -> Vec<LoginFlow> {
    lock(waiting).flows.iter().filter(|f| f.status() == LoginStatus::Pending).cloned().collect()
}

/// Serves `/callback` until no login waits on the port any more (a little longer, so the page that brought
/// the last code gets its answer). Logins end on their own at their expiry, so this ends too.
async fn serve(listener: TcpListener, port: u16, waiting: Waiting) {
    let app = Router::new().route("/callback", get(callback)).with_state(waiting.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(async move { drop(stopped.await) }).await;
    });
    loop {
        let flows = pending(&waiting);
        if flows.is_empty() {
            // Decided under the registry's lock (which joining takes too), so no login is left without a
            // listener; one still being started keeps it.
            let mut ports = lock(&LISTENING);
            if lock(&waiting).joining == 0 && pending(&waiting).is_empty() {
                if let Some(map) = ports.as_mut() {
                    map.remove(&port);
                }
                break;
            }
            drop(ports);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let _ = futures::future::select_all(flows.iter().map(|f| Box::pin(f.wait()))).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(());
    if tokio::time::timeout(Duration::from_secs(5), server).await.is_err() {
        tracing::debug!(port, "login callback listener closed with connections still open");
    }
}

async fn callback(State(waiting): State<Waiting>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let mut refused = None;
    for flow in pending(&waiting) {
        match flow.complete(&query) {
            Ok(()) => return finished(&flow).await,
            Err(e) => refused = Some(e),
        }
    }
    let message = refused.map_or_else(|| "No login is waiting for this code.".to_owned(), |e| e.message().to_owned());
    page(StatusCode::BAD_REQUEST, "Login not completed", &message)
}

/// The page once the code reached its login: how the login ended, as far as it did within [`EXCHANGE_WAIT`].
async fn finished(flow: &LoginFlow) -> Response {
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
