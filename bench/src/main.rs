//! `cliproxy-bench [--requests N] [--target-dir DIR]`: starts the release `cliproxy-mock` and `cliproxy-server`
//! binaries and measures, in one run, the direct-to-mock ceiling and the same requests through the server:
//! added latency (p50/p99) for an OpenAI chat passthrough, added time-to-first-token for a stream, server CPU
//! per request (from /proc), idle RSS, and start-to-first-answer. Results go to stdout and
//! `bench/results/server-<unix time>.json` under the current directory. It reports; it does not assert (timing is not a test).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

const KEY: &str = "bench-client-key";

struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(bin: &str, args: &[&str]) -> (Proc, Duration) {
    let started = Instant::now();
    let mut child = Command::new(bin).args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect(bin);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{bin}: {line:?}")).to_string();
    (Proc { child, url }, started.elapsed())
}

/// utime + stime of a process, from /proc/<pid>/stat, in microseconds.
fn cpu_micros(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks * 1_000_000 / 100 // USER_HZ is 100 on Linux
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Timing {
    p50: Duration,
    p99: Duration,
}

async fn chat_latency(http: &reqwest::Client, url: &str, key: &str, n: usize, stream: bool) -> Timing {
    let body = json!({"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": "Say hi"}]});
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let started = Instant::now();
        let mut r = http.post(url).bearer_auth(key).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        // For streams: time to the first body chunk (the first token); for JSON: the whole answer.
        let elapsed = if stream {
            let _ = r.chunk().await.unwrap();
            let t = started.elapsed();
            while r.chunk().await.unwrap().is_some() {}
            t
        } else {
            let _ = r.bytes().await.unwrap();
            started.elapsed()
        };
        if i >= n / 10 {
            samples.push(elapsed); // the first tenth warms connections and caches
        }
    }
    samples.sort();
    Timing { p50: percentile(&samples, 0.5), p99: percentile(&samples, 0.99) }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let n: usize = arg("--requests").and_then(|v| v.parse().ok()).unwrap_or(2000);
    // The server and mock binaries sit next to this one (all three come from one `cargo build --release`).
    let bin_dir = match arg("--target-dir") {
        Some(t) => std::path::PathBuf::from(t).join("release"),
        None => std::env::current_exe().unwrap().parent().unwrap().to_path_buf(),
    };
    let bin = |name: &str| bin_dir.join(name).to_string_lossy().into_owned();

    let (mock, _) = spawn(&bin("cliproxy-mock"), &["--port", "0"]);
    let dir = std::env::temp_dir().join(format!("cliproxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "port: 0\napi-keys: [{KEY}]\nopenai-compatibility: [{{name: m, base-url: \"{}/v1\", api-key-entries: [{{api-key: sk-bench}}], models: [{{name: gpt-4o}}]}}]\n",
            mock.url
        ),
    )
    .unwrap();
    let (server, startup) = spawn(&bin("cliproxy-server"), &["--config", config.to_str().unwrap()]);
    let http = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
    let first_answer_started = Instant::now();
    let r = http.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert!(r.status().is_success());
    let start_to_first_answer = startup + first_answer_started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = server.child.id();
    let idle_rss = rss_kib(pid);

    let direct_url = format!("{}/v1/chat/completions", mock.url);
    let proxy_url = format!("{}/v1/chat/completions", server.url);
    let direct = chat_latency(&http, &direct_url, "sk-bench", n, false).await;
    let cpu_before = cpu_micros(pid);
    let proxied = chat_latency(&http, &proxy_url, KEY, n, false).await;
    let cpu_per_request = (cpu_micros(pid) - cpu_before) as f64 / (n + n / 10) as f64;
    let direct_stream = chat_latency(&http, &direct_url, "sk-bench", n / 2, true).await;
    let proxied_stream = chat_latency(&http, &proxy_url, KEY, n / 2, true).await;
    let loaded_rss = rss_kib(pid);

    let result = json!({
        "when_unix": SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
        "machine": machine(),
        "requests": n,
        "chat_passthrough_us": {
            "direct_p50": micros(direct.p50), "proxied_p50": micros(proxied.p50),
            "added_p50": micros(proxied.p50.saturating_sub(direct.p50)),
            "direct_p99": micros(direct.p99), "proxied_p99": micros(proxied.p99),
        },
        "stream_first_token_us": {
            "direct_p50": micros(direct_stream.p50), "proxied_p50": micros(proxied_stream.p50),
            "added_p50": micros(proxied_stream.p50.saturating_sub(direct_stream.p50)),
        },
        "server_cpu_us_per_request": cpu_per_request,
        "idle_rss_kib": idle_rss,
        "rss_after_load_kib": loaded_rss,
        "start_to_first_answer_ms": start_to_first_answer.as_secs_f64() * 1e3,
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    let out = std::path::Path::new("bench/results");
    std::fs::create_dir_all(out).unwrap();
    let file = out.join(format!("server-{}.json", result["when_unix"]));
    std::fs::write(&file, serde_json::to_vec_pretty(&result).unwrap()).unwrap();
    eprintln!("written to {}", file.display());
    let _ = std::fs::remove_dir_all(&dir);
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines().find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
    });
    json!({"cpu": cpu, "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)})
}
