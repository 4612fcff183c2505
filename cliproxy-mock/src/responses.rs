//! The OpenAI Responses dialect as Codex and Copilot serve it (`POST …/responses`): the request texts a
//! directive may hide in, the whole response object, and its named-event SSE sequence: `response.created`,
//! `response.in_progress`, then per output item `response.output_item.added`, its parts and deltas
//! (`reasoning_summary_text.delta`, `output_text.delta`, `function_call_arguments.delta`) and
//! `response.output_item.done`, and last `response.completed` (or `response.incomplete` when the answer was
//! cut by its token limit). `response.failed` is the error inside a 200 stream. Every event carries the same
//! `type` as its name and a `sequence_number` counting from 0.

use serde_json::{Value, json};

use crate::answer::{ARGUMENT_FRAGMENT_BYTES, Answer, TEXT_DELTA_CHARS, byte_pieces, char_pieces, estimate};
use crate::directive;
use crate::writer::EventBuf;
use crate::{clock, ids};

/// What every event of one response shares.
pub(crate) struct Head<'a> {
    pub id: String,
    pub created_at: u64,
    pub model: &'a str,
}

impl<'a> Head<'a> {
    pub fn new(model: &'a str) -> Head<'a> {
        Head { id: ids::token("resp_", 48), created_at: clock::unix_now(), model }
    }

    /// The response object in a given state.
    fn object(&self, status: &str, output: Vec<Value>) -> Value {
        json!({
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "background": false, "error": null, "incomplete_details": null, "model": self.model,
            "output": output, "parallel_tool_calls": true, "store": false, "usage": null,
        })
    }
}

/// The texts a directive may hide in: `instructions`, and the `input`, a string or items with a `content`
/// (string or parts) or a function call's `output`.
pub(crate) fn request_texts(request: &Value) -> Vec<&str> {
    let mut texts = Vec::new();
    if let Some(instructions) = request.get("instructions").and_then(Value::as_str) {
        texts.push(instructions);
    }
    match request.get("input") {
        Some(Value::String(input)) => texts.push(input),
        Some(Value::Array(items)) => {
            for item in items {
                if let Some(content) = item.get("content") {
                    directive::content_texts(content, &mut texts);
                }
                if let Some(output) = item.get("output").and_then(Value::as_str) {
                    texts.push(output);
                }
            }
        }
        _ => {}
    }
    texts
}

/// An answer rendered as a response: item ids are fixed up front so the stream and the final object agree.
pub(crate) struct Rendering<'a> {
    head: &'a Head<'a>,
    answer: &'a Answer,
    reasoning_id: String,
    message_id: String,
    call_ids: Vec<String>,
    /// The reasoning item's `encrypted_content`, when the request asked for it in `include`.
    encrypted: Option<String>,
}

