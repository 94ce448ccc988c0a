//! docs/metrics.md, the Grafana dashboard (docs/grafana/melo-dashboard.json) and the alert rules
//! (docs/prometheus/melo-alerts.yml) agree with what a server really serves: a server on real
//! sockets gets a little traffic (register, a socket, a DM), its `/metrics` (on the API port)
//! is scraped, and every metric the dashboard and the alerts query must be in the scrape, every
//! metric in the scrape must be listed in docs/metrics.md, and every metric listed there must be
//! served.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::realtime::{make_contacts, online, relay, Target};
use common::ws::WAIT;
use common::{new_user, TestServer};
use serde_json::Value;

const DOC: &str = include_str!("../docs/metrics.md");
const DASHBOARD: &str = include_str!("../docs/grafana/melo-dashboard.json");
const ALERTS: &str = include_str!("../docs/prometheus/melo-alerts.yml");

/// Series Prometheus makes itself for every target, not in any scrape.
const SYNTHETIC: [&str; 1] = ["up"];

/// The families of a scrape: name → type, from its `# TYPE` lines.
fn families(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

/// The series names a query may use: a counter or gauge by its name, a histogram only as
/// `_bucket`, `_sum` and `_count` (its bare name is no series), a summary as its name and those
/// two.
fn series_names(families: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, kind) in families {
        match kind.as_str() {
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{suffix}"));
                }
            }
            "summary" => {
                for suffix in ["", "_sum", "_count"] {
                    out.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                out.insert(name.clone());
            }
        }
    }
    out
}

