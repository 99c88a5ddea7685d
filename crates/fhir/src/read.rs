//! Streaming readers for FHIR R4 Bulk Data NDJSON and Bundle JSON.
//!
//! Both read in constant memory whatever the input size: NDJSON one line at a
//! time (a line over [`Options::max_record_bytes`] is skipped without being
//! buffered), a Bundle one `entry` at a time. Every item comes with its
//! [`Location`] (file and line, or file and entry), and a bad record is an
//! [`Item`] carrying a [`ReadError`], never the end of the file: the caller
//! reports it and goes on with the next one. Only an I/O failure stops a
//! file.
//!
//! Error messages never quote the input: a record's content may be PHI, and
//! errors are logged.

use crate::Resource;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Reader limits.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The longest NDJSON line accepted, in bytes. Longer lines are reported
    /// and skipped.
    pub max_record_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_record_bytes: 4 << 20,
        }
    }
}

/// Where an item was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: Arc<Path>,
    /// The position in it.
    pub at: Position,
}

/// A position in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The whole file.
    File,
    /// A 1-based NDJSON line.
    Line(u64),
    /// A 1-based Bundle entry.
    Entry(u64),
    /// A line and column in a JSON document (where a parse error was found).
    LineColumn(u64, u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match self.at {
            Position::File => write!(f, "{file}"),
            Position::Line(l) => write!(f, "{file}:{l}"),
            Position::Entry(e) => write!(f, "{file}: entry {e}"),
            Position::LineColumn(l, c) => write!(f, "{file}:{l}:{c}"),
        }
    }
}

/// What was read at one location.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A resource to store (create or update).
    Resource(Resource),
    /// A Bundle `DELETE` request.
    Delete {
        /// The resource type.
        resource_type: String,
        /// The resource id.
        id: String,
    },
}

/// One item: an entry, or why there is none at that location.
#[derive(Debug)]
pub struct Item {
    /// Where.
    pub location: Location,
    /// What.
    pub result: Result<Entry, ReadError>,
}

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Not valid JSON.
    #[error("malformed JSON at column {column}: {message}")]
    Json {
        /// Column within the line (NDJSON) or document.
        column: u64,
        /// serde_json's description, which never quotes the input.
        message: String,
    },
    /// The file ended in the middle of a record.
    #[error("truncated: the file ends in the middle of a record")]
    Truncated,
    /// Not UTF-8.
    #[error("invalid UTF-8 at byte {offset} of the record")]
    Utf8 {
        /// Byte offset within the line.
        offset: usize,
    },
    /// Over the size limit.
    #[error("record is {length} bytes, over the {limit}-byte limit (skipped)")]
    TooLong {
        /// The record's length.
        length: u64,
        /// The limit.
        limit: usize,
    },
    /// A JSON value that is not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// No `resourceType`, or not a string.
    #[error("resourceType: required (a string)")]
    MissingResourceType,
    /// A resource of another type than the file holds.
    #[error("resourceType is {found:?}, but this file holds {expected} resources")]
    WrongResourceType {
        /// What the record says.
        found: String,
        /// What the file name says.
        expected: String,
    },
    /// A Bundle entry that is neither a resource nor a DELETE request.
    #[error("bundle entry has no resource and no DELETE request")]
    EmptyEntry,
    /// A JSON document that is not a Bundle and not a single resource.
    #[error("{0}")]
    Document(String),
}

/// Why a whole file could not be read (the items before the failure were
/// delivered).
#[derive(Debug, thiserror::Error)]
pub enum FileError<E> {
    /// Opening or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The callback asked to stop.
    #[error(transparent)]
    Stopped(E),
}

/// The formats this module reads, decided by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.ndjson`, `.jsonl`: one resource per line (FHIR Bulk Data).
    Ndjson,
    /// `.json`: a Bundle, or a single resource.
    Json,
}

