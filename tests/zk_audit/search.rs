//! The search: every plaintext the workload gave the server (or got from it) against every
//! dumped entry, ASCII case-insensitively. A hit names the needle and the place.

use std::collections::HashMap;

use super::dump::Entry;

/// Needles are at least this long (and ASCII), so the search can index their prefixes.
const MIN_LEN: usize = 6;

/// A plaintext that must not appear, with what it is.
#[derive(Clone, Debug)]
pub struct Needle {
    pub label: String,
    pub text: String,
}

/// The plaintexts to look for.
#[derive(Default, Debug)]
pub struct Needles(Vec<Needle>);

impl Needles {
    /// Adds `text` (trimmed; ASCII of at least [`MIN_LEN`] bytes) under `label`.
    pub fn add(&mut self, label: impl Into<String>, text: impl AsRef<str>) {
        let (label, text) = (label.into(), text.as_ref().trim().to_owned());
        assert!(
            text.is_ascii() && text.len() >= MIN_LEN,
            "needle {label} = {text:?}: ASCII, ≥ {MIN_LEN} bytes"
        );
        if !self.0.iter().any(|n| n.text.eq_ignore_ascii_case(&text)) {
            self.0.push(Needle { label, text });
        }
    }

    /// A Russian mobile number `+7XXXXXXXXXX` in every form a client might send or a careless
    /// server might keep: E.164, without `+`, national `8…`, formatted, and the last 10 digits.
    pub fn phone(&mut self, label: &str, e164: &str) {
        let d = e164.strip_prefix("+7").expect("a +7 phone");
        assert_eq!(d.len(), 10, "{e164}");
        let (a, b, c, e) = (&d[..3], &d[3..6], &d[6..8], &d[8..]);
        self.add(format!("{label} phone (E.164)"), e164);
        self.add(format!("{label} phone (digits)"), format!("7{d}"));
        self.add(format!("{label} phone (national)"), format!("8{d}"));
        self.add(format!("{label} phone (last 10 digits)"), d);
        for f in [
            format!("8 ({a}) {b}-{c}-{e}"),
            format!("+7 ({a}) {b}-{c}-{e}"),
            format!("+7 {a} {b}-{c}-{e}"),
            format!("+7 {a} {b} {c} {e}"),
            format!("8-{a}-{b}-{c}-{e}"),
            format!("{a}-{b}-{c}-{e}"),
            format!("{a} {b} {c} {e}"),
        ] {
            self.add(format!("{label} phone (formatted)"), f);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Every occurrence of every needle in `entries`: "label "text" in place at byte N".
pub fn find(entries: &[Entry], needles: &Needles) -> Vec<String> {
    // Needles by their lowercase first MIN_LEN bytes: one hash probe per haystack position.
    let mut by_prefix: HashMap<Vec<u8>, Vec<(Vec<u8>, &Needle)>> = HashMap::new();
    for n in &needles.0 {
        let lower = n.text.to_ascii_lowercase().into_bytes();
        by_prefix
            .entry(lower[..MIN_LEN].to_vec())
            .or_default()
            .push((lower, n));
    }
    let mut hits = Vec::new();
    for e in entries {
        let hay = e.bytes.to_ascii_lowercase();
        for at in 0..hay.len().saturating_sub(MIN_LEN - 1) {
            let Some(cands) = by_prefix.get(&hay[at..at + MIN_LEN]) else {
                continue;
            };
            for (lower, n) in cands {
                if hay[at..].starts_with(lower) {
                    hits.push(format!(
                        "{} {:?} in {} at byte {at}",
                        n.label, n.text, e.place
                    ));
                }
            }
        }
    }
    hits
}

/// Does `text` (ASCII, case-insensitive) occur in `entries`?
pub fn contains(entries: &[Entry], text: &str) -> bool {
    let mut one = Needles::default();
    one.add("proof", text);
    !find(entries, &one).is_empty()
}

/// `Ok(summary)` when no needle occurs in `entries`, else `Err` listing every hit (`what`
/// names the dump).
pub fn check(what: &str, entries: &[Entry], needles: &Needles) -> Result<String, String> {
    let bytes: usize = entries.iter().map(|e| e.bytes.len()).sum();
    let (n, hits) = (entries.len(), find(entries, needles));
    if hits.is_empty() {
        let k = needles.len();
        Ok(format!(
            "{what}: {k} needles, {n} entries, {bytes} bytes: clean"
        ))
    } else {
        Err(format!(
            "{what}: {} plaintext occurrence(s) in {n} entries ({bytes} bytes):\n  {}",
            hits.len(),
            hits.join("\n  ")
        ))
    }
}

/// Panics listing every hit of `needles` in `entries`.
pub fn assert_clean(what: &str, entries: &[Entry], needles: &Needles) {
    match check(what, entries, needles) {
        Ok(summary) => eprintln!("{summary}"),
        Err(failure) => panic!("{failure}"),
    }
}
