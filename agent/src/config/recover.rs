//! Every structural error of a site file in one pass. Serde stops at the first wrong type or
//! unknown key, so each offending key is taken out and the rest parsed again. A required key
//! taken out for its wrong type would then be "missing": it gets a placeholder of the type serde
//! expected instead, so the rest of its table is still checked, and the semantic errors of the
//! placeholder itself (an empty source that names no file) are dropped. The config comes back
//! once what remains parses, so that `canh check` lists its semantic errors too.

use serde_path_to_error::Segment;
use toml::de::{DeTable, DeValue};

use super::SiteConfig;
use crate::check::ConfigError;

/// Listing stops after this many structural errors: a file this broken is probably not a site
/// file at all.
const MAX_STRUCTURAL_ERRORS: usize = 50;
/// Parses of what remains, at most (each takes a key out or puts a placeholder in).
const MAX_PASSES: usize = 4 * MAX_STRUCTURAL_ERRORS;

/// What parsing a site file found.
pub struct Parsed {
    /// The config without the keys that could not be read (placeholders for required ones),
    /// when what remains parses.
    pub config: Option<SiteConfig>,
    /// The structural errors, in file order.
    pub errors: Vec<ConfigError>,
    /// Key paths given placeholders: errors about them say nothing of the file.
    pub placeholders: Vec<String>,
}

/// `errors` less those about a placeholder.
pub fn without_placeholders(errors: Vec<ConfigError>, placeholders: &[String]) -> Vec<ConfigError> {
    errors.into_iter().filter(|e| !placeholders.iter().any(|p| e.path == *p || e.path.starts_with(&format!("{p}.")) || e.path.starts_with(&format!("{p}[")))).collect()
}

pub fn parse_all(text: &str) -> Parsed {
    let mut document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(e) => return Parsed { config: None, errors: vec![ConfigError::from_toml(&e, text, "")], placeholders: Vec::new() },
    };
    // (offset in the file, error), to list them in file order: serde meets a table's keys sorted.
    let mut errors: Vec<(usize, ConfigError)> = Vec::new();
    // Keys taken out: key path, the type serde expected there, and the path's segments.
    let mut removed: Vec<(String, String, Vec<Segment>)> = Vec::new();
    let mut placeholders = Vec::new();
    let done = |errors: Vec<(usize, ConfigError)>, config, placeholders| {
        let mut errors = errors;
        errors.sort_by_key(|(at, _)| *at);
        let mut errors: Vec<ConfigError> = errors.into_iter().map(|(_, e)| e).collect();
        if errors.len() >= MAX_STRUCTURAL_ERRORS {
            errors.push(ConfigError::new("", format!("… and more: listing stops after {MAX_STRUCTURAL_ERRORS} structural errors")));
        }
        Parsed { config, errors, placeholders }
    };
    for _ in 0..MAX_PASSES {
        if errors.len() >= MAX_STRUCTURAL_ERRORS {
            break;
        }
        let e = match serde_path_to_error::deserialize(toml::Deserializer::from(document.clone())) {
            Ok(config) => return done(errors, Some(config), placeholders),
            Err(e) => e,
        };
        let path = key_path(e.path().iter());
        let message = e.inner().message();
        let segments: Vec<Segment> = e.path().iter().cloned().collect();
        // A required key taken out for its wrong type is missing now: already reported. It gets
        // a placeholder of the type serde expected, or failing that its table is taken out too.
        let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()).map(|field| join(&path, field));
        let reported = missing.and_then(|m| removed.iter().find(|(k, _, _)| *k == m)).cloned();
        if let Some((key, expected, at)) = reported {
            if placeholder(&expected).and_then(|value| put_back(document.get_mut(), &at, value)).is_some() {
                placeholders.push(key);
                continue;
            }
        } else if !placeholders.contains(&path) {
            // (A placeholder serde refuses, an enum's, says nothing of the file.)
            errors.push((e.inner().span().map_or(0, |s| s.start), ConfigError::from_toml(e.inner(), text, &path)));
        }
        // The type expected of the key itself, not of an element of its array.
        let expected = match segments.last() {
            Some(Segment::Seq { .. }) => String::new(),
            _ => message.split_once(", expected ").map_or("", |(_, x)| x).to_string(),
        };
        match take_out(document.get_mut(), &segments) {
            Some(key) => removed.push((key, expected, segments)),
            None => break,
        }
    }
    done(errors, None, placeholders)
}

/// `parent.key`, or `key` at the top.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// `cameras[1].lines[0].p1` of a path.
fn key_path<'a>(segments: impl Iterator<Item = &'a Segment>) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => out = join(&out, key),
            _ => {}
        }
    }
    out
}

/// A value of the type serde expected (its words: "a string", "u32", "f32", "a boolean", "a
/// sequence"), or `None` for any other.
fn placeholder(expected: &str) -> Option<toml::Spanned<DeValue<'static>>> {
    let literal = match expected {
        "a string" => "\"\"",
        "a boolean" => "false",
        "a sequence" => "[]",
        x if ["u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize"].contains(&x) => "0",
        "f32" | "f64" => "0.0",
        _ => return None,
    };
    DeValue::parse(literal).ok()
}

/// The table holding the key at `path` (for a path into an array, the key holding the array),
/// and that key.
fn parent<'d, 'i>(document: &'d mut DeTable<'i>, path: &[Segment]) -> Option<(&'d mut DeTable<'i>, String)> {
    let (Segment::Map { key }, parents) = key_of(path).split_last()? else { return None };
    let Some((Segment::Map { key: top }, rest)) = parents.split_first() else {
        return if parents.is_empty() { Some((document, key.clone())) } else { None };
    };
    let mut value: &mut DeValue<'i> = document.get_mut(top.as_str())?.get_mut();
    for segment in rest {
        value = match (segment, value) {
            (Segment::Map { key }, DeValue::Table(t)) => t.get_mut(key.as_str())?.get_mut(),
            (Segment::Seq { index }, DeValue::Array(a)) => a.get_mut(*index)?.get_mut(),
            _ => return None,
        };
    }
    match value {
        DeValue::Table(t) => Some((t, key.clone())),
        _ => None,
    }
}

/// Takes the key at `path` out of `document`; returns its key path, or `None` when the path
/// names no key (an error about a whole table, such as a missing field).
fn take_out(document: &mut DeTable<'_>, path: &[Segment]) -> Option<String> {
    let (table, key) = parent(document, path)?;
    table.remove(key.as_str())?;
    Some(key_path(key_of(path).iter()))
}

/// `path` up to the key it is in: without the array indices it ends with.
fn key_of(mut path: &[Segment]) -> &[Segment] {
    while let Some((Segment::Seq { .. }, rest)) = path.split_last() {
        path = rest;
    }
    path
}

/// Puts `value` back at `path` (a key [`take_out`] took out) in `document`.
fn put_back<'i>(document: &mut DeTable<'i>, path: &[Segment], value: toml::Spanned<DeValue<'i>>) -> Option<()> {
    let (table, key) = parent(document, path)?;
    table.insert(toml::Spanned::new(0..0, key.into()), value);
    Some(())
}
