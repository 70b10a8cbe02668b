//! `Strict`: the deserializer adaptor every request body is read through. Two rules, at every
//! depth:
//! - a struct is read only from a JSON object. serde's derived structs also accept an array of
//!   their fields in order, so `POST /artifacts/ []` made an artifact of defaults and `{"state":
//!   [...]}` a state; Prefect's models take objects only.
//! - a struct field that names or keys a stored object ([`LIMITED_FIELDS`]) holds at most
//!   [`MAX_NAME_CHARS`] characters, on both backends: PostgreSQL refuses index entries past about
//!   2.7 kB, and SQLite would take 10 MB, so the limit is one documented number instead.
//!
//! Maps of free-form values (parameters, job variables, block data) are not structs and keep any
//! key or length.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

/// The most characters a name or key may have (flows, deployments, work pools and queues,
/// workers, limits, artifact and input keys, block names and slugs, schedule slugs, task and
/// idempotency keys).
pub const MAX_NAME_CHARS: usize = 500;

/// Struct fields that hold a name or key (see [`MAX_NAME_CHARS`]).
const LIMITED_FIELDS: [&str; 7] = [
    "name",
    "key",
    "slug",
    "tag",
    "task_key",
    "dynamic_key",
    "idempotency_key",
];

/// The start of the message a too-long name is refused with (pydantic's `string_too_long`).
pub const TOO_LONG: &str = "String should have at most";

/// What the value being read is, for the length rule.
#[derive(Clone)]
enum Mode {
    Plain,
    /// A struct's field name: notes whether the field is limited.
    Key(Rc<Cell<bool>>),
    /// The value of a limited field.
    Limited,
}

impl Mode {
    fn check<E: de::Error>(&self, s: &str) -> Result<(), E> {
        match self {
            Mode::Plain => Ok(()),
            Mode::Key(limited) => {
                limited.set(LIMITED_FIELDS.contains(&s));
                Ok(())
            }
            Mode::Limited if s.len() > MAX_NAME_CHARS && s.chars().count() > MAX_NAME_CHARS => {
                Err(E::custom(format!("{TOO_LONG} {MAX_NAME_CHARS} characters")))
            }
            Mode::Limited => Ok(()),
        }
    }
}

pub struct Strict<D> {
    de: D,
    mode: Mode,
}

impl<D> Strict<D> {
    pub fn new(de: D) -> Self {
        Strict {
            de,
            mode: Mode::Plain,
        }
    }
}

