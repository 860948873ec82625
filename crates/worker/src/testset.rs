//! Fixed, labelled test sets for `argus model evaluate` ([`crate::evaluate`]), and their hash.
//!
//! - **Records**: a CSV or JSON-lines file (by extension) read by the same rules as
//!   `argus produce` ([`argus_wire::records`]); one column holds the true label and is
//!   removed from the record before scoring. Items keep the file's order; an item's id is
//!   the id column's value if one is named, else its line number. Hash: sha256 of the file's
//!   bytes.
//! - **Frames**: a folder with `labels.csv` (header `file,label`; files relative to the
//!   folder, `.jpg`/`.jpeg`/`.png`). Items are ordered by file name; the id is the file name.
//!   Hash: sha256 of the lines `file \t label \t sha256(file bytes) \n`, sorted by file.
//!
//! A label is one of the bundle's labels, its index (`0`, `1`, …), or `true`/`false` for a
//! bundle with a `[decision]` (true = the positive label). Anything else is an error naming
//! the item, as are a missing label column, a bad row and an empty test set.
use crate::evaluate::EvaluateError;
use argus_wire::records::{RecordReader, RecordsSource};
use argus_wire::{ImageFormat, Payload};
use sha2::{Digest, Sha256};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Where the test set is and how to read its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSetSpec {
    /// A CSV/JSON-lines file, or a folder with `labels.csv`.
    pub path: PathBuf,
    /// The label column of a records file [default: `label`].
    pub label_column: String,
    /// The column whose value names an item (records; default: the line number).
    pub id_column: Option<String>,
}

/// The kind of test set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestSetKind {
    /// Records from a CSV or JSON-lines file.
    Records,
    /// Image frames from a folder with `labels.csv`.
    Frames,
}

/// One labelled item.
#[derive(Debug, Clone)]
pub struct TestItem {
    /// The item's id (see the module doc).
    pub id: String,
    /// The index of its true label among the bundle's labels.
    pub label: usize,
    /// What the model scores.
    pub payload: Payload,
}

/// A test set read and hashed.
#[derive(Debug, Clone)]
pub struct TestSet {
    /// Records or frames.
    pub kind: TestSetKind,
    /// The file or folder name (no directories: evaluations compare across machines).
    pub name: String,
    /// sha256, hex (see the module doc).
    pub sha256: String,
    /// The items, in order.
    pub items: Vec<TestItem>,
}

/// How label values map to the bundle's labels.
#[derive(Debug, Clone)]
pub struct LabelMap<'a> {
    /// The bundle's labels.
    pub labels: &'a [String],
    /// The positive label's index, for `true`/`false`.
    pub positive: Option<usize>,
}

impl LabelMap<'_> {
    /// The label index of `value` for item `id`.
    pub fn index(&self, id: &str, value: &str) -> Result<usize, EvaluateError> {
        let v = value.trim();
        if let Some(i) = self.labels.iter().position(|l| l == v) {
            return Ok(i);
        }
        if let Ok(i) = v.parse::<usize>() {
            if i < self.labels.len() {
                return Ok(i);
            }
        }
        if let (Some(p), 2) = (self.positive, self.labels.len()) {
            match v.to_ascii_lowercase().as_str() {
                "true" => return Ok(p),
                "false" => return Ok(1 - p),
                _ => {}
            }
        }
        Err(EvaluateError::UnknownLabel {
            item: id.to_string(),
            value: value.to_string(),
            labels: self.labels.to_vec(),
        })
    }
}

