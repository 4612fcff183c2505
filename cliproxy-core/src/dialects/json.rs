//! A validating walk over borrowed JSON, for request and response bodies.
//!
//! Bodies are read as objects of [`RawValue`]s that borrow from the input: one pass checks the syntax, and
//! each field is then read into exactly the Rust type the IR needs, without an intermediate
//! `serde_json::Value` tree. A field of the wrong shape is reported with its path
//! (`messages[2].content: expected a string or an array of content parts`), which derived deserializers
//! (and untagged enums in particular) cannot say.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::Error;

/// Where a value sits in a body, for error messages. Built on the stack as the walk descends; formatted
/// only when something is wrong.
#[derive(Clone, Copy)]
pub(crate) enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl<'p> Path<'p> {
    pub(crate) fn key<'q>(&'q self, key: &'q str) -> Path<'q> {
        Path::Key(self, key)
    }

    pub(crate) fn index(&self, index: usize) -> Path<'_> {
        Path::Index(self, index)
    }

    /// An error naming this path: `messages[2].content: <message>`.
    pub(crate) fn invalid(&self, message: impl fmt::Display) -> Error {
        Error::invalid_request(format!("{self}: {message}"))
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("body"),
            Path::Key(Path::Root, key) => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// The JSON type of a raw value, read from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

pub(crate) fn kind(raw: &RawValue) -> Kind {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'"') => Kind::String,
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'n') | None => Kind::Null,
        Some(_) => Kind::Number,
    }
}