/// Index after the bracket that closes the one at `open` (`{`…`}`, `(`…`)`, `[`…`]`), skipping
/// quoted strings.
fn skip_group(s: &[char], open: usize) -> usize {
    let (start, end) = match s[open] {
        '{' => ('{', '}'),
        '(' => ('(', ')'),
        _ => ('[', ']'),
    };
    let mut depth = 0;
    let mut i = open;
    while i < s.len() {
        match s[i] {
            '"' | '\'' | '`' => i = skip_string(s, i) - 1,
            c if c == start => depth += 1,
            c if c == end => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    s.len()
}

/// Index after the string that starts at `open`.
fn skip_string(s: &[char], open: usize) -> usize {
    let quote = s[open];
    let mut i = open + 1;
    while i < s.len() && s[i] != quote {
        i += if s[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// The metric names a PromQL expression selects: identifiers followed by `{`, `[` or used bare,
/// but not function names (followed by `(`), aggregations (followed by `(` or `by`/`without`),
/// keywords, the label lists of `by`, `without`,
/// `on`, `ignoring` and `group_*`, label matchers, ranges, numbers, durations, strings or
/// Grafana variables (`$instance`).
fn promql_metrics(expr: &str) -> Vec<String> {
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
    let s: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&s, i);
        } else if c == '{' || c == '[' {
            i = skip_group(&s, i);
        } else if c == '$' {
            i += 1;
            while i < s.len() && ident(s[i]) {
                i += 1;
            }
        } else if c.is_ascii_digit() || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration: 0.99, 1e-3, 0x1f, 5m.
            i += 1;
            while i < s.len()
                && (ident(s[i])
                    || s[i] == '.'
                    || (matches!(s[i], '+' | '-') && matches!(s[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < s.len() && ident(s[i]) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let mut next = i;
            while next < s.len() && s[next].is_whitespace() {
                next += 1;
            }
            let lower = word.to_ascii_lowercase();
            // An aggregation with its grouping first: `sum by (le) (…)`.
            let following: String = s[next..].iter().take_while(|c| ident(**c)).collect();
            let aggregation = matches!(following.as_str(), "by" | "without");
            if GROUPING.contains(&lower.as_str()) {
                if s.get(next) == Some(&'(') {
                    i = skip_group(&s, next);
                }
            } else if KEYWORDS.contains(&lower.as_str()) || aggregation || s.get(next) == Some(&'(')
            {
                // A keyword, or a function (its arguments are read on).
            } else {
                out.push(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Every query of the dashboard: its panels' targets (rows' nested panels too) and its
/// `label_values(<selector>, <label>)` variables.
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    fn panels(list: &Value, out: &mut Vec<String>) {
        for p in list.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(e.to_owned());
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let q = v["query"]["query"].as_str().or(v["query"].as_str());
        if let Some(args) = q.and_then(|q| q.strip_prefix("label_values(")) {
            let selector = args.rsplit_once(',').map_or(args, |(s, _)| s);
            out.push(selector.to_owned());
        }
    }
    out
}

/// The `expr` of every rule in a rules file: `expr: <one line>` or a block (`expr: |`, `>`)
/// of the lines indented deeper than the key.
fn alert_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || indent(l) > indent(line))
                .map(|l| l.trim())
                .collect();
            out.push(block.join(" "));
        } else {
            out.push(rest.trim_matches(|c| c == '"' || c == '\'').to_owned());
        }
    }
    out
}

/// The metric names docs/metrics.md lists: the first cell of its table rows (the alert table's
/// names are CamelCase, not metric names).
fn documented() -> BTreeSet<String> {
    DOC.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(name, _)| name)
        .filter(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn promql_metric_names_are_found() {
    let cases: [(&str, &[&str]); 8] = [
        (
            r#"histogram_quantile(0.99, sum by (le, route) (rate(melo_http_request_duration_seconds_bucket{instance=~"$instance",status=~"5.."}[$__rate_interval])))"#,
            &["melo_http_request_duration_seconds_bucket"],
        ),
        (
            r#"process_open_fds{job="melo"} / process_max_fds{job="melo"} > 0.8"#,
            &["process_open_fds", "process_max_fds"],
        ),
        (
            "time() - process_start_time_seconds",
            &["process_start_time_seconds"],
        ),
        (r#"up{job="melo"} == 0"#, &["up"]),
        (
            "process_resident_memory_bytes > 2 * 1024 ^ 3 and 1e-3 < Inf",
            &["process_resident_memory_bytes"],
        ),
        (
            r#"sum without (op) (a_total offset 5m) / ignoring(reason) group_left (x) b:rule[5m:1m] unless on(instance) c"#,
            &["a_total", "b:rule", "c"],
        ),
        (r#"sum(rate(x_count{l="}\"{"}[5m])) by (le)"#, &["x_count"]),
        ("melo_build_info", &["melo_build_info"]),
    ];
    for (expr, want) in cases {
        assert_eq!(promql_metrics(expr), want, "{expr}");
    }
    let yaml = "rules:\n  - alert: A\n    expr: a > 1\n  - alert: B\n    expr: |\n      sum(b)\n        / sum(c)\n    for: 5m\n  - alert: C\n    expr: \"d == 0\"\n";
    assert_eq!(alert_exprs(yaml), ["a > 1", "sum(b) / sum(c)", "d == 0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_dashboard_and_alerts_match_the_scrape() {
    let s = TestServer::start().await;
    let t = Target::of(&s);
    let c = &s.client;
    let a = new_user(c, "da").await;
    let b = new_user(c, "db").await;
    make_contacts(&t, &a, &b).await;
    let mut wa = online(&t, &a).await;
    let mut wb = online(&t, &b).await;
    let mid = relay(&mut wa, &a, &b, "RE0tMQ==", "d-1").await;
    let d = wb.recv_type("relay_delivery", WAIT).await;
    assert_eq!(d["message_id"], mid.as_str());
    // Scraped on the API port (`metrics_enabled`, no separate listener).
    let r = c.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    let scrape = String::from_utf8(r.raw.to_vec()).expect("utf-8");
    let families = families(&scrape);
    assert!(families.len() > 20, "{scrape}");
    let series = series_names(&families);

    // Every metric a dashboard panel or an alert queries is served.
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let queries = dashboard_exprs(&dashboard);
    assert!(queries.len() >= 30, "{} queries", queries.len());
    let alerts = alert_exprs(ALERTS);
    assert_eq!(
        alerts.len(),
        ALERTS.matches("- alert:").count(),
        "an alert without an expr the test reads"
    );
    let mut queried = BTreeSet::new();
    for expr in queries.iter().chain(&alerts) {
        let names = promql_metrics(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        for name in names {
            assert!(
                series.contains(&name) || SYNTHETIC.contains(&name.as_str()),
                "{name} (in {expr}) is not in the scrape"
            );
            queried.insert(name);
        }
    }
    // The dashboard and the alerts cover each part of the node.
    for prefix in [
        "melo_http_",
        "melo_ws_",
        "melo_messages_",
        "melo_store_",
        "melo_ephemeral_",
        "melo_bus_dropped",
        "melo_bus_gaps",
        "melo_bus_message_age",
        "process_",
    ] {
        assert!(
            queried.iter().any(|q| q.starts_with(prefix)),
            "nothing queries {prefix}*"
        );
    }

    // Every metric served is documented, and every documented one is served.
    let listed = documented();
    for name in families.keys() {
        assert!(listed.contains(name), "{name} is not in docs/metrics.md");
    }
    for name in &listed {
        let served = families.contains_key(name);
        let elsewhere = name.starts_with("process_") && !cfg!(target_os = "linux");
        assert!(
            served || elsewhere,
            "docs/metrics.md lists {name}, not served"
        );
    }
    // And every alert of the rules file is explained there.
    for line in ALERTS.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                DOC.contains(&format!("| `{name}` |")),
                "alert {name} is not in docs/metrics.md"
            );
        }
    }
    wa.ack_and_close().await;
    wb.ack_and_close().await;
    s.stop().await;
}