impl<'a> Rendering<'a> {
    pub fn new(head: &'a Head<'a>, answer: &'a Answer, request: &Value) -> Rendering<'a> {
        let include = request.get("include").and_then(Value::as_array);
        let wants_encrypted = include.is_some_and(|i| i.iter().any(|v| v == "reasoning.encrypted_content"));
        Rendering {
            head,
            answer,
            reasoning_id: ids::token("rs_", 48),
            message_id: ids::token("msg_", 48),
            call_ids: answer.tool_calls.iter().map(|_| ids::token("fc_", 48)).collect(),
            encrypted: (wants_encrypted && answer.thinking.is_some()).then(|| ids::token("gAAAAAB", 120)),
        }
    }

    fn reasoning_item(&self, text: &str) -> Value {
        let mut item = json!({"id": self.reasoning_id, "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}]});
        if let Some(encrypted) = &self.encrypted {
            item["encrypted_content"] = json!(encrypted);
        }
        item
    }

    fn message_item(&self, text: &str, status: &str) -> Value {
        let content: Vec<Value> = if status == "completed" { vec![output_text(text)] } else { Vec::new() };
        json!({"id": self.message_id, "type": "message", "status": status, "role": "assistant", "content": content})
    }

    fn call_item(&self, index: usize, arguments: &str, status: &str) -> Value {
        let call = &self.answer.tool_calls[index];
        json!({"id": self.call_ids[index], "type": "function_call", "status": status, "arguments": arguments,
            "call_id": call.id, "name": call.name})
    }

    /// The completed output items, in order.
    fn output(&self) -> Vec<Value> {
        let a = self.answer;
        let reasoning = a.thinking.as_deref().map(|t| self.reasoning_item(t));
        let message = a.text.as_deref().map(|t| self.message_item(t, "completed"));
        let calls = a.tool_calls.iter().enumerate().map(|(i, c)| self.call_item(i, &c.arguments, "completed"));
        reasoning.into_iter().chain(message).chain(calls).collect()
    }

    /// The finished response: `completed`, or `incomplete` with its reason, and the usage.
    pub fn finished(&self) -> Value {
        let (status, reason) = match self.answer.finish.as_deref() {
            Some("length" | "max_tokens" | "max_output_tokens") => ("incomplete", Some("max_output_tokens")),
            Some("content_filter" | "refusal") => ("incomplete", Some("content_filter")),
            _ => ("completed", None),
        };
        let mut response = self.head.object(status, self.output());
        if let Some(reason) = reason {
            response["incomplete_details"] = json!({"reason": reason});
        }
        let u = self.answer.usage;
        let reasoning = self.answer.thinking.as_deref().map_or(0, |t| estimate(t.chars().count()).min(u.output));
        response["usage"] = json!({
            "input_tokens": u.input, "input_tokens_details": {"cached_tokens": u.cached},
            "output_tokens": u.output, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": u.input + u.output,
        });
        response
    }

    /// The event stream of the response, through `response.completed` / `response.incomplete`.
    pub fn events(&self) -> EventBuf {
        let mut events = EventBuf::new();
        let in_progress = self.head.object("in_progress", Vec::new());
        emit(&mut events, "response.created", json!({"response": in_progress}));
        emit(&mut events, "response.in_progress", json!({"response": in_progress}));
        let mut output_index = 0;
        if let Some(thinking) = self.answer.thinking.as_deref() {
            let at = json!({"item_id": self.reasoning_id, "output_index": output_index, "summary_index": 0});
            let mut added = self.reasoning_item("");
            added["summary"] = json!([]);
            item_added(&mut events, output_index, added);
            emit(&mut events, "response.reasoning_summary_part.added", with(&at, "part", summary_text("")));
            for delta in char_pieces(thinking, TEXT_DELTA_CHARS) {
                emit(&mut events, "response.reasoning_summary_text.delta", with(&at, "delta", json!(delta)));
            }
            emit(&mut events, "response.reasoning_summary_text.done", with(&at, "text", json!(thinking)));
            emit(&mut events, "response.reasoning_summary_part.done", with(&at, "part", summary_text(thinking)));
            item_done(&mut events, output_index, self.reasoning_item(thinking));
            output_index += 1;
        }
        if let Some(text) = self.answer.text.as_deref() {
            let at = json!({"item_id": self.message_id, "output_index": output_index, "content_index": 0});
            item_added(&mut events, output_index, self.message_item("", "in_progress"));
            emit(&mut events, "response.content_part.added", with(&at, "part", output_text("")));
            for delta in char_pieces(text, TEXT_DELTA_CHARS) {
                let mut body = with(&at, "delta", json!(delta));
                body["logprobs"] = json!([]);
                emit(&mut events, "response.output_text.delta", body);
            }
            let mut done = with(&at, "text", json!(text));
            done["logprobs"] = json!([]);
            emit(&mut events, "response.output_text.done", done);
            emit(&mut events, "response.content_part.done", with(&at, "part", output_text(text)));
            item_done(&mut events, output_index, self.message_item(text, "completed"));
            output_index += 1;
        }
        for (index, call) in self.answer.tool_calls.iter().enumerate() {
            let at = json!({"item_id": self.call_ids[index], "output_index": output_index});
            item_added(&mut events, output_index, self.call_item(index, "", "in_progress"));
            for delta in byte_pieces(&call.arguments, ARGUMENT_FRAGMENT_BYTES) {
                emit(&mut events, "response.function_call_arguments.delta", with(&at, "delta", json!(delta)));
            }
            let done = with(&at, "arguments", json!(call.arguments));
            emit(&mut events, "response.function_call_arguments.done", done);
            item_done(&mut events, output_index, self.call_item(index, &call.arguments, "completed"));
            output_index += 1;
        }
        let finished = self.finished();
        let name = if finished["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
        emit(&mut events, name, json!({"response": finished}));
        events
    }
}

/// `response.failed`: the error inside a 200 stream.
pub(crate) fn failed(events: &mut EventBuf, head: &Head, code: &str, message: &str) {
    let mut response = head.object("failed", Vec::new());
    response["error"] = json!({"code": code, "message": message});
    emit(events, "response.failed", json!({"response": response}));
}

/// A named event whose data carries its `type` and `sequence_number` (the count of events before it).
fn emit(events: &mut EventBuf, name: &str, mut data: Value) {
    data["type"] = json!(name);
    data["sequence_number"] = json!(events.events());
    events.event(name, &data);
}

fn item_added(events: &mut EventBuf, output_index: usize, item: Value) {
    emit(events, "response.output_item.added", json!({"output_index": output_index, "item": item}));
}

fn item_done(events: &mut EventBuf, output_index: usize, item: Value) {
    emit(events, "response.output_item.done", json!({"output_index": output_index, "item": item}));
}

/// `at` (an item's position fields) plus one more field.
fn with(at: &Value, name: &str, value: Value) -> Value {
    let mut body = at.clone();
    body[name] = value;
    body
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
}

fn summary_text(text: &str) -> Value {
    json!({"type": "summary_text", "text": text})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directive::Directive;

    #[test]
    fn texts_come_from_instructions_input_items_and_tool_outputs() {
        let request = json!({"instructions": "a", "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "b"}]},
            {"type": "message", "role": "assistant", "content": "c"},
            {"type": "function_call_output", "call_id": "x", "output": "d"}]});
        assert_eq!(request_texts(&request), ["a", "b", "c", "d"]);
        assert_eq!(request_texts(&json!({"input": "e"})), ["e"]);
    }

    #[test]
    fn sequence_numbers_count_events_and_the_last_is_completed() {
        let directive: Directive = serde_json::from_value(json!({"reply": "hi", "thinking": "hm"})).unwrap();
        let answer = Answer::new(&directive, 40, "call_");
        let head = Head::new("gpt-5");
        let request = json!({"include": ["reasoning.encrypted_content"]});
        let rendering = Rendering::new(&head, &answer, &request);
        let payload = rendering.events().finish();
        let text = String::from_utf8(payload.bytes.to_vec()).unwrap();
        let frames: Vec<Value> = text
            .split_terminator("\n\n")
            .map(|f| serde_json::from_str(f.split_once("\ndata: ").unwrap().1).unwrap())
            .collect();
        for (n, frame) in frames.iter().enumerate() {
            assert_eq!(frame["sequence_number"], n);
        }
        let last = frames.last().unwrap();
        assert_eq!(last["type"], "response.completed");
        assert!(last["response"]["output"][0]["encrypted_content"].is_string());
        assert_eq!(last["response"]["output"][1]["content"][0]["text"], "hi");
    }
}
