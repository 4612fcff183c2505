//! Same-dialect passthrough: forward the client's body byte-for-byte with targeted edits.
//!
//! When client and upstream speak the same API, re-encoding would drop fields we do not model (new OpenAI
//! parameters, vendor extensions) and cost CPU on every request. Instead we read only the top-level fields that
//! routing needs, remember where they sit in the body, and splice: the `model` value (alias → upstream name) and,
//! for OpenAI streams, `stream_options.include_usage` so usage is always known. Everything else is untouched.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::dialects::Dialect;
use crate::error::{Error, Result};

/// The longest model name accepted. Real names are well under 100 bytes; the bound keeps a client from making
/// the proxy hold (and log) megabytes per request through the one field every piece of routing state is keyed by.
pub const MAX_MODEL_NAME: usize = 256;

/// The top-level facts of a request body and where they are.
#[derive(Debug, Clone)]
pub struct Peek {
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage` as the client sent it.
    pub include_usage: bool,
    /// Where the model is in the body; `None` for requests whose URL names it (Gemini).
    model_span: Option<Range<usize>>,
    stream_options_span: Option<Range<usize>>,
    /// Offset just after the opening `{`.
    open: usize,
}

impl Peek {
    /// Reads the fields routing needs and checks the ones the dialect requires, without building a tree.
    pub fn parse(body: &[u8], dialect: Dialect) -> Result<Peek> {
        if dialect == Dialect::Gemini {
            return Err(crate::dialects::gemini::model_not_in_body());
        }
        let (fields, model_span, model) = routing_fields(body)?;
        match dialect {
            Dialect::Responses if !fields.input => return Err(Error::invalid_request("input: field required")),
            Dialect::OpenAiChat | Dialect::Anthropic if !fields.messages => {
                return Err(Error::invalid_request("messages: field required"));
            }
            _ => {}
        }
        if dialect == Dialect::Anthropic && !fields.max_tokens {
            return Err(Error::invalid_request("max_tokens: field required"));
        }
        let include_usage = match &fields.stream_options {
            Some(span) => serde_json::from_slice::<StreamOptions>(&body[span.clone()])
                .map_err(|_| Error::invalid_request("stream_options: expected an object"))?
                .include_usage
                .unwrap_or(false),
            None => false,
        };
        Ok(Peek {
            model,
            stream: fields.stream,
            include_usage,
            model_span: Some(model_span),
            stream_options_span: fields.stream_options,
            open: open_brace(body),
        })
    }

    /// The facts of a request whose URL names the model and the streaming choice (Gemini's
    /// `models/{model}:streamGenerateContent`). The body is only checked to be a JSON object; `rewrite`
    /// leaves it as it is, since the model is not in it.
    pub fn from_url(body: &[u8], model: &str, stream: bool) -> Result<Peek> {
        top_level(body)?;
        check_model_name(model)?;
        crate::dialects::gemini::check_url_model(model)?;
        Ok(Peek {
            model: model.to_owned(),
            stream,
            include_usage: false,
            model_span: None,
            stream_options_span: None,
            open: open_brace(body),
        })
    }

    /// The body for the upstream: `model` replaced by `upstream_model`, and for OpenAI streams
    /// `include_usage: true` ensured. Returns the original buffer when nothing changes.
    pub fn rewrite(&self, body: &Bytes, upstream_model: &str, dialect: Dialect) -> Bytes {
        let want_usage = dialect == Dialect::OpenAiChat && self.stream && !self.include_usage;
        let Some(model_span) = self.model_span.clone() else { return body.clone() };
        if upstream_model == self.model && !want_usage {
            return body.clone();
        }
        let model_json = serde_json::to_string(upstream_model).expect("strings serialize");
        let mut edits: Vec<(Range<usize>, Cow<'_, str>)> = vec![(model_span, model_json.into())];
        if want_usage {
            match &self.stream_options_span {
                Some(span) => {
                    let mut opts: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_slice(&body[span.clone()]).unwrap_or_default();
                    opts.insert("include_usage".into(), true.into());
                    let text = serde_json::to_string(&opts).expect("maps serialize");
                    edits.push((span.clone(), text.into()));
                }
                None => edits.push((self.open..self.open, r#""stream_options":{"include_usage":true},"#.into())),
            }
        }
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = BytesMut::with_capacity(body.len() + 64);
        let mut pos = 0;
        for (range, text) in &edits {
            out.extend_from_slice(&body[pos..range.start]);
            out.extend_from_slice(text.as_bytes());
            pos = range.end;
        }
        out.extend_from_slice(&body[pos..]);
        out.freeze()
    }

    /// The model of an Anthropic `count_tokens` body, with the checks every routed body gets (a JSON object,
    /// one `model` string of sane length, `messages`), but no `max_tokens`, which counting does not take.
    pub fn count_tokens_model(body: &[u8]) -> Result<String> {
        let (fields, _, model) = routing_fields(body)?;
        if !fields.messages {
            return Err(Error::invalid_request("messages: field required"));
        }
        Ok(model)
    }

    /// Whether the client asked for the usage chunk (so an added one must be removed again).
    pub fn client_wants_usage(&self) -> bool {
        self.include_usage
    }
}

/// The top-level fields of a body and its model, checked: one JSON object, one `model` that is a non-empty
/// string of at most [`MAX_MODEL_NAME`] bytes.
fn routing_fields(body: &[u8]) -> Result<(Fields, Range<usize>, String)> {
    let fields = top_level(body)?;
    let model_span = fields.model.clone().ok_or_else(|| Error::invalid_request("model: field required"))?;
    let model: String = serde_json::from_slice(&body[model_span.clone()])
        .map_err(|_| Error::invalid_request("model: expected a string"))?;
    check_model_name(&model)?;
    Ok((fields, model_span, model))
}

/// A model name must be non-empty and at most [`MAX_MODEL_NAME`] bytes, wherever the client put it.
fn check_model_name(model: &str) -> Result<()> {
    if model.is_empty() {
        return Err(Error::invalid_request("model: must not be empty"));
    }
    if model.len() > MAX_MODEL_NAME {
        return Err(Error::invalid_request(format!(
            "model: a model name is at most {MAX_MODEL_NAME} bytes; this one has {}",
            model.len()
        )));
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Default)]
struct Fields {
    model: Option<Range<usize>>,
    stream: bool,
    stream_seen: bool,
    stream_options: Option<Range<usize>>,
    messages: bool,
    /// The Responses API's `input`, which stands where the other dialects have `messages`.
    input: bool,
    max_tokens: bool,
}

struct TopLevel {
    base: usize,
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Fields, A::Error> {
        let mut f = Fields::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let raw: &'de RawValue = map.next_value()?;
            let text = raw.get();
            let start = text.as_ptr() as usize - self.base;
            let span = start..start + text.len();
            // A key the proxy routes on, given twice, would let the proxy and the upstream read different values
            // (serde keeps the last, some upstreams the first): refuse the ambiguity.
            let seen = |set: bool| if set { Err(de::Error::custom(format!("duplicate key `{key}`"))) } else { Ok(()) };
            match key.as_ref() {
                "model" => {
                    seen(f.model.is_some())?;
                    f.model = Some(span);
                }
                "stream" => {
                    seen(f.stream_seen)?;
                    f.stream_seen = true;
                    f.stream = match text {
                        "true" => true,
                        "false" | "null" => false,
                        _ => return Err(de::Error::custom("stream: expected a boolean")),
                    }
                }
                "stream_options" if text != "null" => f.stream_options = Some(span),
                "messages" => f.messages = text != "null",
                "input" => f.input = text != "null",
                "max_tokens" => f.max_tokens = text != "null",
                _ => {}
            }
        }
        Ok(f)
    }
}

/// Reads the top-level fields of a body, which must be one JSON object.
fn top_level(body: &[u8]) -> Result<Fields> {
    let mut de = serde_json::Deserializer::from_slice(body);
    de.deserialize_map(TopLevel { base: body.as_ptr() as usize })
        .and_then(|f| de.end().map(|()| f))
        .map_err(|e| Error::invalid_request(format!("request body is not a valid JSON object: {e}")))
}

/// Offset just after the first `{` (leading whitespace allowed).
fn open_brace(body: &[u8]) -> usize {
    body.iter().position(|b| *b == b'{').map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peek(s: &str) -> Peek {
        Peek::parse(s.as_bytes(), Dialect::OpenAiChat).unwrap()
    }

    #[test]
    fn duplicate_routing_keys_and_huge_model_names_are_refused() {
        let e = Peek::parse(br#"{"model":"a","messages":[],"model":"b"}"#, Dialect::OpenAiChat).unwrap_err();
        assert!(e.message().contains("duplicate key `model`"), "{e}");
        let e = Peek::parse(br#"{"model":"a","stream":true,"messages":[],"stream":false}"#, Dialect::OpenAiChat);
        assert!(e.unwrap_err().message().contains("duplicate key `stream`"));
        let long = format!(r#"{{"model":"{}","messages":[]}}"#, "m".repeat(MAX_MODEL_NAME + 1));
        assert!(Peek::parse(long.as_bytes(), Dialect::OpenAiChat).unwrap_err().message().contains("at most 256"));
        let ok = format!(r#"{{"model":"{}","messages":[]}}"#, "m".repeat(MAX_MODEL_NAME));
        assert!(Peek::parse(ok.as_bytes(), Dialect::OpenAiChat).is_ok());
    }

    #[test]
    fn unknown_fields_survive_byte_identical() {
        let body = r#"{ "model" : "alias", "messages":[{"role":"user","content":"hi"}], "x_vendor": {"a": [1, 2.50, "é"]}, "logit_bias":{"50256":-100} }"#;
        let p = peek(body);
        let out = p.rewrite(&Bytes::from(body), "upstream-model", Dialect::OpenAiChat);
        let expected = body.replace(r#""alias""#, r#""upstream-model""#);
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
    }

    #[test]
    fn unchanged_model_returns_same_buffer() {
        let body = Bytes::from_static(br#"{"model":"m","messages":[]}"#);
        let p = peek(std::str::from_utf8(&body).unwrap());
        let out = p.rewrite(&body, "m", Dialect::OpenAiChat);
        assert_eq!(out.as_ptr(), body.as_ptr());
    }

    #[test]
    fn stream_gets_include_usage() {
        let body = r#"{"model":"m","stream":true,"messages":[]}"#;
        let out = peek(body).rewrite(&Bytes::from(body), "m", Dialect::OpenAiChat);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);

        let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"other":1},"messages":[]}"#;
        let p = peek(body);
        assert!(!p.client_wants_usage());
        let out = p.rewrite(&Bytes::from(body), "m", Dialect::OpenAiChat);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"], serde_json::json!({"include_usage": true, "other": 1}));

        let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
        let p = peek(body);
        assert!(p.client_wants_usage());
        assert_eq!(p.rewrite(&Bytes::from(body), "m", Dialect::OpenAiChat), Bytes::from(body));
    }

    #[test]
    fn anthropic_needs_no_usage_edit() {
        let body = r#"{"model":"a","max_tokens":5,"stream":true,"messages":[]}"#;
        let p = Peek::parse(body.as_bytes(), Dialect::Anthropic).unwrap();
        let out = p.rewrite(&Bytes::from(body), "b", Dialect::Anthropic);
        assert_eq!(out, Bytes::from(r#"{"model":"b","max_tokens":5,"stream":true,"messages":[]}"#));
    }

    #[test]
    fn responses_need_input_and_no_usage_edit() {
        let body = r#"{"model":"a","input":"hi","stream":true}"#;
        let p = Peek::parse(body.as_bytes(), Dialect::Responses).unwrap();
        assert!(p.stream);
        // Responses streams always end with their usage: only the model changes.
        let out = p.rewrite(&Bytes::from(body), "b", Dialect::Responses);
        assert_eq!(out, Bytes::from(r#"{"model":"b","input":"hi","stream":true}"#));
        let err = Peek::parse(br#"{"model":"a","messages":[]}"#, Dialect::Responses).unwrap_err();
        assert_eq!(err.message(), "input: field required");
    }

    #[test]
    fn invalid_inputs_are_clear() {
        let err = |s: &str, d| Peek::parse(s.as_bytes(), d).unwrap_err().message().to_owned();
        assert!(err("[1]", Dialect::OpenAiChat).contains("JSON object"));
        assert!(err("{\"model\":1,\"messages\":[]}", Dialect::OpenAiChat).contains("model: expected a string"));
        assert!(err("{\"messages\":[]}", Dialect::OpenAiChat).contains("model: field required"));
        assert!(err("{\"model\":\"m\"}", Dialect::OpenAiChat).contains("messages"));
        assert!(err("{\"model\":\"m\",\"messages\":[]}", Dialect::Anthropic).contains("max_tokens"));
        assert!(err("{\"model\":\"m\",\"messages\":[]} trailing", Dialect::OpenAiChat).contains("JSON"));
        assert!(err("{\"model\":\"m\",\"stream\":\"yes\",\"messages\":[]}", Dialect::OpenAiChat).contains("stream"));
        assert!(err("{\"contents\":[]}", Dialect::Gemini).contains("URL"));
    }

    #[test]
    fn url_addressed_bodies_are_checked_and_left_unchanged() {
        let body = Bytes::from_static(br#"{"contents":[{"parts":[{"text":"hi"}]}],"model":"not-this"}"#);
        let p = Peek::from_url(&body, "gemini-x", true).unwrap();
        assert_eq!((p.model.as_str(), p.stream, p.client_wants_usage()), ("gemini-x", true, false));
        let out = p.rewrite(&body, "upstream-name", Dialect::Gemini);
        assert_eq!(out.as_ptr(), body.as_ptr());
        assert!(Peek::from_url(b"[1]", "m", false).unwrap_err().message().contains("JSON object"));
        assert!(Peek::from_url(b"{}", "", false).unwrap_err().message().contains("model"));
    }
}
