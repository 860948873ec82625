//! Records from CSV or JSON lines as `Record` envelopes, one per row, keyed by a column the
//! user names (e.g. `customer_id`). Parsing only: the caller opens the file or stdin and hands
//! over a reader (`argus_producer::records::open` for `argus produce`, the test-set reader of
//! `argus model evaluate`), so both read rows by the same rules. Streaming: rows are read as
//! they are sent, so a file of any size (or an endless pipe) works in bounded memory.
//!
//! Rules, in one place:
//! - **CSV** needs a header row; column names are trimmed and must be unique. An empty field
//!   is null. Each column has a type: declared (`--type col=int`), else inferred from the
//!   first `infer_rows` rows by the rule of [`crate::columns`] (shared with the drift
//!   profiler): `bool`, `int`, `float` (a column at least 90 % numbers stays numeric, its
//!   other values are bad rows, so one typo cannot turn it into text) or `text`. A later
//!   decimal in an inferred `int` column is sent as a float.
//!   The inference rows are read before the first row is sent: for a slow pipe, declare
//!   the types or lower `infer_rows`.
//! - **JSON lines**: one object per line, blank lines skipped; values keep their JSON type
//!   (integer literal → int, other numbers → float, string → text, boolean, null); a declared
//!   type converts (a string `"12"` declared `int` becomes 12). Nested arrays or objects are
//!   bad rows.
//! - **Key**: the key column's value (as text) is the Kafka key and the envelope's source id;
//!   it stays in the record too. A row without a key is a bad row.
//! - **Bad rows** (wrong number of fields, a value that does not fit its column's type, bad
//!   JSON, no key) are reported with their line number (the header is line 1); the produce
//!   loop skips them or stops, as the user chose. Nothing is dropped silently.
//! - The envelope's `sequence` counts the rows read without error (0-based; bad rows do not
//!   count), its capture time is the moment the row was read.
use crate::{
    infer_column_type, ColumnType, Envelope, Field, Payload, Record, Value, SCHEMA_VERSION,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

/// Input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl std::str::FromStr for RecordFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(RecordFormat::Csv),
            "jsonl" | "ndjson" | "json" => Ok(RecordFormat::Jsonl),
            other => Err(format!("unknown format {other:?}; use csv or jsonl")),
        }
    }
}

/// Where records come from and how to read them.
#[derive(Debug, Clone)]
pub struct RecordsSource {
    /// The file; `None` reads stdin.
    pub path: Option<PathBuf>,
    /// CSV or JSON lines.
    pub format: RecordFormat,
    /// The key column.
    pub key: String,
    /// Declared column types (win over inference).
    pub types: Vec<(String, ColumnType)>,
    /// CSV rows read ahead to infer column types.
    pub infer_rows: usize,
}

impl RecordsSource {
    /// A source for `path` (`-` is stdin), format from `format` or the file's extension.
    pub fn new(path: &str, format: Option<RecordFormat>, key: &str) -> Result<Self, String> {
        let path = (path != "-").then(|| PathBuf::from(path));
        let format = match (format, &path) {
            (Some(f), _) => f,
            (None, Some(p)) => match p
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .as_deref()
            {
                Some("csv") => RecordFormat::Csv,
                Some("jsonl" | "ndjson") => RecordFormat::Jsonl,
                _ => {
                    return Err(format!(
                        "{}: cannot tell the format from the extension; name a .csv or .jsonl file or pass --format csv|jsonl",
                        p.display()
                    ))
                }
            },
            (None, None) => return Err("reading stdin needs --format csv|jsonl".into()),
        };
        if key.trim().is_empty() {
            return Err("--key must name the key column (e.g. --key customer_id)".into());
        }
        Ok(RecordsSource {
            path,
            format,
            key: key.trim().to_string(),
            types: Vec::new(),
            infer_rows: 1000,
        })
    }

    /// The file name, or `stdin`: how messages name the source.
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "stdin".into(), |p| p.display().to_string())
    }
}

