#!/usr/bin/env python3
"""Per-call overhead of the in-process `cliproxy.Client` over talking to the upstream directly.

Every contender sends the same OpenAI Chat Completions request to the same mock upstream (`cliproxy-mock`) over
keep-alive connections, one call at a time:

- `httpx`: a raw `httpx.Client` POST, the floor for any Python caller;
- `cliproxy`: `cliproxy.Client.chat()` (routing, credential pick, passthrough, JSON in and out);
- `litellm`: `litellm.completion()` when LiteLLM is importable (it is not installed by this project).

Whole answers and streamed answers are timed separately. The difference of the medians to `httpx` is the
per-call overhead (negative when the contender beats a pure-Python HTTP client). Results, with the machine's
details, go to bench/results/python-client.json.

    target/pyenv/bin/python bench/python/bench_client.py [--calls 2000] [--out PATH]

Build the extension in release mode first for meaningful numbers (`maturin develop --release` in
bindings-python); the result records which build was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
REPLY = "The quick brown fox jumps over the lazy dog. 素早い茶色の狐。"
MODEL = "gpt-4o"
KEY = "sk-bench-1"


def start_mock() -> tuple:
    for profile in ("release", "debug"):
        path = os.path.join(TARGET, profile, "cliproxy-mock")
        if os.path.exists(path):
            break
    else:
        sys.exit("cliproxy-mock is not built: run `cargo build --release -p cliproxy-mock`")
    proc = subprocess.Popen([path, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        sys.exit(f"cliproxy-mock said {line!r}")
    return proc, line[len("listening on "):], profile


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(call: Callable[[], object], calls: int, warmup: int) -> Dict[str, float]:
    for _ in range(warmup):
        call()
    samples: List[float] = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
    samples.sort()
    stats = {
        "median_us": statistics.median(samples),
        "mean_us": statistics.fmean(samples),
        "p90_us": samples[int(0.90 * (calls - 1))],
        "p99_us": samples[int(0.99 * (calls - 1))],
        "min_us": samples[0],
    }
    return {"calls": calls, **{k: round(v, 1) for k, v in stats.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "python-client.json"))
    args = parser.parse_args()

    import httpx

    import cliproxy
    from cliproxy import _native

    proc, mock_url, mock_profile = start_mock()
    results: Dict[str, Dict[str, Dict[str, float]]] = {"whole": {}, "stream": {}}
    try:
        content = "mock:" + json.dumps({"reply": REPLY}, ensure_ascii=False)
        messages = [{"role": "user", "content": content}]
        body = {"model": MODEL, "messages": messages}
        stream_body = dict(body, stream=True)

        raw = httpx.Client(base_url=mock_url + "/v1", headers={"authorization": f"Bearer {KEY}"}, timeout=30)

        def httpx_whole() -> object:
            r = raw.post("/chat/completions", json=body)
            r.raise_for_status()
            return r.json()

        def httpx_stream() -> object:
            chunks = []
            with raw.stream("POST", "/chat/completions", json=stream_body) as r:
                for line in r.iter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        chunks.append(json.loads(line[6:]))
            return chunks

        with tempfile.TemporaryDirectory() as auth_dir:
            client = cliproxy.Client({
                "auth-dir": auth_dir,
                "openai-compatibility": [{"name": "mock", "base-url": mock_url + "/v1",
                                          "api-key-entries": [{"api-key": KEY}], "models": [{"name": MODEL}]}],
            })

            def cliproxy_whole() -> object:
                return client.chat(model=MODEL, messages=messages)

            def cliproxy_stream() -> object:
                return list(client.chat(model=MODEL, messages=messages, stream=True))

            contenders = [("httpx", httpx_whole, httpx_stream), ("cliproxy", cliproxy_whole, cliproxy_stream)]
            litellm_version: Optional[str] = None
            try:
                import litellm  # type: ignore[import-not-found]

                litellm_version = getattr(litellm, "__version__", None) or "unknown"

                def litellm_whole() -> object:
                    return litellm.completion(model="openai/" + MODEL, api_base=mock_url + "/v1", api_key=KEY,
                                              messages=messages)

                def litellm_stream() -> object:
                    return list(litellm.completion(model="openai/" + MODEL, api_base=mock_url + "/v1", api_key=KEY,
                                                   messages=messages, stream=True))

                contenders.append(("litellm", litellm_whole, litellm_stream))
            except ImportError:
                pass

            for name, whole, stream in contenders:
                results["whole"][name] = measure(whole, args.calls, args.warmup)
                results["stream"][name] = measure(stream, args.calls, args.warmup)
                print(f"{name:>9}: whole median {results['whole'][name]['median_us']:8.1f} us, "
                      f"stream median {results['stream'][name]['median_us']:8.1f} us", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)

    overhead = {
        kind: {name: round(r["median_us"] - results[kind]["httpx"]["median_us"], 1)
               for name, r in results[kind].items() if name != "httpx"}
        for kind in results
    }
    report = {
        "benchmark": "python-client",
        "what": "median per-call time of one OpenAI chat request to cliproxy-mock, sequential, keep-alive",
        "results_us": results,
        "difference_vs_httpx_median_us": overhead,
        "litellm": litellm_version,
        "cliproxy_version": cliproxy.__version__,
        "extension_build": "debug" if _native.DEBUG_BUILD else "release",
        "mock_build": mock_profile,
        "machine": {
            "cpu_model": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "httpx": httpx.__version__,
        },
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"median minus httpx median (us; negative: faster than raw httpx): {json.dumps(overhead)}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