impl Format {
    /// The format of a file, by extension; `None` if it is neither.
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Expands the paths the user named into the files to read: files as given,
/// directories walked recursively for `.ndjson`, `.jsonl` and `.json` files,
/// sorted by path so a run is repeatable.
pub fn expand(paths: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if Format::of(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads one file, calling `sink` for every item in order. Returns the
/// callback's error if it asked to stop.
pub fn read_file<E>(
    path: &Path,
    options: &Options,
    sink: &mut dyn FnMut(Item) -> Result<(), E>,
) -> Result<(), FileError<E>> {
    let io_err = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let reader = BufReader::with_capacity(256 << 10, file);
    let shared: Arc<Path> = Arc::from(path);
    match Format::of(path) {
        Some(Format::Json) => read_json(reader, shared, sink),
        _ => read_ndjson(reader, shared, expected_type(path), options, sink),
    }
}

/// The resource type a Bulk Data file name promises (`Patient.ndjson`,
/// `Patient.002.ndjson` → `Patient`), if it promises one.
pub fn expected_type(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem: String = name
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let rest = &name[stem.len()..];
    let promised = stem.len() >= 3
        && stem.starts_with(|c: char| c.is_ascii_uppercase())
        && (rest.starts_with('.') || rest.starts_with('-') || rest.starts_with('_'));
    promised.then_some(stem)
}

/// Reads NDJSON from `reader`; see [`read_file`].
pub fn read_ndjson<E>(
    mut reader: impl BufRead,
    file: Arc<Path>,
    expected: Option<String>,
    options: &Options,
    sink: &mut dyn FnMut(Item) -> Result<(), E>,
) -> Result<(), FileError<E>> {
    let io_err = |source| FileError::Io {
        path: file.to_path_buf(),
        source,
    };
    let mut line_no = 0u64;
    let mut buf = Vec::with_capacity(8 << 10);
    loop {
        buf.clear();
        let Some(line) =
            next_line(&mut reader, &mut buf, options.max_record_bytes).map_err(io_err)?
        else {
            return Ok(());
        };
        line_no += 1;
        let location = Location {
            file: file.clone(),
            at: Position::Line(line_no),
        };
        let result = match line {
            Line::TooLong(length) => Err(ReadError::TooLong {
                length,
                limit: options.max_record_bytes,
            }),
            Line::Complete { newline } => {
                let mut bytes = buf.as_slice();
                if line_no == 1 {
                    bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
                }
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                parse_line(bytes, newline, expected.as_deref()).map(Entry::Resource)
            }
        };
        sink(Item { location, result }).map_err(FileError::Stopped)?;
    }
}

enum Line {
    Complete { newline: bool },
    TooLong(u64),
}

/// Reads one line into `buf` (without its newline), never buffering more
/// than `limit` bytes.
fn next_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Option<Line>> {
    let mut total: u64 = 0;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(match (total, too_long) {
                (0, _) => None,
                (n, true) => Some(Line::TooLong(n)),
                (_, false) => Some(Line::Complete { newline: false }),
            });
        }
        let (chunk, found) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        let n = chunk.len();
        total += n as u64;
        if !too_long {
            if buf.len() + n > limit {
                too_long = true;
                *buf = Vec::new();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(n + usize::from(found));
        if found {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(if too_long {
                Line::TooLong(total)
            } else {
                Line::Complete { newline: true }
            }));
        }
    }
}

fn parse_line(bytes: &[u8], newline: bool, expected: Option<&str>) -> Result<Resource, ReadError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(ReadError::Utf8 {
            offset: e.valid_up_to(),
        });
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_eof() && !newline {
            ReadError::Truncated
        } else {
            json_error(&e)
        }
    })?;
    let Value::Object(resource) = value else {
        return Err(ReadError::NotAnObject);
    };
    check_type(&resource, expected)?;
    Ok(resource)
}

fn json_error(e: &serde_json::Error) -> ReadError {
    // serde_json's Display appends " at line L column C"; keep the message
    // alone (it never contains input text) and report the column ourselves.
    let full = e.to_string();
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m)
        .to_string();
    ReadError::Json {
        column: e.column() as u64,
        message,
    }
}