/// Deserializer methods that take only a visitor: the visitor is wrapped, nothing else changes.
macro_rules! forward_visitor {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.de.$method(Wrap::new(visitor, self.mode))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_visitor!(
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de
            .deserialize_unit_struct(name, Wrap::new(visitor, self.mode))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de
            .deserialize_newtype_struct(name, Wrap::new(visitor, self.mode))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de
            .deserialize_tuple(len, Wrap::new(visitor, self.mode))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de
            .deserialize_tuple_struct(name, len, Wrap::new(visitor, self.mode))
    }

    /// A struct is read as a map (so an array is "invalid type: sequence") whose field names
    /// are watched for the limited ones.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let mut wrap = Wrap::new(visitor, self.mode);
        wrap.is_struct = true;
        self.de.deserialize_map(wrap)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de
            .deserialize_enum(name, variants, Wrap::new(visitor, self.mode))
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// A visitor whose strings are checked and whose nested deserializers, sequences, maps and
/// enums are made strict in turn.
struct Wrap<V> {
    visitor: V,
    mode: Mode,
    is_struct: bool,
}

impl<V> Wrap<V> {
    fn new(visitor: V, mode: Mode) -> Self {
        Wrap {
            visitor,
            mode,
            is_struct: false,
        }
    }
}

macro_rules! forward_value {
    ($($method:ident: $ty:ty)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

macro_rules! forward_str {
    ($($method:ident: $ty:ty)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.mode.check::<E>(&v)?;
            self.visitor.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_value!(
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64
        visit_i128: i128 visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64
        visit_u128: u128 visit_f32: f32 visit_f64: f64 visit_char: char visit_bytes: &[u8]
        visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    );

    forward_str!(visit_str: &str visit_borrowed_str: &'de str visit_string: String);

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_some(Strict {
            de: d,
            mode: self.mode,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_newtype_struct(Strict {
            de: d,
            mode: self.mode,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_seq(Entries(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        if self.is_struct {
            self.visitor.visit_map(Fields {
                map,
                limited: Rc::new(Cell::new(false)),
            })
        } else {
            self.visitor.visit_map(Entries(map))
        }
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_enum(Entries(data))
    }
}

/// A seed whose deserializer is strict.
struct Seed<S> {
    seed: S,
    mode: Mode,
}

impl<S> Seed<S> {
    fn plain(seed: S) -> Self {
        Seed {
            seed,
            mode: Mode::Plain,
        }
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Strict {
            de: d,
            mode: self.mode,
        })
    }
}

/// The elements of a sequence, the entries of a map of free-form keys, or an enum's variant.
struct Entries<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Entries<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed::plain(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Seed::plain(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed::plain(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// A struct's fields: the key tells whether the value is a limited name.
struct Fields<A> {
    map: A,
    limited: Rc<Cell<bool>>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Fields<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.limited.set(false);
        self.map.next_key_seed(Seed {
            seed,
            mode: Mode::Key(self.limited.clone()),
        })
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let mode = if self.limited.get() {
            Mode::Limited
        } else {
            Mode::Plain
        };
        self.map.next_value_seed(Seed { seed, mode })
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Entries<A> {
    type Error = A::Error;
    type Variant = Entries<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(Seed::plain(seed))?;
        Ok((value, Entries(variant)))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Entries<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed::plain(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap::new(visitor, Mode::Plain))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0
            .struct_variant(fields, Wrap::new(visitor, Mode::Plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Inner {
        kind: String,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Outer {
        name: Option<String>,
        inner: Option<Inner>,
        #[serde(default)]
        items: Vec<Inner>,
        other: Option<serde_json::Value>,
    }

    fn strict(text: &str) -> Result<Outer, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde::Deserialize::deserialize(Strict::new(&mut de))
    }

    #[test]
    fn structs_come_only_from_objects_at_any_depth() {
        let positional = r#"["n", null, [], null]"#;
        let lenient = serde_json::from_str::<Outer>(positional).expect("serde alone takes it");
        assert_eq!(lenient.name.as_deref(), Some("n"));
        let e = strict(positional).expect_err("top level");
        assert!(e.to_string().contains("invalid type: sequence"), "{e}");
        assert!(strict(r#"{"inner": ["a"]}"#).is_err(), "nested");
        assert!(
            strict(r#"{"items": [{"kind": "a"}, ["b"]]}"#).is_err(),
            "in a list"
        );
        let ok = strict(r#"{"name": "n", "inner": {"kind": "k"}, "items": [{"kind": "a"}], "other": [1, {"a": [2]}]}"#)
            .expect("objects");
        assert_eq!(ok.inner, Some(Inner { kind: "k".into() }));
        assert_eq!(ok.other, Some(serde_json::json!([1, {"a": [2]}])));
    }

    #[test]
    fn names_and_keys_of_structs_are_limited_free_form_maps_are_not() {
        let long = "é".repeat(MAX_NAME_CHARS + 1);
        let at_most = "é".repeat(MAX_NAME_CHARS);
        let e = strict(&format!(r#"{{"name": "{long}"}}"#)).expect_err("too long");
        assert!(e.to_string().starts_with(TOO_LONG), "{e}");
        let ok = strict(&format!(r#"{{"name": "{at_most}"}}"#)).expect("at the limit");
        assert_eq!(ok.name.map(|n| n.chars().count()), Some(MAX_NAME_CHARS));
        let free = strict(&format!(
            r#"{{"other": {{"name": "{long}", "key": ["{long}"]}}}}"#
        ))
        .expect("free-form values keep any length");
        assert!(free.other.is_some());
    }
}