/// A string that borrows from the input unless it contained escapes.
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A JSON object whose values are still raw text. `null` values read as absent, since clients send
/// `"tools": null` and the like for "not set".
#[derive(Debug)]
pub(crate) struct Obj<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'de> Deserialize<'de> for Obj<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Obj<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Obj<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(Obj { fields })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Obj<'a> {
    /// Reads a whole body, which must be a JSON object.
    pub(crate) fn from_body(body: &'a [u8]) -> Result<Self, Error> {
        match serde_json::from_slice::<&RawValue>(body) {
            Ok(raw) => Obj::read(raw, &Path::Root),
            Err(e) => Err(Error::invalid_request(format!("body is not valid JSON: {e}"))),
        }
    }

    /// Reads an object at `path`.
    pub(crate) fn read(raw: &'a RawValue, path: &Path<'_>) -> Result<Self, Error> {
        if kind(raw) != Kind::Object {
            return Err(path.invalid("expected a JSON object"));
        }
        serde_json::from_str(raw.get()).map_err(|e| path.invalid(e))
    }

    /// The value of `key`, unless absent or `null`. The last of duplicate keys wins, as in `serde_json`.
    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v).filter(|v| kind(v) != Kind::Null)
    }

    /// The value of `key`, which must be present.
    pub(crate) fn require(&self, key: &str, path: &Path<'_>, expected: &str) -> Result<&'a RawValue, Error> {
        self.get(key).ok_or_else(|| path.key(key).invalid(format_args!("missing; expected {expected}")))
    }

    /// Every field in order, `null`s included.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.fields.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// The `type` tag of a content block or part.
    pub(crate) fn tag(&self, path: &Path<'_>) -> Result<Cow<'a, str>, Error> {
        let raw = self.require("type", path, "a string naming the type")?;
        string(raw, &path.key("type"))
    }

    pub(crate) fn string(&self, key: &str, path: &Path<'_>) -> Result<Option<Cow<'a, str>>, Error> {
        self.get(key).map(|raw| string(raw, &path.key(key))).transpose()
    }

    pub(crate) fn require_string(&self, key: &str, path: &Path<'_>) -> Result<Cow<'a, str>, Error> {
        string(self.require(key, path, "a string")?, &path.key(key))
    }

    pub(crate) fn bool(&self, key: &str, path: &Path<'_>) -> Result<Option<bool>, Error> {
        self.get(key).map(|raw| boolean(raw, &path.key(key))).transpose()
    }

    pub(crate) fn u32(&self, key: &str, path: &Path<'_>) -> Result<Option<u32>, Error> {
        self.get(key).map(|raw| unsigned(raw, &path.key(key))).transpose()
    }

    pub(crate) fn object(&self, key: &str, path: &Path<'_>) -> Result<Option<Obj<'a>>, Error> {
        self.get(key).map(|raw| Obj::read(raw, &path.key(key))).transpose()
    }

    pub(crate) fn value(&self, key: &str, path: &Path<'_>) -> Result<Option<Value>, Error> {
        self.get(key).map(|raw| value(raw, &path.key(key))).transpose()
    }
}

fn read_as<'a, T: Deserialize<'a>>(raw: &'a RawValue, path: &Path<'_>, want: Kind, expected: &str) -> Result<T, Error> {
    if kind(raw) != want {
        return Err(path.invalid(format_args!("expected {expected}")));
    }
    serde_json::from_str(raw.get()).map_err(|_| path.invalid(format_args!("expected {expected}")))
}

pub(crate) fn string<'a>(raw: &'a RawValue, path: &Path<'_>) -> Result<Cow<'a, str>, Error> {
    read_as::<Str<'a>>(raw, path, Kind::String, "a string").map(|s| s.0)
}

pub(crate) fn boolean(raw: &RawValue, path: &Path<'_>) -> Result<bool, Error> {
    read_as(raw, path, Kind::Bool, "true or false")
}

pub(crate) fn number(raw: &RawValue, path: &Path<'_>) -> Result<f64, Error> {
    read_as(raw, path, Kind::Number, "a number")
}

pub(crate) fn unsigned(raw: &RawValue, path: &Path<'_>) -> Result<u32, Error> {
    read_as(raw, path, Kind::Number, "a non-negative integer below 2^32")
}

pub(crate) fn array<'a>(raw: &'a RawValue, path: &Path<'_>, expected: &str) -> Result<Vec<&'a RawValue>, Error> {
    read_as(raw, path, Kind::Array, expected)
}

/// Any JSON value, materialized (tool schemas and arguments, opaque parts).
pub(crate) fn value(raw: &RawValue, path: &Path<'_>) -> Result<Value, Error> {
    serde_json::from_str(raw.get()).map_err(|e| path.invalid(e))
}

/// Re-reads a request-shaped error as the fault of an upstream answer: same words, upstream kind.
pub(crate) fn upstream_fault(what: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| Error::upstream(None, format!("the upstream sent an unreadable {what}: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_format_like_javascript_accessors() {
        let root = Path::Root;
        let m = root.key("messages");
        let i = m.index(2);
        let c = i.key("content");
        assert_eq!(c.to_string(), "messages[2].content");
        assert_eq!(root.to_string(), "body");
    }

    #[test]
    fn object_fields_borrow_and_treat_null_as_absent() {
        let body = br#"{"a":"x","b":null,"c":"e\u0301","a":"y"}"#;
        let o = Obj::from_body(body).unwrap();
        assert_eq!(o.string("a", &Path::Root).unwrap().as_deref(), Some("y"));
        assert!(o.get("b").is_none());
        assert_eq!(o.string("c", &Path::Root).unwrap().as_deref(), Some("e\u{301}"));
        assert_eq!(o.fields().count(), 4);
    }

    #[test]
    fn shape_errors_name_path_and_expectation() {
        let o = Obj::from_body(br#"{"n":"5","s":5,"u":-1,"f":1.5}"#).unwrap();
        let e = o.u32("n", &Path::Root).unwrap_err();
        assert_eq!(e.message(), "n: expected a non-negative integer below 2^32");
        assert_eq!(o.string("s", &Path::Root).unwrap_err().message(), "s: expected a string");
        assert!(o.u32("u", &Path::Root).is_err());
        assert!(o.u32("f", &Path::Root).is_err());
        assert_eq!(o.require("x", &Path::Root, "a string").unwrap_err().message(), "x: missing; expected a string");
    }

    #[test]
    fn bodies_that_are_not_objects_are_rejected() {
        assert!(Obj::from_body(b"[1]").unwrap_err().message().contains("expected a JSON object"));
        assert!(Obj::from_body(b"{").unwrap_err().message().starts_with("body is not valid JSON"));
    }
}
