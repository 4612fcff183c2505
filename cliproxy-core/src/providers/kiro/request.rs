//! IR → Kiro's `conversationState` body.
//!
//! Kiro rejects what the Anthropic API tolerates, so the encoder normalises (rules from the wire reference):
//! - history alternates user / assistant and starts with a user turn; adjacent same-role messages are merged,
//!   their tool calls and tool results kept (the Go original once dropped them when merging);
//! - the last turn is the `currentMessage` and is a user turn (an assistant prefill gets a `Continue` turn);
//! - the system prompt is folded into the first user message;
//! - `content` is never empty (`Tool results provided.` / `Continue` / `.`);
//! - tool-use ids are unique across the history (repeats are dropped);
//! - tools become `toolSpecification`s with names of at most 64 characters and descriptions cut at a
//!   character boundary under [`MAX_TOOL_DESCRIPTION`] bytes; null schema fields (`required: null`, which
//!   Kiro answers with "Improperly formed request") are removed;
//! - thinking is requested with `<thinking_mode>` / `<max_thinking_length>` tags in the current message.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::models;
use crate::logtext::Clean;
use crate::types::{ChatRequest, ContentPart, ImageSource, Role};

/// Tool descriptions are cut below this many bytes (the Go original's `KiroMaxToolDescLen`).
pub const MAX_TOOL_DESCRIPTION: usize = 10_237;
/// Kiro's limit on tool names.
pub const MAX_TOOL_NAME: usize = 64;
/// The thinking length when the client asked for thinking without a budget (and for `medium` effort).
pub const DEFAULT_THINKING_LENGTH: u32 = 16_000;

/// The instruction the `-agentic` model variants add: Kiro truncates very long tool inputs, so large files
/// must be written in pieces.
pub const AGENTIC_INSTRUCTION: &str = "When you write or edit a file with a tool, write at most 350 lines per \
tool call; split longer content into several calls that append to the file.";

/// Everything the body needs besides the IR.
pub struct Encoding<'a> {
    pub profile_arn: Option<&'a str>,
    pub conversation_id: String,
}

/// One merged turn before it becomes JSON.
#[derive(Default)]
struct Turn {
    role: Role,
    text: Vec<String>,
    images: Vec<Value>,
    tool_uses: Vec<Value>,
    tool_results: Vec<Value>,
}