/// A row that cannot be sent, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: line {line}: {message}")]
pub struct BadRow {
    /// The file name, or `stdin`.
    pub source_name: String,
    /// 1-based; the CSV header is line 1.
    pub line: u64,
    /// What is wrong with the row.
    pub message: String,
}

/// One row, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Line number (1-based; the CSV header is line 1).
    pub line: u64,
    /// The key column's value: the Kafka key and the envelope's source id.
    pub key: String,
    /// All the row's values, the key column included.
    pub record: Record,
}

enum Inner {
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        /// Rows read ahead for type inference, not yet handed out.
        ahead: std::collections::VecDeque<Result<csv::ByteRecord, BadRow>>,
        types: Vec<ColumnType>,
        key: usize,
    },
    Jsonl {
        lines: std::io::Lines<BufReader<Box<dyn Read + Send>>>,
        line: u64,
    },
}

/// Reads rows from a [`RecordsSource`].
pub struct RecordReader {
    source: RecordsSource,
    name: String,
    columns: Vec<String>,
    declared: HashMap<String, ColumnType>,
    inner: Inner,
}

impl std::fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader")
            .field("source", &self.name)
            .field("columns", &self.column_types())
            .finish_non_exhaustive()
    }
}

/// A CSV field (already trimmed, non-empty) as a value of type `t`.
fn convert(text: &str, t: ColumnType) -> Result<Value, String> {
    match t {
        ColumnType::Text => Ok(Value::Text(text.into())),
        ColumnType::Bool if text.eq_ignore_ascii_case("true") || text == "1" => {
            Ok(Value::Bool(true))
        }
        ColumnType::Bool if text.eq_ignore_ascii_case("false") || text == "0" => {
            Ok(Value::Bool(false))
        }
        ColumnType::Bool => Err(format!("{text:?} is not true or false")),
        ColumnType::Int => text
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("{text:?} is not a whole number")),
        ColumnType::Float => match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Value::Float(x)),
            _ => Err(format!("{text:?} is not a finite number")),
        },
    }
}

impl RecordReader {
    /// Reads `input` as the source's format; for CSV reads the header and the rows that
    /// types are inferred from. The source's path only names it in messages. Errors (exit 64
    /// material) say what to fix.
    pub fn from_reader(
        source: &RecordsSource,
        input: Box<dyn Read + Send>,
    ) -> Result<RecordReader, String> {
        let name = source.name();
        let declared: HashMap<String, ColumnType> = source.types.iter().cloned().collect();
        let (columns, inner) = match source.format {
            RecordFormat::Csv => Self::open_csv(source, &name, &declared, input)?,
            RecordFormat::Jsonl => (
                Vec::new(),
                Inner::Jsonl {
                    lines: BufReader::new(input).lines(),
                    line: 0,
                },
            ),
        };
        Ok(RecordReader {
            source: source.clone(),
            name,
            columns,
            declared,
            inner,
        })
    }

