//! Streams one chat completion through an in-process [`Client`]: the same routing, failover, cooldowns and
//! translation as the server, without HTTP in between.

use std::io::Write;

use cliproxy_core::{Client, Error, Reply};
use futures::StreamExt;
use serde_json::{Value, json};

/// Sends `prompt` to `model` and writes the streamed answer text to `out` as it arrives.
pub async fn stream_answer(client: &Client, model: &str, prompt: &str, out: &mut impl Write) -> Result<(), Error> {
    let body = json!({"model": model, "stream": true, "messages": [{"role": "user", "content": prompt}]});
    let Reply::Stream(mut events) = client.chat(serde_json::to_vec(&body).expect("json")).await? else {
        return Err(Error::upstream(None, "expected a stream"));
    };
    while let Some(event) = events.next().await {
        let event = event?;
        if event.data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(&event.data).map_err(|e| Error::upstream(None, e.to_string()))?;
        if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
    Ok(())
}