/// The Kiro tool name for a client tool name: unchanged when short enough, else a prefix plus a hash so that
/// two long names stay distinct. The response decoder maps it back.
pub fn kiro_tool_name(name: &str) -> String {
    if name.chars().count() <= MAX_TOOL_NAME {
        return name.to_owned();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let head: String = name.chars().take(MAX_TOOL_NAME - 9).collect();
    format!("{head}_{hash}")
}

/// `text` cut at a character boundary to at most `max` bytes.
pub fn cut_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The thinking length for the client's reasoning settings, if thinking was asked for.
pub fn thinking_length(req: &ChatRequest) -> Option<u32> {
    let r = req.reasoning.as_ref()?;
    if let Some(b) = r.budget_tokens {
        return Some(b.clamp(1024, 32_000));
    }
    match r.effort.as_deref() {
        Some("none") => None,
        Some("minimal") | Some("low") => Some(4_000),
        Some("high") | Some("xhigh") | Some("max") => Some(32_000),
        Some(_) => Some(DEFAULT_THINKING_LENGTH),
        None if r.adaptive => Some(DEFAULT_THINKING_LENGTH),
        None => None,
    }
}

fn image_json(source: &ImageSource) -> Option<Value> {
    match source {
        ImageSource::Base64 { media_type, data } => {
            let format = media_type.rsplit('/').next().unwrap_or("png");
            let format = if format == "jpg" { "jpeg" } else { format };
            Some(json!({"format": format, "source": {"bytes": data}}))
        }
        ImageSource::Url { url } => {
            tracing::warn!(url = %Clean(url), "Kiro takes only inline images; leaving out an image given by URL");
            None
        }
    }
}

fn text_of(parts: &[ContentPart]) -> String {
    let texts: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    texts.join("\n")
}

/// Removes null members from a JSON schema, recursively.
fn clean_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), clean_schema(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

fn turns(req: &ChatRequest) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::new();
    let mut seen_tool_ids = HashSet::new();
    for m in &req.messages {
        let mut t = Turn { role: m.role, ..Turn::default() };
        for p in &m.content {
            match p {
                ContentPart::Text { text, .. } if !text.is_empty() => t.text.push(text.clone()),
                ContentPart::Image { source, .. } if m.role == Role::User => t.images.extend(image_json(source)),
                // A repeated tool-use id is dropped: Kiro rejects the whole request for it.
                ContentPart::ToolUse { id, name, input, .. }
                    if m.role == Role::Assistant && seen_tool_ids.insert(id.clone()) =>
                {
                    let input = if input.is_object() { input.clone() } else { json!({}) };
                    t.tool_uses.push(json!({"toolUseId": id, "name": kiro_tool_name(name), "input": input}));
                }
                ContentPart::ToolResult { tool_use_id, content, is_error, .. } => {
                    let text = text_of(content);
                    let text = if text.is_empty() { "(no output)".to_owned() } else { text };
                    t.tool_results.push(json!({
                        "toolUseId": tool_use_id,
                        "content": [{"text": text}],
                        "status": if *is_error { "error" } else { "success" },
                    }));
                }
                _ => {}
            }
        }
        match out.last_mut() {
            Some(last) if last.role == t.role => {
                last.text.append(&mut t.text);
                last.images.append(&mut t.images);
                last.tool_uses.append(&mut t.tool_uses);
                last.tool_results.append(&mut t.tool_results);
            }
            _ => out.push(t),
        }
    }
    if out.first().is_none_or(|t| t.role != Role::User) {
        out.insert(0, Turn { role: Role::User, text: vec!["Continue".into()], ..Turn::default() });
    }
    if out.last().is_some_and(|t| t.role == Role::Assistant) {
        out.push(Turn { role: Role::User, text: vec!["Continue".into()], ..Turn::default() });
    }
    out
}

fn content_of(t: &Turn) -> String {
    let text = t.text.join("\n\n");
    if !text.trim().is_empty() {
        return text;
    }
    match t.role {
        Role::User if !t.tool_results.is_empty() => "Tool results provided.".into(),
        Role::User => "Continue".into(),
        Role::Assistant => ".".into(),
    }
}

fn user_message(t: &Turn, content: String, model_id: &str, tools: Option<&[Value]>) -> Value {
    let mut m = Map::new();
    m.insert("content".into(), content.into());
    m.insert("modelId".into(), model_id.into());
    m.insert("origin".into(), "AI_EDITOR".into());
    if !t.images.is_empty() {
        m.insert("images".into(), Value::Array(t.images.clone()));
    }
    let mut ctx = Map::new();
    if let Some(tools) = tools.filter(|t| !t.is_empty()) {
        ctx.insert("tools".into(), Value::Array(tools.to_vec()));
    }
    if !t.tool_results.is_empty() {
        ctx.insert("toolResults".into(), Value::Array(t.tool_results.clone()));
    }
    if !ctx.is_empty() {
        m.insert("userInputMessageContext".into(), Value::Object(ctx));
    }
    json!({"userInputMessage": m})
}

fn tools_json(req: &ChatRequest) -> Vec<Value> {
    // Kiro has no tool choice: a client that forbade tool calls gets none offered.
    if req.tool_choice == Some(crate::types::ToolChoice::None) {
        return Vec::new();
    }
    req.tools
        .iter()
        .map(|t| {
            let description = t.description.as_deref().filter(|d| !d.trim().is_empty()).unwrap_or(&t.name);
            let schema = if t.parameters.is_object() { clean_schema(&t.parameters) } else { json!({"type": "object"}) };
            json!({"toolSpecification": {
                "name": kiro_tool_name(&t.name),
                "description": cut_at_char(description, MAX_TOOL_DESCRIPTION),
                "inputSchema": {"json": schema},
            }})
        })
        .collect()
}

