//! `/docs` and `/redoc`: the OpenAPI document rendered server-side, once, into one static HTML
//! page with inline CSS and no script, so it needs no external asset, no JavaScript and no
//! Content-Security-Policy exception. Operations fold with `<details>`; schemas are rendered as
//! nested lists, with `$ref`s linking to the shared schemas at the end of the page.

use std::fmt::Write as _;

use serde_json::Value;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:70em;padding:1em 2em;\
color:#1d1d1f}h1{margin-bottom:.2em}code{font-family:ui-monospace,monospace;font-size:.95em}\
details.op{border:1px solid #ccd;border-radius:6px;margin:.5em 0;background:#fafaff}\
details.op>summary{cursor:pointer;padding:.5em .8em;list-style:none}\
details.op>div{padding:.2em 1em 1em;border-top:1px solid #ccd;background:#fff}\
.m{display:inline-block;min-width:4.5em;text-align:center;border-radius:4px;color:#fff;font-weight:bold;\
padding:1px 6px;margin-right:.6em;font-size:.85em}.get{background:#2b7bb9}.post{background:#2f9e44}\
.put{background:#e67700}.delete{background:#c92a2a}.auth{float:right;font-size:.85em;color:#555}\
.sum{color:#444;margin-left:.6em}table{border-collapse:collapse;margin:.3em 0}\
td,th{padding:3px 10px;text-align:left;vertical-align:top;border-bottom:1px solid #eee}\
ul.s{margin:.2em 0;padding-left:1.3em}ul.s li{margin:.1em 0}.t{color:#6741d9}.req{color:#c92a2a}\
.c{color:#777;font-size:.9em}h3{font-size:1em;margin:.8em 0 .3em}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The constraints of a schema (`minLength`, `pattern`, `default`, …) as one short text.
fn constraints(s: &Value) -> String {
    let mut out = Vec::new();
    for (key, label) in [
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minimum", "min"),
        ("maximum", "max"),
        ("pattern", "pattern"),
        ("format", "format"),
        ("default", "default"),
    ] {
        if let Some(v) = s.get(key) {
            out.push(format!("{label} {v}"));
        }
    }
    if let Some(v) = s.get("const") {
        out.push(format!("always {v}"));
    }
    if let Some(Value::Array(values)) = s.get("enum") {
        let v: Vec<String> = values.iter().map(Value::to_string).collect();
        out.push(format!("one of {}", v.join(", ")));
    }
    esc(&out.join("; "))
}

/// One schema as inline HTML: a type line, then nested properties / items.
fn schema(s: &Value, depth: usize) -> String {
    if depth > 12 {
        return "…".into();
    }
    if let Some(name) = s
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        let n = esc(name);
        return format!("<a class=\"t\" href=\"#schema-{n}\">{n}</a>");
    }
    let mut out = String::new();
    if let Some(Value::Array(alts)) = s.get("anyOf") {
        let parts: Vec<String> = alts.iter().map(|a| schema(a, depth + 1)).collect();
        out.push_str(&parts.join(" <span class=\"c\">or</span> "));
    } else {
        let ty = match s.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" or "),
            _ if s.get("const").is_some() => "constant".into(),
            _ => "any".into(),
        };
        let _ = write!(out, "<span class=\"t\">{}</span>", esc(&ty));
        if ty == "array" {
            if let Some(items) = s.get("items") {
                let _ = write!(out, " of {}", schema(items, depth + 1));
            }
        }
    }
    let c = constraints(s);
    if !c.is_empty() {
        let _ = write!(out, " <span class=\"c\">({c})</span>");
    }
    if let Some(d) = s.get("description").and_then(Value::as_str) {
        let _ = write!(out, " — {}", esc(d));
    }
    if let Some(extra) = s.get("additionalProperties").filter(|v| v.is_object()) {
        let _ = write!(
            out,
            "<ul class=\"s\"><li><code>&lt;key&gt;</code>: {}</li></ul>",
            schema(extra, depth + 1)
        );
    }
    if let Some(Value::Object(props)) = s.get("properties") {
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !props.is_empty() {
            out.push_str("<ul class=\"s\">");
            for (name, p) in props {
                let mark = if required.contains(&name.as_str()) {
                    " <span class=\"req\">required</span>"
                } else {
                    " <span class=\"c\">optional</span>"
                };
                let _ = write!(
                    out,
                    "<li><code>{}</code>{mark}: {}</li>",
                    esc(name),
                    schema(p, depth + 1)
                );
            }
            out.push_str("</ul>");
        }
    }
    out
}

fn operation(out: &mut String, method: &str, path: &str, op: &Value) {
    let id = op["operationId"].as_str().unwrap_or("op");
    let auth = if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
        "Auth: bearer token"
    } else {
        "Auth: none"
    };
    let _ = write!(
        out,
        "<details class=\"op\" id=\"{}\"><summary><span class=\"m {m}\">{}</span><code>{}</code>\
         <span class=\"sum\">{}</span><span class=\"auth\">{auth}</span></summary><div>",
        esc(id),
        esc(&method.to_ascii_uppercase()),
        esc(path),
        esc(op["summary"].as_str().unwrap_or("")),
        m = esc(method),
    );
    if let Some(params) = op["parameters"].as_array() {
        out.push_str("<h3>Parameters</h3><table><tr><th>Name</th><th>In</th><th>Required</th><th>Schema</th></tr>");
        for p in params {
            let mut s = schema(&p["schema"], 0);
            if let Some(d) = p["description"].as_str() {
                let _ = write!(s, " — {}", esc(d));
            }
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{s}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                esc(p["in"].as_str().unwrap_or("")),
                if p["required"] == true { "yes" } else { "no" },
            );
        }
        out.push_str("</table>");
    }
    if let Some(body) = op.get("requestBody") {
        let required = if body["required"] == true {
            "required"
        } else {
            "optional"
        };
        let _ = write!(out, "<h3>Request body ({required})</h3>");
        content(out, &body["content"]);
    }
    out.push_str("<h3>Responses</h3><table>");
    for (code, resp) in op["responses"].as_object().into_iter().flatten() {
        let _ = write!(
            out,
            "<tr><td><b>{}</b></td><td>{}",
            esc(code),
            esc(resp["description"].as_str().unwrap_or(""))
        );
        if let Some(headers) = resp["headers"].as_object() {
            let names: Vec<String> = headers.keys().map(|h| esc(h)).collect();
            let _ = write!(
                out,
                " <span class=\"c\">(headers: {})</span>",
                names.join(", ")
            );
        }
        content(out, &resp["content"]);
        out.push_str("</td></tr>");
    }
    out.push_str("</table></div></details>\n");
}

fn content(out: &mut String, content: &Value) {
    for (ct, media) in content.as_object().into_iter().flatten() {
        let _ = write!(
            out,
            "<div><code>{}</code>: {}</div>",
            esc(ct),
            schema(&media["schema"], 0)
        );
    }
}

/// The HTML page of `doc` (an OpenAPI 3.1 document made by [`super::openapi::document`]).
pub(crate) fn docs_html(doc: &Value) -> String {
    let mut ops = String::new();
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            operation(&mut ops, method, path, op);
            count += 1;
        }
    }
    let mut schemas = String::new();
    for (name, s) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            schemas,
            "<div id=\"schema-{n}\"><h3><code>{n}</code></h3>{}</div>",
            schema(s, 0),
            n = esc(name)
        );
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} API {version}</title><style>{STYLE}</style></head><body>\
         <h1>{title} API <span class=\"c\">{version}</span></h1><p>{desc}</p>\
         <p>{count} operations. Machine-readable: <a href=\"{base}/openapi.json\">{base}/openapi.json</a>. \
         Authenticated routes take <code>Authorization: Bearer &lt;token&gt;</code>. Every error \
         (the <code>default</code> response) is the <a href=\"#schema-Error\">Error</a> envelope.</p>\
         <h2>Operations</h2>\n{ops}<h2>Schemas</h2>\n{schemas}</body></html>\n",
        title = esc(doc["info"]["title"].as_str().unwrap_or("API")),
        // The path prefix the document advertises (`servers`), if any.
        base = esc(doc["servers"][0]["url"].as_str().unwrap_or("")),
        version = esc(doc["info"]["version"].as_str().unwrap_or("")),
        desc = esc(doc["info"]["description"].as_str().unwrap_or("")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_nested_schemas_and_escapes() {
        let s = json!({"type": "object", "required": ["a"], "properties": {
            "a": {"type": "string", "maxLength": 3, "description": "<b>"},
            "b": {"type": "array", "items": {"$ref": "#/components/schemas/X"}}}});
        let html = schema(&s, 0);
        assert!(html.contains("<code>a</code> <span class=\"req\">required</span>"));
        assert!(html.contains("max length 3"));
        assert!(html.contains("&lt;b&gt;"));
        assert!(html.contains("href=\"#schema-X\""));
    }
}