    fn open_csv(
        source: &RecordsSource,
        name: &str,
        declared: &HashMap<String, ColumnType>,
        input: Box<dyn Read + Send>,
    ) -> Result<(Vec<String>, Inner), String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(input);
        let header = reader
            .headers()
            .map_err(|e| format!("{name}: cannot read the header row: {e}"))?
            .clone();
        let columns: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
        if columns.is_empty() || columns.iter().all(String::is_empty) {
            return Err(format!(
                "{name}: no header row; the first line must name the columns"
            ));
        }
        let mut seen = HashMap::new();
        for (i, c) in columns.iter().enumerate() {
            if c.is_empty() {
                return Err(format!("{name}: header column {} has no name", i + 1));
            }
            if let Some(first) = seen.insert(c.as_str(), i + 1) {
                return Err(format!(
                    "{name}: column {c:?} appears twice in the header (columns {first} and {})",
                    i + 1
                ));
            }
        }
        let key = columns
            .iter()
            .position(|c| *c == source.key)
            .ok_or_else(|| {
                format!(
                    "{name}: the key column {:?} is not in the header; its columns are: {}",
                    source.key,
                    columns.join(", ")
                )
            })?;
        if let Some(unknown) = declared.keys().find(|d| !columns.contains(d)) {
            return Err(format!(
                "{name}: --type names column {unknown:?}, which is not in the header; its columns are: {}",
                columns.join(", ")
            ));
        }
        // Read ahead for inference.
        let mut ahead = std::collections::VecDeque::new();
        let mut record = csv::ByteRecord::new();
        while ahead.len() < source.infer_rows.max(1) {
            match reader.read_byte_record(&mut record) {
                Ok(true) => ahead.push_back(Ok(record.clone())),
                Ok(false) => break,
                Err(e) => ahead.push_back(Err(csv_bad_row(name, &e, 0))),
            }
        }
        let types = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if let Some(t) = declared.get(c) {
                    return *t;
                }
                if i == key {
                    return ColumnType::Text;
                }
                let values: Vec<&str> = ahead
                    .iter()
                    .filter_map(|r| r.as_ref().ok())
                    .filter(|r| r.len() == columns.len())
                    .filter_map(|r| r.get(i))
                    .filter_map(|b| std::str::from_utf8(b).ok())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .collect();
                infer_column_type(&values)
            })
            .collect();
        Ok((
            columns,
            Inner::Csv {
                reader,
                ahead,
                types,
                key,
            },
        ))
    }

    /// Column names and types (CSV; JSON lines carry their own types).
    pub fn column_types(&self) -> Vec<(String, ColumnType)> {
        match &self.inner {
            Inner::Csv { types, .. } => self.columns.iter().cloned().zip(types.clone()).collect(),
            Inner::Jsonl { .. } => Vec::new(),
        }
    }

    fn bad(&self, line: u64, message: impl Into<String>) -> BadRow {
        BadRow {
            source_name: self.name.clone(),
            line,
            message: message.into(),
        }
    }

    /// The next row, a bad row, or `None` at the end.
    pub fn next_row(&mut self) -> Option<Result<Row, BadRow>> {
        match &mut self.inner {
            Inner::Csv { .. } => self.next_csv(),
            Inner::Jsonl { .. } => self.next_jsonl(),
        }
    }

    fn next_csv(&mut self) -> Option<Result<Row, BadRow>> {
        let Inner::Csv {
            reader,
            ahead,
            types,
            key,
        } = &mut self.inner
        else {
            return None;
        };
        let next = match ahead.pop_front() {
            Some(r) => r,
            None => {
                let mut record = csv::ByteRecord::new();
                match reader.read_byte_record(&mut record) {
                    Ok(true) => Ok(record),
                    Ok(false) => return None,
                    Err(e) => Err(csv_bad_row(&self.name, &e, 0)),
                }
            }
        };
        let record = match next {
            Ok(r) => r,
            Err(bad) => return Some(Err(bad)),
        };
        let line = record.position().map_or(0, csv::Position::line);
        let (types, key) = (types.clone(), *key);
        Some(self.csv_row(&record, line, &types, key))
    }

    fn csv_row(
        &self,
        record: &csv::ByteRecord,
        line: u64,
        types: &[ColumnType],
        key: usize,
    ) -> Result<Row, BadRow> {
        if record.len() != self.columns.len() {
            return Err(self.bad(
                line,
                format!(
                    "this row has {} fields but the header has {}; every row needs one field per column (quote fields that contain commas)",
                    record.len(),
                    self.columns.len()
                ),
            ));
        }
        let mut fields = Vec::with_capacity(record.len());
        let mut key_value = None;
        for (i, raw) in record.iter().enumerate() {
            let column = &self.columns[i];
            let text = std::str::from_utf8(raw).map_err(|_| {
                self.bad(
                    line,
                    format!("column {column:?} is not valid UTF-8; save the file as UTF-8"),
                )
            })?;
            let t = text.trim();
            let value = if t.is_empty() {
                Value::Null
            } else if types[i] == ColumnType::Int && !self.declared.contains_key(column) {
                // Inferred from the first rows only: a later decimal is a float, not an
                // error (a model's float feature takes both).
                convert(t, ColumnType::Int)
                    .or_else(|e| convert(t, ColumnType::Float).map_err(|_| e))
                    .map_err(|e| {
                        self.bad(
                            line,
                            format!(
                                "column {column:?} (int): {e}; fix the value or declare the column's type with --type {column}=TYPE"
                            ),
                        )
                    })?
            } else {
                convert(t, types[i]).map_err(|e| {
                    self.bad(
                        line,
                        format!(
                            "column {column:?} ({}): {e}; fix the value or declare the column's type with --type {column}=TYPE",
                            types[i].as_str()
                        ),
                    )
                })?
            };
            if i == key {
                key_value = Some(t.to_string()).filter(|k| !k.is_empty());
            }
            fields.push(Field {
                name: column.as_str().into(),
                value,
            });
        }
        let key = key_value.ok_or_else(|| {
            self.bad(
                line,
                format!("the key column {:?} is empty", self.source.key),
            )
        })?;
        Ok(Row {
            line,
            key,
            record: Record { fields },
        })
    }

    fn next_jsonl(&mut self) -> Option<Result<Row, BadRow>> {
        loop {
            let Inner::Jsonl { lines, line } = &mut self.inner else {
                return None;
            };
            let text = lines.next()?;
            *line += 1;
            let line = *line;
            let text = match text {
                Ok(t) => t,
                Err(e) => return Some(Err(self.bad(line, format!("cannot read: {e}")))),
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(self.json_row(&text, line));
        }
    }

    fn json_row(&self, text: &str, line: u64) -> Result<Row, BadRow> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| {
                self.bad(
                    line,
                    format!("not a JSON object: {e} (one object per line)"),
                )
            })?;
        let mut fields = Vec::with_capacity(object.len());
        let mut key = None;
        for (name, v) in object {
            let value =
                crate::bare::json_value(&name, v).map_err(|e| self.bad(line, e.to_string()))?;
            let value = match (self.declared.get(&name), value) {
                (Some(t), Value::Text(s)) if *t != ColumnType::Text => {
                    let s = s.trim();
                    if s.is_empty() {
                        Value::Null
                    } else {
                        convert(s, *t).map_err(|e| {
                            self.bad(line, format!("field {name:?} ({}): {e}", t.as_str()))
                        })?
                    }
                }
                (Some(ColumnType::Float), Value::Int(i)) => Value::Float(i as f64),
                (_, v) => v,
            };
            if name == self.source.key {
                key = match &value {
                    Value::Text(s) => Some(s.to_string()),
                    Value::Int(i) => Some(i.to_string()),
                    _ => None,
                }
                // Blank like an empty CSV key field (found by fuzz_records_jsonl_*).
                .filter(|k| !k.trim().is_empty());
            }
            fields.push(Field {
                name: name.into(),
                value,
            });
        }
        let key = key.ok_or_else(|| {
            self.bad(
                line,
                format!(
                    "the key field {:?} is missing, blank, null or not a string or integer",
                    self.source.key
                ),
            )
        })?;
        Ok(Row {
            line,
            key,
            record: Record { fields },
        })
    }
}

