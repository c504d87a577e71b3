//! TypeScript types for the dashboard from the OpenAPI document's component schemas
//! (`web/src/generated/api.ts`), so the dashboard's wire types are the server's, not copies.
//! Regenerate with `WRENN_REGENERATE=1 cargo test -p wrenn-core --lib dashboard_api_types`.

use serde_json::Value;
use std::fmt::Write;

/// The module text for a document (as JSON).
pub fn module(doc: &Value) -> String {
    let mut out = String::from(
        "// Generated from the control plane's OpenAPI document (core/src/http/docs.rs); do not\n\
         // edit. Regenerate with `WRENN_REGENERATE=1 cargo test -p wrenn-core --lib dashboard_api_types`.\n",
    );
    let Some(schemas) = doc["components"]["schemas"].as_object() else {
        return out;
    };
    let mut names: Vec<&String> = schemas.keys().collect();
    names.sort();
    for name in names {
        let schema = &schemas[name];
        out.push('\n');
        if let Some(text) = schema["description"].as_str() {
            doc_comment(&mut out, "", text);
        }
        if is_object(schema) {
            let _ = writeln!(
                out,
                "export interface {} {}",
                ident(name),
                object(schema, "")
            );
        } else {
            let _ = writeln!(out, "export type {} = {};", ident(name), ty(schema, ""));
        }
    }
    out
}

fn ident(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn doc_comment(out: &mut String, indent: &str, text: &str) {
    let text = text.trim().replace("*/", "* /");
    if text.contains('\n') {
        let _ = writeln!(out, "{indent}/**");
        for line in text.lines() {
            let _ = writeln!(out, "{indent} * {}", line.trim_end());
        }
        let _ = writeln!(out, "{indent} */");
    } else {
        let _ = writeln!(out, "{indent}/** {text} */");
    }
}

fn is_object(schema: &Value) -> bool {
    schema["properties"].is_object()
}

fn types_of(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// `{ a: T; b?: U }` over several lines, indented by `indent`.
fn object(schema: &Value, indent: &str) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let inner = format!("{indent}  ");
    let mut out = String::from("{\n");
    if let Some(props) = schema["properties"].as_object() {
        for (name, prop) in props {
            if let Some(text) = prop["description"].as_str() {
                doc_comment(&mut out, &inner, text);
            }
            let key = if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                name.clone()
            } else {
                format!("{name:?}")
            };
            let optional = if required.contains(&name.as_str()) {
                ""
            } else {
                "?"
            };
            let _ = writeln!(out, "{inner}{key}{optional}: {};", ty(prop, &inner));
        }
    }
    if let Some(extra) = additional(schema) {
        let _ = writeln!(out, "{inner}[key: string]: {};", ty(extra, &inner));
    }
    out.push_str(indent);
    out.push('}');
    out
}

fn additional(schema: &Value) -> Option<&Value> {
    match &schema["additionalProperties"] {
        Value::Object(_) => Some(&schema["additionalProperties"]),
        _ => None,
    }
}

/// The TypeScript type of a schema.
fn ty(schema: &Value, indent: &str) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        return ident(r.rsplit('/').next().unwrap_or(r));
    }
    for (key, sep) in [("oneOf", " | "), ("anyOf", " | "), ("allOf", " & ")] {
        if let Some(parts) = schema[key].as_array() {
            let mut all: Vec<String> = parts.iter().map(|p| ty(p, indent)).collect();
            all.dedup();
            return all.join(sep);
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .map(|v| {
                if v.is_null() {
                    "null".to_string()
                } else {
                    v.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" | ");
    }
    let types = types_of(schema);
    if types.is_empty() {
        return if is_object(schema) {
            object(schema, indent)
        } else {
            "unknown".into()
        };
    }
    let mut parts: Vec<String> = types
        .iter()
        .map(|t| match *t {
            "string" => "string".to_string(),
            "integer" | "number" => "number".to_string(),
            "boolean" => "boolean".to_string(),
            "null" => "null".to_string(),
            "array" => {
                let item = ty(&schema["items"], indent);
                if item.contains(' ') {
                    format!("({item})[]")
                } else {
                    format!("{item}[]")
                }
            }
            "object" if is_object(schema) => object(schema, indent),
            "object" => match additional(schema) {
                Some(v) => format!("Record<string, {}>", ty(v, indent)),
                None => "Record<string, unknown>".to_string(),
            },
            _ => "unknown".to_string(),
        })
        .collect();
    parts.dedup();
    parts.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_objects_enums_arrays_refs_and_nullables() {
        let doc = json!({"components": {"schemas": {
            "Thing": {"type": "object", "description": "A thing.", "required": ["id", "tags"],
                "properties": {
                    "id": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "size": {"type": ["integer", "null"], "description": "Bytes."},
                    "kind": {"$ref": "#/components/schemas/Kind"},
                    "meta": {"type": "object", "additionalProperties": {"type": "string"}}
                }},
            "Kind": {"type": "string", "enum": ["a", "b"]}
        }}});
        let text = module(&doc);
        assert!(text.contains("export type Kind = \"a\" | \"b\";"), "{text}");
        assert!(
            text.contains("/** A thing. */\nexport interface Thing {\n"),
            "{text}"
        );
        assert!(text.contains("  id: string;\n"), "{text}");
        assert!(text.contains("  tags: string[];\n"), "{text}");
        assert!(
            text.contains("  /** Bytes. */\n  size?: number | null;\n"),
            "{text}"
        );
        assert!(text.contains("  kind?: Kind;\n"), "{text}");
        assert!(
            text.contains("  meta?: Record<string, string>;\n"),
            "{text}"
        );
    }
}