fn check_type(resource: &Resource, expected: Option<&str>) -> Result<(), ReadError> {
    let Some(Value::String(found)) = resource.get("resourceType") else {
        return Err(ReadError::MissingResourceType);
    };
    match expected {
        Some(expected) if expected != found => Err(ReadError::WrongResourceType {
            found: found.clone(),
            expected: expected.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Reads a JSON document: a Bundle, streamed entry by entry, or a single
/// resource.
pub fn read_json<E>(
    reader: impl Read,
    file: Arc<Path>,
    sink: &mut dyn FnMut(Item) -> Result<(), E>,
) -> Result<(), FileError<E>> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut state = BundleState {
        file: file.clone(),
        sink,
        entries: 0,
        stopped: None,
    };
    let result = (&mut de).deserialize_map(BundleVisitor(&mut state));
    let result = result.and_then(|top| de.end().map(|()| top));
    if let Some(e) = state.stopped {
        return Err(FileError::Stopped(e));
    }
    let sink = state.sink;
    match result {
        Ok(top) => {
            let location = Location {
                file: file.clone(),
                at: Position::File,
            };
            match top.resource_type.as_deref() {
                Some("Bundle") => Ok(()),
                _ if state.entries > 0 => sink(Item {
                    location,
                    result: Err(ReadError::Document(
                        "a document with `entry` elements must be a Bundle".into(),
                    )),
                })
                .map_err(FileError::Stopped),
                Some(_) => sink(Item {
                    location,
                    result: Ok(Entry::Resource(top.rest)),
                })
                .map_err(FileError::Stopped),
                None => sink(Item {
                    location,
                    result: Err(ReadError::MissingResourceType),
                })
                .map_err(FileError::Stopped),
            }
        }
        Err(e) if e.is_io() => Err(FileError::Io {
            path: file.to_path_buf(),
            source: io::Error::other(e.to_string()),
        }),
        Err(e) => {
            let location = Location {
                file: file.clone(),
                at: Position::LineColumn(e.line() as u64, e.column() as u64),
            };
            let err = if e.is_eof() {
                ReadError::Truncated
            } else {
                json_error(&e)
            };
            sink(Item {
                location,
                result: Err(err),
            })
            .map_err(FileError::Stopped)
        }
    }
}

struct BundleState<'s, E> {
    file: Arc<Path>,
    sink: &'s mut dyn FnMut(Item) -> Result<(), E>,
    entries: u64,
    stopped: Option<E>,
}

struct TopLevel {
    resource_type: Option<String>,
    rest: Resource,
}

struct BundleVisitor<'a, 's, E>(&'a mut BundleState<'s, E>);

impl<'de, E> Visitor<'de> for BundleVisitor<'_, '_, E> {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a FHIR Bundle or resource (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut top = TopLevel {
            resource_type: None,
            rest: Resource::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            if key == "entry" {
                map.next_value_seed(EntriesSeed(&mut *self.0))?;
                continue;
            }
            let value: Value = map.next_value()?;
            if key == "resourceType" {
                top.resource_type = value.as_str().map(str::to_string);
            }
            top.rest.insert(key, value);
        }
        Ok(top)
    }
}

struct EntriesSeed<'a, 's, E>(&'a mut BundleState<'s, E>);

impl<'de, E> DeserializeSeed<'de> for EntriesSeed<'_, '_, E> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, E> Visitor<'de> for EntriesSeed<'_, '_, E> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of Bundle entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.0;
        loop {
            if state.stopped.is_some() {
                // Drain without delivering anything more.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(());
            }
            let Some(entry) = seq.next_element::<Value>()? else {
                return Ok(());
            };
            state.entries += 1;
            let item = Item {
                location: Location {
                    file: state.file.clone(),
                    at: Position::Entry(state.entries),
                },
                result: bundle_entry(entry),
            };
            if let Err(e) = (state.sink)(item) {
                state.stopped = Some(e);
            }
        }
    }
}

