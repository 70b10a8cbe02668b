//! Block schema checksums exactly as Prefect computes them: `sha256:` + the SHA-256 hex digest
//! of Python's `json.dumps(((fields,), {}), sort_keys=True)` (default separators, ASCII only),
//! after dropping every nested `secret_fields` key and keeping only the non-block definitions.
//! The 3.9.1 client looks schemas up by this checksum, so it must match byte for byte.

use serde_json::{Map, Value};

use super::definitions::non_block_definitions;

/// The checksum of a block schema's `fields`.
pub fn schema_checksum(fields: &Value) -> String {
    let mut f = remove_nested_key(fields, "secret_fields");
    if let Value::Object(map) = &mut f {
        let defs = map.get("definitions").cloned().unwrap_or(Value::Null);
        if truthy(&defs) {
            let kept = non_block_definitions(&Value::Object(map.clone()), &defs);
            if kept.is_empty() {
                map.remove("definitions");
            } else {
                map.insert("definitions".into(), Value::Object(kept));
            }
        }
    }
    let text = python_dumps(&Value::Array(vec![
        Value::Array(vec![f]),
        Value::Object(Map::new()),
    ]));
    format!("sha256:{}", hex(&sha256(text.as_bytes())))
}

/// Python truthiness of a JSON value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A copy of `v` without `key` in any (nested) object; lists are not entered, as in Prefect's
/// `remove_nested_keys`.
fn remove_nested_key(v: &Value, key: &str) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != key)
                .map(|(k, v)| (k.clone(), remove_nested_key(v, key)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `json.dumps(v, sort_keys=True)` with Python's defaults (`", "`, `": "`, ensure_ascii).
pub fn python_dumps(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if n.is_f64() {
                out.push_str(&python_float(n.as_f64().unwrap_or(0.0)));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, k);
                out.push_str(": ");
                if let Some(v) = map.get(k) {
                    write_value(out, v);
                }
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest round-tripping digits, positional for exponents in
/// -4..16 (with `.0` when integral), else `1.5e-07` / `1e+16`.
pub fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let decpt = exp + 1;
    let body = if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1);
        let mant = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{esign}{:02}", exp.abs())
    } else if decpt <= 0 {
        format!("0.{}{}", "0".repeat((-decpt) as usize), digits)
    } else if (decpt as usize) < digits.len() {
        let (a, b) = digits.split_at(decpt as usize);
        format!("{a}.{b}")
    } else {
        format!("{}{}.0", digits, "0".repeat(decpt as usize - digits.len()))
    };
    format!("{sign}{body}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256, from the `sha2` crate the PostgreSQL driver already builds. Used only to
/// fingerprint schemas, as Prefect does; no secrets.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            hex(&sha256(&million)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn floats_print_like_python_repr() {
        for (f, s) in [
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (123.456, "123.456"),
            (0.1, "0.1"),
            (1.2345678901234567e20, "1.2345678901234567e+20"),
            (5e-324, "5e-324"),
            (1e22, "1e+22"),
            (123456789.0, "123456789.0"),
            (0.0, "0.0"),
        ] {
            assert_eq!(python_float(f), s, "{f}");
        }
    }

    #[test]
    fn dumps_sorts_keys_and_escapes_like_python() {
        let v = json!({"b": [1, 2.0, null, true], "a": "é\n\"x\" \u{1F600}", "c": {}});
        assert_eq!(
            python_dumps(&v),
            r#"{"a": "\u00e9\n\"x\" \ud83d\ude00", "b": [1, 2.0, null, true], "c": {}}"#
        );
    }

    #[test]
    fn checksums_match_the_reference_server() {
        // Captured from a reference server: POST /block_schemas/ with these fields.
        let fields = json!({"title":"MyThing","type":"object","properties":{"a":{"type":"integer","default":1.5e-7},"pw":{"type":"string","format":"password"}},"secret_fields":["pw"],"block_type_slug":"my-thing","block_schema_references":{}});
        assert_eq!(
            schema_checksum(&fields),
            "sha256:34726d13937da31b1b042708155b9ee2a0a652784161da7986024bb711850b83"
        );
    }
}
