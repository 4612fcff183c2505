//! `cliproxy-mock [--port N] [--host ADDR] [--codex-base PATH]`: the mock upstream as a process, for tests
//! and benchmarks written in other languages. The first stdout line is `listening on URL`, so a
//! parent can start it on port 0 and read where it landed. Every provider is served on its paths (see the
//! library docs); tests script accounts through `/__mock/accounts/…`.

use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;

use cliproxy_mock::{MockServer, Options};

const USAGE: &str = "usage: cliproxy-mock [--port N] [--host ADDR] [--codex-base PATH]";

struct Args {
    host: IpAddr,
    port: u16,
    options: Options,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args { host: IpAddr::from([127, 0, 0, 1]), port: 0, options: Options::default() };
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        if name == "--help" || name == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = inline.or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?;
        match name.as_str() {
            "--port" => {
                parsed.port = value.parse().map_err(|_| format!("bad port {value:?}\n{USAGE}"))?;
            }
            "--host" => {
                parsed.host = value.parse().map_err(|_| format!("bad host {value:?}\n{USAGE}"))?;
            }
            "--codex-base" => {
                if !value.starts_with('/') || value.ends_with('/') || value.contains(['{', '}']) {
                    return Err(format!("bad codex base {value:?}: a path like /backend-api/codex\n{USAGE}"));
                }
                parsed.options.codex_base = value;
            }
            _ => return Err(format!("unknown argument {name:?}\n{USAGE}")),
        }
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind((args.host, args.port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {}:{}: {error}", args.host, args.port);
            return ExitCode::FAILURE;
        }
    };
    let server = MockServer::start_with(listener, args.options).await;
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "listening on {}", server.url()).and_then(|()| stdout.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    match tokio::signal::ctrl_c().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => {
            // No signal handling available: serve until killed.
            std::future::pending::<()>().await;
            ExitCode::SUCCESS
        }
    }
}
