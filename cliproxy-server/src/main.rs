//! `cliproxy-server`: serve, log in to providers, import credentials, validate a config, health-check.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cliproxy_core::config::{Config, Secret};

#[derive(Parser)]
#[command(
    name = "cliproxy-server",
    version,
    about = "One OpenAI- and Anthropic-compatible endpoint for all your LLM subscriptions and keys"
)]
struct Cli {
    /// Config file (YAML, the Go original's keys). Default: $CLIPROXY_CONFIG, else ./config.yaml if present.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Log in to a provider and store the credential in auth-dir.
    Login {
        provider: String,
        /// Kiro: log in through IAM Identity Center instead of AWS Builder ID.
        #[arg(long)]
        idc: bool,
        /// Kiro Identity Center: your start URL (https://<org>.awsapps.com/start).
        #[arg(long)]
        start_url: Option<String>,
        /// Kiro Identity Center: the region of your start URL.
        #[arg(long)]
        region: Option<String>,
        /// Claude: open no browser and listen for none; paste the code the sign-in page shows (`code#state`,
        /// or the whole address it sent the browser to) here instead. For remote machines.
        #[arg(long)]
        no_browser: bool,
        /// Claude: the local port the browser comes back to after signing in (0: any free port).
        #[arg(long, default_value_t = 54545)]
        callback_port: u16,
    },
    /// Import credentials from another tool (e.g. an IDE's session).
    Import { source: String },
    /// Parse the config, print warnings and the credentials it yields, and exit.
    CheckConfig,
    /// Exit 0 when the local server answers /healthz (for container health checks).
    Healthcheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match load_config(cli.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(loaded.config.debug);
    tracing::info!("configuration: {}", loaded.source);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    for n in &loaded.notes {
        tracing::info!("{n}");
    }
    let config = loaded.config;
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::CheckConfig => check_config(config),
            Command::Healthcheck => healthcheck(&config).await,
            Command::Login { provider, idc, start_url, region, no_browser, callback_port } => {
                let options = serde_json::json!({"idc": idc, "start_url": start_url, "region": region,
                    "callback_port": callback_port});
                login(config, &provider, options, !no_browser).await
            }
            Command::Import { source } => import(config, &source),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--config`, else `$CLIPROXY_CONFIG`, else `./config.yaml` if present, else built-in defaults; then the
/// environment: `CLIPROXY_API_KEY` adds a client key, provider keys fill in when nothing is configured.
fn load_config(flag: Option<&std::path::Path>) -> Result<Loaded, String> {
    let path = flag
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CLIPROXY_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from))
        .or_else(|| {
            let p = PathBuf::from("config.yaml");
            p.exists().then_some(p)
        });
    let parsed = match &path {
        Some(p) => Config::from_file(p).map_err(|e| e.to_string())?,
        None => Config::from_yaml("").map_err(|e| e.to_string())?,
    };
    let mut loaded =
        Loaded { config: parsed.config, warnings: parsed.warnings, notes: Vec::new(), source: String::new() };
    loaded.source = path.as_ref().map_or("built-in defaults".to_string(), |p| p.display().to_string());
    if let Some(k) = std::env::var("CLIPROXY_API_KEY").ok().filter(|k| !k.is_empty()) {
        loaded.config.api_keys.push(Secret::new(k));
    }
    loaded.notes = loaded.config.apply_env_fallback(|n| std::env::var(n).ok());
    Ok(loaded)
}

struct Loaded {
    config: Config,
    warnings: Vec<String>,
    /// What the environment contributed (logged at info level).
    notes: Vec<String>,
    source: String,
}

fn init_logging(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: escape sequences have no place in a log file or a collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

async fn serve(config: Config) -> Result<(), String> {
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let handle = cliproxy_server::serve(config, listener).await.map_err(|e| e.to_string())?;
    let local = handle.local_addr();
    let creds = handle.client().credentials();
    tracing::info!(
        credentials = creds.len(),
        "serving {} credential(s): {}",
        creds.len(),
        creds.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", ")
    );
    let stop = shutdown_signal();
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{local}");
        let _ = out.flush();
    }
    stop.await;
    tracing::info!("shutting down: draining open requests for up to {} s", cliproxy_server::DRAIN.as_secs());
    handle.shutdown(cliproxy_server::DRAIN).await;
    Ok(())
}

/// Registers for SIGTERM at once, so a stop that arrives right after "listening on" is printed drains like any
/// other instead of killing the process, and returns the future that resolves on SIGTERM or Ctrl-C.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
}

/// Runs a login: prints where to go (and the code, for a device login; opens the browser for an
/// authorization-code login unless `interactive` is off), takes a pasted code from stdin where the login wants
/// one, shows progress, and reports the stored account.
async fn login(config: Config, provider: &str, options: serde_json::Value, interactive: bool) -> Result<(), String> {
    let client = cliproxy_core::Client::new(config).map_err(|e| e.to_string())?;
    let started = cliproxy_server::callback::start_login(&client, provider, options, interactive)
        .await
        .map_err(|e| e.to_string())?;
    let flow = started.flow;
    let mut pasted = None;
    match &flow.redirect_uri {
        None => {
            println!(
                "To sign in to {provider}, open:\n\n    {}\n",
                flow.verification_uri_complete.as_deref().unwrap_or(&flow.verification_uri)
            );
            println!("and enter the code:  {}\n", flow.user_code);
            println!("Waiting for approval (the code expires in {} s)…", flow.expires_in);
        }
        Some(redirect) => {
            println!("To sign in to {provider}, open:\n\n    {}\n", flow.verification_uri);
            if let Some(addr) = started.callback {
                if open_browser(&flow.verification_uri) {
                    println!("(A browser window was opened.)");
                }
                println!(
                    "After you approve, the browser comes back to {redirect}, where this command listens ({addr})."
                );
                println!("If it cannot reach this machine, paste the code the page shows (code#state) here:");
            } else {
                println!("After you approve, the browser is sent to {redirect}?code=…; it may fail to load there.");
                println!("Paste the code the page shows (code#state), or that whole address, here:");
            }
            pasted = Some(stdin_lines());
        }
    }
    let _ = std::io::stdout().flush();
    let wait = flow.wait();
    tokio::pin!(wait);
    let started_at = std::time::Instant::now();
    loop {
        let line = async {
            match pasted.as_mut() {
                Some(lines) => lines.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = &mut wait => {
                let id = r.map_err(|e| e.to_string())?;
                println!("\nLogged in: credential {id} is stored in the auth-dir and ready to use.");
                return Ok(());
            }
            line = line => match line {
                Some(text) if text.trim().is_empty() => {}
                Some(text) => match flow.complete(&text) {
                    Ok(()) => println!("Code received; finishing the login…"),
                    Err(e) => println!("{}; try again:", e.message()),
                },
                // Without a terminal nothing more can come; a listener may still bring the code.
                None if started.callback.is_some() => pasted = None,
                None => return Err("no code was given on standard input".into()),
            },
            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {
                print!("\r  still waiting… {} s", started_at.elapsed().as_secs());
            }
        }
        let _ = std::io::stdout().flush();
    }
}

/// Lines of standard input, read on a thread of their own (reading blocks).
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Opens `url` in the user's browser where one exists: `$BROWSER`, else the desktop's opener (never on a Linux
/// machine without a display, where there is nothing to show it). Returns whether a browser was started.
fn open_browser(url: &str) -> bool {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let opener = match env("BROWSER") {
        Some(b) => b,
        None if cfg!(target_os = "macos") => "open".to_owned(),
        None if cfg!(windows) => "explorer".to_owned(),
        None if env("DISPLAY").is_some() || env("WAYLAND_DISPLAY").is_some() => "xdg-open".to_owned(),
        None => return false,
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

fn import(config: Config, source: &str) -> Result<(), String> {
    let client = cliproxy_core::Client::builder(config)
        .runtime(std::sync::Arc::new(cliproxy_core::transport::TokioRuntime::current()))
        .build()
        .map_err(|e| e.to_string())?;
    let written = client.import(source).map_err(|e| e.to_string())?;
    for p in &written {
        println!("imported {}", p.display());
    }
    Ok(())
}

fn check_config(config: Config) -> Result<(), String> {
    let rt_client = cliproxy_core::Client::new(config).map_err(|e| e.to_string())?;
    println!("config OK");
    for c in rt_client.credentials() {
        println!("credential {} ({}), priority {}, {}", c.id, c.provider, c.priority, c.state.as_str());
    }
    for m in rt_client.models() {
        println!("model {} via {}", m.id, m.providers.join(", "));
    }
    Ok(())
}

/// A plain HTTP/1.1 GET of /healthz on the configured port (the wildcard host maps to loopback).
async fn healthcheck(config: &Config) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = match config.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "::1",
        h => h,
    };
    let addr = if host.contains(':') { format!("[{host}]:{}", config.port) } else { format!("{host}:{}", config.port) };
    let check = async {
        let mut s =
            tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let head = String::from_utf8_lossy(&buf);
        if head.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(format!("unhealthy: {}", head.lines().next().unwrap_or("")))
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), check).await.map_err(|_| "timed out".to_string())?
}