fn bundle_entry(entry: Value) -> Result<Entry, ReadError> {
    let Value::Object(mut entry) = entry else {
        return Err(ReadError::NotAnObject);
    };
    let method = entry
        .get("request")
        .and_then(|r| r.get("method"))
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase);
    if method.as_deref() == Some("DELETE") {
        let url = entry
            .get("request")
            .and_then(|r| r.get("url"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut parts = url.trim_start_matches('/').split(['/', '?']);
        return match (parts.next(), parts.next()) {
            (Some(ty), Some(id)) if !ty.is_empty() && !id.is_empty() => Ok(Entry::Delete {
                resource_type: ty.to_string(),
                id: id.to_string(),
            }),
            _ => Err(ReadError::Document(
                "DELETE request.url must be Type/id (conditional deletes are not supported)".into(),
            )),
        };
    }
    match entry.remove("resource") {
        Some(Value::Object(resource)) => {
            check_type(&resource, None)?;
            Ok(Entry::Resource(resource))
        }
        Some(_) => Err(ReadError::NotAnObject),
        None => Err(ReadError::EmptyEntry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_ndjson(
        input: &[u8],
        expected: Option<&str>,
        limit: usize,
    ) -> Vec<(Position, Result<Entry, ReadError>)> {
        let mut out = Vec::new();
        read_ndjson::<()>(
            input,
            Arc::from(Path::new("t.ndjson")),
            expected.map(str::to_string),
            &Options {
                max_record_bytes: limit,
            },
            &mut |item| {
                out.push((item.location.at, item.result));
                Ok(())
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn ndjson_errors_are_located_and_do_not_stop_the_file() {
        let mut input = Vec::new();
        input.extend_from_slice(b"{\"resourceType\":\"Patient\",\"id\":\"a\"}\n");
        input.extend_from_slice(b"{\"resourceType\":\"Patient\",\"id\":\n");
        input.extend_from_slice(b"\n");
        input.extend_from_slice(b"{\"resourceType\":\"Observation\",\"id\":\"o\"}\r\n");
        input.extend_from_slice(b"{\"resourceType\":\"Patient\",\"id\":\"\xff\"}\n");
        input.extend_from_slice(&[b'x'; 200]);
        input.extend_from_slice(b"\n[1]\n{\"id\":\"x\"}\n");
        input.extend_from_slice(b"{\"resourceType\":\"Patient\",\"id\":\"b\"}\n");
        input.extend_from_slice(b"{\"resourceType\":\"Patient\",\"id\":\"c\"");
        let items = collect_ndjson(&input, Some("Patient"), 100);
        let at: Vec<Position> = items.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            at,
            [1, 2, 4, 5, 6, 7, 8, 9, 10].map(Position::Line).to_vec()
        );
        assert!(matches!(items[0].1, Ok(Entry::Resource(_))));
        assert!(matches!(items[1].1, Err(ReadError::Json { .. })));
        assert!(matches!(
            items[2].1,
            Err(ReadError::WrongResourceType { .. })
        ));
        assert!(matches!(items[3].1, Err(ReadError::Utf8 { offset: 32 })));
        assert!(matches!(
            items[4].1,
            Err(ReadError::TooLong {
                length: 200,
                limit: 100
            })
        ));
        assert!(matches!(items[5].1, Err(ReadError::NotAnObject)));
        assert!(matches!(items[6].1, Err(ReadError::MissingResourceType)));
        assert!(matches!(items[7].1, Ok(Entry::Resource(_))));
        assert!(matches!(items[8].1, Err(ReadError::Truncated)));
    }

    #[test]
    fn last_line_without_newline_is_accepted_when_complete() {
        let items = collect_ndjson(b"{\"resourceType\":\"Patient\"}", None, 100);
        assert!(matches!(items[0].1, Ok(Entry::Resource(_))));
    }

    fn collect_json(input: &str) -> Vec<(Position, Result<Entry, ReadError>)> {
        let mut out = Vec::new();
        read_json::<()>(
            input.as_bytes(),
            Arc::from(Path::new("b.json")),
            &mut |item| {
                out.push((item.location.at, item.result));
                Ok(())
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn bundles_stream_entries_and_deletes() {
        let items = collect_json(
            r#"{"resourceType":"Bundle","type":"transaction","entry":[
                {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"1"},"request":{"method":"PUT","url":"Patient/1"}},
                {"request":{"method":"DELETE","url":"Patient/2"}},
                {"fullUrl":"x"},
                {"resource":{"id":"3"}}
            ]}"#,
        );
        assert_eq!(items.len(), 4);
        assert!(
            matches!(&items[0], (Position::Entry(1), Ok(Entry::Resource(r))) if r["id"] == "1")
        );
        assert!(
            matches!(&items[1], (Position::Entry(2), Ok(Entry::Delete { id, .. })) if id == "2")
        );
        assert!(matches!(items[2].1, Err(ReadError::EmptyEntry)));
        assert!(matches!(items[3].1, Err(ReadError::MissingResourceType)));
    }

    #[test]
    fn single_resource_documents_and_truncated_bundles() {
        let items = collect_json(r#"{"resourceType":"Patient","id":"1"}"#);
        assert!(matches!(&items[0], (Position::File, Ok(Entry::Resource(r))) if r["id"] == "1"));
        let items = collect_json(
            r#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"1"}},{"resou"#,
        );
        assert_eq!(items.len(), 2);
        assert!(matches!(items[0].1, Ok(Entry::Resource(_))));
        assert!(matches!(
            items[1],
            (Position::LineColumn(..), Err(ReadError::Truncated))
        ));
    }

    #[test]
    fn expected_types_from_bulk_file_names() {
        assert_eq!(
            expected_type(Path::new("x/Patient.ndjson")).as_deref(),
            Some("Patient")
        );
        assert_eq!(
            expected_type(Path::new("MedicationRequest.002.ndjson")).as_deref(),
            Some("MedicationRequest")
        );
        assert_eq!(expected_type(Path::new("export.ndjson")), None);
        assert_eq!(expected_type(Path::new("Pat")), None);
    }
}
