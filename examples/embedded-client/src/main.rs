//! `embedded-client [CONFIG.yaml] MODEL PROMPT…` — with no config file, `OPENAI_API_KEY` / `ANTHROPIC_API_KEY`
//! become credentials, as for the server.

use cliproxy_core::Client;
use cliproxy_core::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let loaded = if args.first().is_some_and(|a| a.ends_with(".yaml") || a.ends_with(".yml")) {
        Config::from_file(std::path::Path::new(&args.remove(0)))
    } else {
        Config::from_yaml("")
    };
    let mut config = match loaded {
        Ok(l) => l.config,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    config.apply_env_fallback(|n| std::env::var(n).ok());
    if args.len() < 2 {
        eprintln!("usage: embedded-client [config.yaml] MODEL PROMPT...");
        return std::process::ExitCode::from(2);
    }
    let model = args.remove(0);
    let prompt = args.join(" ");
    let result = async {
        let client = Client::new(config)?;
        embedded_client::stream_answer(&client, &model, &prompt, &mut std::io::stdout()).await
    }
    .await;
    println!();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