fn io(path: &Path, source: std::io::Error) -> EvaluateError {
    EvaluateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reads the test set at `spec` for a bundle with `labels`.
pub fn read_test_set(spec: &TestSetSpec, labels: &LabelMap<'_>) -> Result<TestSet, EvaluateError> {
    let set = if spec.path.is_dir() {
        read_frames(&spec.path, labels)?
    } else {
        read_records(spec, labels)?
    };
    if set.items.is_empty() {
        return Err(EvaluateError::Empty {
            path: spec.path.clone(),
        });
    }
    Ok(set)
}

/// The columns of a CSV header, or the keys of the first JSON line.
fn header_columns(path: &Path, bytes: &[u8], csv: bool) -> Result<Vec<String>, EvaluateError> {
    if csv {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes);
        let h = r.headers().map_err(|e| EvaluateError::BadRow {
            path: path.to_path_buf(),
            detail: format!("cannot read the header row: {e}"),
        })?;
        return Ok(h.iter().map(|c| c.trim().to_string()).collect());
    }
    let first = bytes
        .lines()
        .map_while(Result::ok)
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    Ok(
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&first)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

fn read_records(spec: &TestSetSpec, labels: &LabelMap<'_>) -> Result<TestSet, EvaluateError> {
    let path = &spec.path;
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let source = RecordsSource::new(&path.to_string_lossy(), None, &spec.label_column).map_err(
        |detail| EvaluateError::BadRow {
            path: path.clone(),
            detail,
        },
    )?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(EvaluateError::Empty { path: path.clone() });
    }
    let csv = source.format == argus_wire::records::RecordFormat::Csv;
    let columns = header_columns(path, &bytes, csv)?;
    for wanted in std::iter::once(&spec.label_column).chain(spec.id_column.as_ref()) {
        if !columns.contains(wanted) {
            return Err(EvaluateError::MissingColumn {
                path: path.clone(),
                column: wanted.clone(),
                columns,
            });
        }
    }
    let mut reader =
        RecordReader::from_reader(&source, Box::new(std::io::Cursor::new(bytes.clone()))).map_err(
            |detail| EvaluateError::BadRow {
                path: path.clone(),
                detail,
            },
        )?;
    let mut items = Vec::new();
    while let Some(row) = reader.next_row() {
        let mut row = row.map_err(|e| EvaluateError::BadRow {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let id = match &spec.id_column {
            None => row.line.to_string(),
            Some(c) => row
                .record
                .fields
                .iter()
                .find(|f| f.name == c)
                .map(|f| value_text(&f.value))
                .ok_or_else(|| EvaluateError::BadRow {
                    path: path.clone(),
                    detail: format!("line {}: no {c:?} value", row.line),
                })?,
        };
        let label = labels.index(&id, &row.key)?;
        row.record.fields.retain(|f| f.name != spec.label_column);
        items.push(TestItem {
            id,
            label,
            payload: Payload::Record(row.record),
        });
    }
    Ok(TestSet {
        kind: TestSetKind::Records,
        name: file_name(path),
        sha256: hex::encode(Sha256::digest(&bytes)),
        items,
    })
}

fn value_text(v: &argus_wire::Value) -> String {
    match v {
        argus_wire::Value::Null => String::new(),
        argus_wire::Value::Bool(b) => b.to_string(),
        argus_wire::Value::Int(i) => i.to_string(),
        argus_wire::Value::Float(x) => x.to_string(),
        argus_wire::Value::Text(s) => s.to_string(),
    }
}

fn read_frames(dir: &Path, labels: &LabelMap<'_>) -> Result<TestSet, EvaluateError> {
    let list = dir.join("labels.csv");
    let bytes = std::fs::read(&list).map_err(|e| io(&list, e))?;
    let columns = header_columns(&list, &bytes, true)?;
    for wanted in ["file", "label"] {
        if !columns.iter().any(|c| c == wanted) {
            return Err(EvaluateError::MissingColumn {
                path: list.clone(),
                column: wanted.into(),
                columns,
            });
        }
    }
    let (fi, li) = (
        columns.iter().position(|c| c == "file").unwrap_or(0),
        columns.iter().position(|c| c == "label").unwrap_or(1),
    );
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes.as_slice());
    for rec in r.records() {
        let rec = rec.map_err(|e| EvaluateError::BadRow {
            path: list.clone(),
            detail: e.to_string(),
        })?;
        let get = |i: usize| rec.get(i).unwrap_or_default().trim().to_string();
        rows.push((get(fi), get(li)));
    }
    rows.sort();
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(EvaluateError::BadRow {
            path: list.clone(),
            detail: format!("{} is listed twice", w[0].0),
        });
    }
    let mut hasher = Sha256::new();
    let mut items = Vec::with_capacity(rows.len());
    for (file, label) in rows {
        let path = dir.join(&file);
        let format = match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref()
        {
            Some("jpg" | "jpeg") => ImageFormat::Jpeg,
            Some("png") => ImageFormat::Png,
            _ => {
                return Err(EvaluateError::BadRow {
                    path: list.clone(),
                    detail: format!("{file}: not a .jpg, .jpeg or .png file"),
                })
            }
        };
        let data = std::fs::read(&path).map_err(|e| io(&path, e))?;
        hasher.update(format!(
            "{file}\t{label}\t{}\n",
            hex::encode(Sha256::digest(&data))
        ));
        let label = labels.index(&file, &label)?;
        items.push(TestItem {
            id: file,
            label,
            payload: Payload::Encoded {
                format,
                bytes: data,
            },
        });
    }
    Ok(TestSet {
        kind: TestSetKind::Frames,
        name: file_name(dir),
        sha256: hex::encode(hasher.finalize()),
        items,
    })
}