fn csv_bad_row(name: &str, e: &csv::Error, fallback: u64) -> BadRow {
    BadRow {
        source_name: name.to_string(),
        line: e.position().map_or(fallback, csv::Position::line),
        message: e.to_string(),
    }
}

impl Row {
    /// The row as an envelope: source id = key, `sequence` = row index.
    pub fn envelope(&self, index: u64, capture_time_us: i64) -> Envelope {
        Envelope {
            schema_version: SCHEMA_VERSION,
            source_id: self.key.clone(),
            sequence: index,
            capture_time_us,
            payload: Payload::Record(self.record.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn open_bytes(src: &RecordsSource, text: &[u8]) -> Result<RecordReader, String> {
        RecordReader::from_reader(src, Box::new(std::io::Cursor::new(text.to_vec())))
    }

    fn reader(text: &str, ext: &str, types: &[(&str, ColumnType)]) -> (RecordReader, ()) {
        let mut src = RecordsSource::new(&format!("test{ext}"), None, "id").unwrap();
        src.types = types.iter().map(|(c, t)| ((*c).to_string(), *t)).collect();
        (open_bytes(&src, text.as_bytes()).unwrap(), ())
    }

    fn drain(r: &mut RecordReader) -> Vec<Result<Row, BadRow>> {
        std::iter::from_fn(|| r.next_row()).collect()
    }

    fn value<'a>(row: &'a Row, name: &str) -> &'a Value {
        &row.record
            .fields
            .iter()
            .find(|f| f.name == name)
            .unwrap()
            .value
    }

    #[test]
    fn csv_types_are_inferred_and_bad_rows_carry_their_line() {
        let text = "id,n,x,flag,region\n\
                    a,1,1.5,true,north\n\
                    b,2,2,FALSE,south\n\
                    c,ten,3.25,true,east\n\
                    d,4,,false,west\n\
                    e,5,1\n\
                    f,6,7.5,true,north\n\
                    g,7,8,false,north\n\
                    h,8,9,true,north\n\
                    i,9,1,true,north\n\
                    j,10,1,true,north\n\
                    k,11,1,true,north\n";
        let (mut r, _f) = reader(text, ".csv", &[]);
        let types: Vec<ColumnType> = r.column_types().into_iter().map(|(_, t)| t).collect();
        use ColumnType::*;
        assert_eq!(types, [Text, Int, Float, Bool, Text]);
        let rows = drain(&mut r);
        assert_eq!(rows.len(), 11);
        let bad: Vec<(u64, String)> = rows
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|b| (b.line, b.message.clone()))
            .collect();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(bad[0].0, 4);
        assert!(
            bad[0]
                .1
                .contains("column \"n\" (int): \"ten\" is not a whole number"),
            "{}",
            bad[0].1
        );
        assert_eq!(bad[1].0, 6);
        assert!(
            bad[1].1.contains("3 fields but the header has 5"),
            "{}",
            bad[1].1
        );
        let first = rows[0].as_ref().unwrap();
        assert_eq!(first.key, "a");
        assert_eq!(first.line, 2);
        assert_eq!(value(first, "n"), &Value::Int(1));
        assert_eq!(value(first, "x"), &Value::Float(1.5));
        assert_eq!(value(first, "flag"), &Value::Bool(true));
        assert_eq!(value(rows[3].as_ref().unwrap(), "x"), &Value::Null);
    }