/// The request body for `generateAssistantResponse`.
pub fn encode(req: &ChatRequest, enc: &Encoding<'_>) -> Value {
    let (model_id, agentic) = models::split_agentic(&req.model);
    let mut turns = turns(req);
    let mut system = text_of(&req.system);
    if agentic {
        system = if system.is_empty() {
            AGENTIC_INSTRUCTION.to_owned()
        } else {
            format!("{system}\n\n{AGENTIC_INSTRUCTION}")
        };
    }
    if !system.trim().is_empty() {
        let first = &mut turns[0];
        first.text.insert(0, system);
    }
    let current = turns.pop().expect("turns always hold a user turn");
    let mut history = Vec::with_capacity(turns.len());
    for t in &turns {
        let content = content_of(t);
        match t.role {
            Role::User => history.push(user_message(t, content, model_id, None)),
            Role::Assistant => {
                let mut m = Map::new();
                m.insert("content".into(), content.into());
                if !t.tool_uses.is_empty() {
                    m.insert("toolUses".into(), Value::Array(t.tool_uses.clone()));
                }
                history.push(json!({"assistantResponseMessage": m}));
            }
        }
    }
    let mut content = content_of(&current);
    if let Some(len) = thinking_length(req) {
        content.push_str(&format!(
            "\n<thinking_mode>enabled</thinking_mode><max_thinking_length>{len}</max_thinking_length>"
        ));
    }
    let tools = tools_json(req);
    let mut state = Map::new();
    state.insert("agentTaskType".into(), "vibe".into());
    state.insert("chatTriggerType".into(), "MANUAL".into());
    state.insert("conversationId".into(), enc.conversation_id.clone().into());
    state.insert("currentMessage".into(), user_message(&current, content, model_id, Some(&tools)));
    if !history.is_empty() {
        state.insert("history".into(), Value::Array(history));
    }
    let mut body = Map::new();
    body.insert("conversationState".into(), Value::Object(state));
    if let Some(arn) = enc.profile_arn.filter(|a| !a.is_empty()) {
        body.insert("profileArn".into(), arn.into());
    }
    let mut inference = Map::new();
    if let Some(m) = req.max_tokens {
        inference.insert("maxTokens".into(), m.into());
    }
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        inference.insert("topP".into(), p.into());
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::Dialect;

    fn enc() -> Encoding<'static> {
        Encoding { profile_arn: None, conversation_id: "conv-1".into() }
    }

    fn from_openai(body: Value) -> ChatRequest {
        let mut r = Dialect::OpenAiChat.parse_request(body.to_string().as_bytes()).unwrap();
        r.model = "claude-sonnet-4.5".into();
        r
    }

    fn from_anthropic(body: Value) -> ChatRequest {
        let mut r = Dialect::Anthropic.parse_request(body.to_string().as_bytes()).unwrap();
        r.model = "claude-sonnet-4.5".into();
        r
    }

    /// OpenAI tool-call round trip: system folded into the first user turn, adjacent user turns merged, the
    /// tool result in the current message's context, tools as specifications.
    #[test]
    fn golden_openai_tool_round_trip() {
        let req = from_openai(json!({
            "model": "kiro-claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather?"},
                {"role": "user", "content": "In Paris."},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "22C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": null}}}]
        }));
        let body = encode(&req, &enc());
        assert_eq!(
            body,
            json!({"conversationState": {
            "agentTaskType": "vibe", "chatTriggerType": "MANUAL", "conversationId": "conv-1",
            "currentMessage": {"userInputMessage": {
                "content": "Tool results provided.", "modelId": "claude-sonnet-4.5", "origin": "AI_EDITOR",
                "userInputMessageContext": {
                    "tools": [{"toolSpecification": {"name": "get_weather", "description": "Weather by city",
                        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
                    "toolResults": [{"toolUseId": "tooluse_1", "content": [{"text": "22C"}], "status": "success"}]}}},
            "history": [
                {"userInputMessage": {"content": "Be brief.\n\nWeather?\n\nIn Paris.", "modelId": "claude-sonnet-4.5", "origin": "AI_EDITOR"}},
                {"assistantResponseMessage": {"content": ".", "toolUses": [
                    {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}]}}
            ]}})
        );
    }

    /// Anthropic: an assistant prefill gets a `Continue` turn, thinking budget becomes the length tag, a
    /// repeated tool-use id is dropped, images are inline, the profile ARN and inference settings go along.
    #[test]
    fn golden_anthropic_thinking_images_and_prefill() {
        let req = from_anthropic(json!({
            "model": "claude-sonnet-4-5", "max_tokens": 1000, "temperature": 0.5,
            "thinking": {"type": "enabled", "budget_tokens": 5000},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok", "is_error": true}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}, {"type": "text", "text": "Sure"}]}
            ]
        }));
        let body = encode(
            &req,
            &Encoding {
                profile_arn: Some("arn:aws:codewhisperer:eu-central-1:1:profile/X"),
                conversation_id: "c".into(),
            },
        );
        let state = &body["conversationState"];
        assert_eq!(body["profileArn"], "arn:aws:codewhisperer:eu-central-1:1:profile/X");
        assert_eq!(body["inferenceConfig"], json!({"maxTokens": 1000, "temperature": 0.5}));
        let history = state["history"].as_array().unwrap();
        assert_eq!(history.len(), 4);
        assert_eq!(
            history[0]["userInputMessage"]["images"],
            json!([{"format": "png", "source": {"bytes": "iVBORw0K"}}])
        );
        assert_eq!(history[2]["userInputMessage"]["userInputMessageContext"]["toolResults"][0]["status"], "error");
        assert_eq!(history[3]["assistantResponseMessage"], json!({"content": "Sure"}));
        let current = &state["currentMessage"]["userInputMessage"];
        assert_eq!(
            current["content"],
            "Continue\n<thinking_mode>enabled</thinking_mode><max_thinking_length>5000</max_thinking_length>"
        );
        assert!(current.get("userInputMessageContext").is_none());
    }

    #[test]
    fn long_names_and_descriptions_are_cut_safely() {
        let long = "x".repeat(80);
        assert_eq!(kiro_tool_name(&long).chars().count(), MAX_TOOL_NAME);
        assert_ne!(kiro_tool_name(&long), kiro_tool_name(&format!("{long}y")));
        let desc = "é".repeat(MAX_TOOL_DESCRIPTION);
        let cut = cut_at_char(&desc, MAX_TOOL_DESCRIPTION);
        assert!(cut.len() <= MAX_TOOL_DESCRIPTION && cut.len() >= MAX_TOOL_DESCRIPTION - 1);
        let req = from_openai(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": long, "description": desc}}]}));
        let body = encode(&req, &enc());
        let spec = &body["conversationState"]["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"]
            [0]["toolSpecification"];
        assert!(spec["description"].as_str().unwrap().len() <= MAX_TOOL_DESCRIPTION);
        assert_eq!(spec["inputSchema"]["json"], json!({"type": "object"}));
        assert!(body["conversationState"].get("history").is_none(), "an empty history is left out");
    }

    #[test]
    fn tool_choice_none_offers_no_tools() {
        let req =
            from_openai(json!({"model": "m", "tool_choice": "none", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}));
        let body = encode(&req, &enc());
        assert!(
            body["conversationState"]["currentMessage"]["userInputMessage"].get("userInputMessageContext").is_none()
        );
    }

    #[test]
    fn agentic_and_effort() {
        let mut req = from_openai(
            json!({"model": "m", "reasoning_effort": "high", "messages": [{"role": "user", "content": "hi"}]}),
        );
        req.model = "claude-opus-4.5-agentic".into();
        let body = encode(&req, &enc());
        let current = &body["conversationState"]["currentMessage"]["userInputMessage"];
        assert_eq!(current["modelId"], "claude-opus-4.5");
        let content = current["content"].as_str().unwrap();
        assert!(content.starts_with(AGENTIC_INSTRUCTION), "{content}");
        assert!(content.ends_with("<max_thinking_length>32000</max_thinking_length>"), "{content}");
    }
}