    #[test]
    fn a_later_decimal_in_an_inferred_int_column_is_a_float() {
        let text = b"id,n\na,1\nb,2\nc,2.5\nd,x\n";
        let mut src = RecordsSource::new("t.csv", None, "id").unwrap();
        src.infer_rows = 2;
        let mut r = open_bytes(&src, text).unwrap();
        let rows = drain(&mut r);
        assert_eq!(value(rows[2].as_ref().unwrap(), "n"), &Value::Float(2.5));
        assert!(rows[3].as_ref().unwrap_err().message.contains("\"x\""));
        // Declared int: a decimal is a bad row.
        let (mut r, _f) = reader("id,n\na,1\nb,2.5\n", ".csv", &[("n", ColumnType::Int)]);
        let rows = drain(&mut r);
        assert!(rows[1].is_err());
    }

    #[test]
    fn declared_types_win_and_unknown_columns_are_refused() {
        let (mut r, _f) = reader("id,zip\na,01234\n", ".csv", &[("zip", ColumnType::Text)]);
        let row = r.next_row().unwrap().unwrap();
        assert_eq!(value(&row, "zip"), &Value::Text("01234".into()));
        let text = b"id,zip\na,1\n";
        let mut src = RecordsSource::new("t.csv", None, "id").unwrap();
        src.types = vec![("zipp".into(), ColumnType::Int)];
        let e = open_bytes(&src, text).unwrap_err();
        assert!(e.contains("\"zipp\"") && e.contains("id, zip"), "{e}");
        src.types.clear();
        src.key = "customer".into();
        let e = open_bytes(&src, text).unwrap_err();
        assert!(e.contains("key column \"customer\""), "{e}");
    }

    #[test]
    fn jsonl_keeps_json_types_and_reports_bad_lines() {
        let text = "{\"id\": \"a\", \"n\": 3, \"x\": 2.5, \"ok\": true, \"s\": \"12\"}\n\
                    \n\
                    {\"id\": \"b\", \"n\": [1]}\n\
                    not json\n\
                    {\"n\": 1}\n\
                    {\"id\": 7, \"n\": \"ten\"}\n";
        let (mut r, _f) = reader(text, ".jsonl", &[("s", ColumnType::Int)]);
        let rows = drain(&mut r);
        assert_eq!(rows.len(), 5);
        let a = rows[0].as_ref().unwrap();
        assert_eq!(value(a, "n"), &Value::Int(3));
        assert_eq!(value(a, "x"), &Value::Float(2.5));
        assert_eq!(value(a, "ok"), &Value::Bool(true));
        assert_eq!(value(a, "s"), &Value::Int(12));
        let lines: Vec<u64> = rows
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|b| b.line)
            .collect();
        assert_eq!(lines, [3, 4, 5]);
        // A string where the model wants a number passes through: the worker names it.
        let last = rows[4].as_ref().unwrap();
        assert_eq!(last.key, "7");
        assert_eq!(value(last, "n"), &Value::Text("ten".into()));
    }
}

/// Bounded fuzzing of the CSV and JSON-lines readers (proptest, fixed seed: the same
/// inputs every run; `PROPTEST_CASES` / `PROPTEST_RNG_SEED` run a longer campaign, see
/// docs/testing.md): any text reads as rows and bad rows without a panic or an endless
/// loop, and generated tables read back as the values written.
#[cfg(test)]
mod fuzz {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    fn fuzz_config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            rng_seed: RngSeed::Fixed(0x0A26_0005),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn source(format: RecordFormat, types: Vec<(String, ColumnType)>) -> RecordsSource {
        let mut s = RecordsSource::new("-", Some(format), "id").unwrap();
        s.types = types;
        s
    }

    /// Every row of `input`, with the invariants any row has: a bounded number of them
    /// (one per line at most, so no endless loop), a non-empty key that is the key field's
    /// text, and increasing line numbers.
    fn read_all(
        source: &RecordsSource,
        input: Vec<u8>,
    ) -> Result<Option<Vec<Result<Row, BadRow>>>, TestCaseError> {
        // CR, LF and CRLF all end a CSV line.
        let lines = input.iter().filter(|b| matches!(b, b'\n' | b'\r')).count() + 1;
        // The csv crate numbers a row after a CRLF one line short (BurntSushi/rust-csv#395,
        // open): line numbers are checked for LF-only input.
        let lf_only = !input.contains(&b'\r');
        let Ok(mut reader) =
            RecordReader::from_reader(source, Box::new(std::io::Cursor::new(input)))
        else {
            return Ok(None);
        };
        let mut rows = Vec::new();
        while let Some(row) = reader.next_row() {
            rows.push(row);
            prop_assert!(rows.len() <= lines + 1, "more rows than lines");
        }
        let mut last_line = 0;
        for row in rows.iter().flatten() {
            prop_assert!(!row.key.is_empty());
            prop_assert!(
                !lf_only || row.line > last_line,
                "line {} after {last_line}",
                row.line
            );
            last_line = row.line;
            let key = row.record.fields.iter().find(|f| f.name == "id").unwrap();
            match &key.value {
                Value::Text(t) => prop_assert_eq!(t, &row.key),
                Value::Int(i) => prop_assert_eq!(i.to_string(), row.key.clone()),
                other => return Err(TestCaseError::fail(format!("key value {other:?}"))),
            }
        }
        Ok(Some(rows))
    }

    fn column_type() -> impl Strategy<Value = ColumnType> {
        prop_oneof![
            Just(ColumnType::Bool),
            Just(ColumnType::Int),
            Just(ColumnType::Float),
            Just(ColumnType::Text),
        ]
    }

    /// Text as a CSV field keeps it: non-empty, no surrounding whitespace (fields are
    /// trimmed); commas, quotes and line breaks inside are quoted by the writer.
    fn text() -> impl Strategy<Value = String> {
        "[^\\s]([a-z ,\"\\n\u{e9}\u{1F600}]{0,10}[^\\s])?"
    }

    fn value_of(t: ColumnType) -> BoxedStrategy<Option<Value>> {
        let v: BoxedStrategy<Value> = match t {
            ColumnType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            ColumnType::Int => any::<i64>().prop_map(Value::Int).boxed(),
            ColumnType::Float => any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Value::Float)
                .boxed(),
            ColumnType::Text => text().prop_map(|t| Value::Text(t.into())).boxed(),
        };
        proptest::option::weighted(0.9, v).boxed()
    }

    /// A table: column names (the key `id` first), their types, and rows of values.
    type Table = (Vec<(String, ColumnType)>, Vec<(String, Vec<Option<Value>>)>);

    /// The fields a row of a [`Table`] reads back as: the key `id`, then its columns in
    /// order, a missing value null.
    fn expected_fields(
        key: &str,
        columns: &[(String, ColumnType)],
        values: &[Option<Value>],
    ) -> Vec<Field> {
        std::iter::once(Field {
            name: "id".into(),
            value: Value::Text(key.into()),
        })
        .chain(columns.iter().zip(values).map(|((name, _), v)| Field {
            name: name.as_str().into(),
            value: v.clone().unwrap_or(Value::Null),
        }))
        .collect()
    }

    fn table() -> impl Strategy<Value = Table> {
        proptest::collection::btree_map("[a-z][a-z0-9_]{0,6}", column_type(), 0..6)
            .prop_map(|m| {
                m.into_iter()
                    .filter(|(name, _)| name != "id")
                    .collect::<Vec<_>>()
            })
            .prop_flat_map(|columns| {
                let row = (
                    text(),
                    columns
                        .iter()
                        .map(|(_, t)| value_of(*t))
                        .collect::<Vec<_>>(),
                );
                (Just(columns), proptest::collection::vec(row, 0..12))
            })
    }

    fn csv_text(v: &Option<Value>, bool_style: bool) -> String {
        match v {
            None | Some(Value::Null) => String::new(),
            Some(Value::Bool(b)) if bool_style => (if *b { "1" } else { "0" }).into(),
            Some(Value::Bool(b)) => (if *b { "TRUE" } else { "false" }).into(),
            Some(Value::Int(i)) => i.to_string(),
            Some(Value::Float(x)) => x.to_string(),
            Some(Value::Text(t)) => t.to_string(),
        }
    }

    /// Regression (fuzz_records_jsonl_arbitrary_input): a blank key was sent as the Kafka
    /// key `" "`; like an empty CSV key field it is a bad row now.
    #[test]
    fn fuzz_records_regression_blank_json_key_is_a_bad_row() {
        let input = b"{\"id\": \" \", \"a\": 1}\n{\"id\": \" k \"}\n".to_vec();
        let mut r = RecordReader::from_reader(
            &source(RecordFormat::Jsonl, Vec::new()),
            Box::new(std::io::Cursor::new(input)),
        )
        .unwrap();
        let bad = r.next_row().unwrap().unwrap_err();
        assert_eq!(bad.line, 1);
        assert!(bad.message.contains("key field \"id\""), "{bad}");
        // Surrounding blanks of a real key stay, as JSON wrote them.
        assert_eq!(r.next_row().unwrap().unwrap().key, " k ");
    }

    proptest! {
        #![proptest_config(fuzz_config(1000))]

        /// Any bytes after a header, any column declared or inferred: rows or bad rows.
        #[test]
        fn fuzz_records_csv_arbitrary_input(
            header in prop_oneof![Just("id,a,b\n".to_owned()), "[a-z, \"]{0,12}\n?"],
            body in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                "([a-z0-9 .,\"-]{0,12}\r?\n){0,12}".prop_map(String::into_bytes),
            ],
            declare in proptest::option::of(column_type()),
            infer_rows in 1usize..4,
        ) {
            let types = declare.map(|t| vec![("a".to_owned(), t)]).unwrap_or_default();
            let mut s = source(RecordFormat::Csv, types);
            s.infer_rows = infer_rows;
            let mut input = header.into_bytes();
            input.extend_from_slice(&body);
            if let Some(rows) = read_all(&s, input)? {
                for row in rows.iter().flatten() {
                    prop_assert!(row.line >= 2, "a row before the header's line");
                }
            }
        }

        /// Any lines as JSON lines, a declared type or not: rows or bad rows.
        #[test]
        fn fuzz_records_jsonl_arbitrary_input(
            body in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                "(\\{(\"(id|a)\": ?(-?[0-9.e]{1,6}|\"[a-z0-9 ]{0,6}\"|true|null|\\[\\]),? ?){0,3}\\}?\n){0,8}"
                    .prop_map(String::into_bytes),
            ],
            declare in proptest::option::of(column_type()),
        ) {
            let types = declare.map(|t| vec![("a".to_owned(), t)]).unwrap_or_default();
            let lines = body.split(|b| *b == b'\n').count() as u64;
            if let Some(rows) = read_all(&source(RecordFormat::Jsonl, types), body)? {
                for bad in rows.iter().filter_map(|r| r.as_ref().err()) {
                    prop_assert!((1..=lines).contains(&bad.line), "{bad}");
                }
            }
        }

        /// A generated table written as CSV (the `csv` crate's writer, which quotes what
        /// needs quoting) reads back as the values written, with declared types.
        #[test]
        fn fuzz_records_csv_round_trip((columns, rows) in table(), bool_style in any::<bool>()) {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(std::iter::once("id").chain(columns.iter().map(|(n, _)| n.as_str())))
                .unwrap();
            for (key, values) in &rows {
                let fields: Vec<String> = std::iter::once(key.clone())
                    .chain(values.iter().map(|v| csv_text(v, bool_style)))
                    .collect();
                w.write_record(&fields).unwrap();
            }
            let input = w.into_inner().unwrap();
            let read = read_all(&source(RecordFormat::Csv, columns.clone()), input)?.unwrap();
            prop_assert_eq!(read.len(), rows.len());
            for (got, (key, values)) in read.into_iter().zip(&rows) {
                let got = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&got.key, key);
                let expected = expected_fields(key, &columns, values);
                prop_assert_eq!(got.record.fields, expected);
            }
        }

        /// Generated objects written as JSON lines read back with their JSON types.
        #[test]
        fn fuzz_records_jsonl_round_trip((columns, rows) in table()) {
            let mut input = Vec::new();
            for (key, values) in &rows {
                let mut object = serde_json::Map::new();
                object.insert("id".into(), key.clone().into());
                for ((name, _), v) in columns.iter().zip(values) {
                    let json = match v {
                        None | Some(Value::Null) => serde_json::Value::Null,
                        Some(Value::Bool(b)) => (*b).into(),
                        Some(Value::Int(i)) => (*i).into(),
                        Some(Value::Float(x)) => (*x).into(),
                        Some(Value::Text(t)) => t.as_str().into(),
                    };
                    object.insert(name.clone(), json);
                }
                serde_json::to_writer(&mut input, &object).unwrap();
                input.push(b'\n');
            }
            let read = read_all(&source(RecordFormat::Jsonl, Vec::new()), input)?.unwrap();
            prop_assert_eq!(read.len(), rows.len());
            for (got, (key, values)) in read.into_iter().zip(&rows) {
                let got = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&got.key, key);
                let mut expected = expected_fields(key, &columns, values);
                expected.sort_by(|a, b| a.name.cmp(&b.name));
                let mut fields = got.record.fields;
                fields.sort_by(|a, b| a.name.cmp(&b.name));
                prop_assert_eq!(fields, expected);
            }
        }
    }
}
