//! Tables from files for the offline tools (`argus drift profile`, `argus drift compare`):
//! reading CSV and JSON lines, deciding each column's type, building a reference profile and
//! summarising a table against one — with the same `argus-stats` code the sidecar uses.
//!
//! Rules, in one place:
//! - **Format by extension:** `.csv` (header row required), `.jsonl` / `.ndjson` (one JSON
//!   object per line; blank lines are skipped; a key missing from a line is null there; nested
//!   arrays or objects are rejected — flatten them first).
//! - **Cells:** an empty (or all-blank) CSV field and JSON `null` are [`CellValue::Null`]; a CSV
//!   field that parses as `f64` (after trimming, so `NaN` and `inf` count as numbers and are
//!   reported as non-finite) is [`CellValue::Num`], any other field is [`CellValue::Text`]
//!   (verbatim); JSON numbers are `Num`, strings `Text`, booleans `Text("true"/"false")`.
//! - **Types:** declared types win. An undeclared column's type follows the rule the record
//!   producer uses too ([`argus_wire::columns`]): an `int` or `float` column (at least 90 % of
//!   its non-null values numbers) is numeric — its few text values count as missing, with a
//!   warning naming the column and the first such row — anything else is categorical. [`FeatureProfile::numeric`] then turns a numeric column with
//!   ≤ 20 distinct values into `numeric_discrete` (2 values: `binary`). Numbers in a
//!   categorical column are labelled like the sidecar labels them ([`discrete_label`]: `1.0`
//!   and `1` are the same category, `01234` becomes `1234`).
//! - **Roles:** the segment column (one reference per value, like a camera id), the label
//!   column and ignored columns are never features; the score column is a `score` feature.
//! - **Segments:** every row is summarised into the fleet segment `*`; a row whose segment
//!   value is null (or literally `*`) goes into `*` only. A segment value with fewer than
//!   [`MIN_SEGMENT_ROWS`] reference rows gets no reference of its own: windows of that segment
//!   are compared with the fleet reference, as are values the reference never saw.
//! - **Record hashes** (which rows the bottom-k samples keep) are
//!   `record_hash(seed, <file stem>, 0, <row index>)`. The stem (file name without extension) is
//!   used so that the same data as `x.csv` and as `x.jsonl` samples the same rows and gives
//!   the same report.
use argus_stats::calibration::fit_isotonic;
use argus_stats::hash::record_hash;
use argus_stats::profile::{
    discrete_label, Calibration, FeatureKind, FeatureProfile, Profile, ProfileError,
    ProfileSettings, SegmentProfile, StreamKind, FLEET,
};
use argus_stats::summary::{Cell, SegmentSummary};
use argus_wire::ColumnTally;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

/// A segment value needs at least this many reference rows to get a reference of its own;
/// below it, the segment is compared with the fleet reference `*` (a profile built from a
/// handful of rows would make every window of that segment look drifted).
pub const MIN_SEGMENT_ROWS: usize = 100;

/// Default decision threshold of the score for CBPE (predicted positive iff score ≥ it).
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// One cell of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum CellValue {
    /// An empty field, JSON `null`, or a missing JSON key.
    Null,
    /// A number (NaN and ±inf included).
    Num(f64),
    /// Anything else, verbatim.
    Text(String),
}

impl CellValue {
    /// The borrowed form the summaries take.
    pub fn as_cell(&self) -> Cell<'_> {
        match self {
            Self::Null => Cell::Null,
            Self::Num(x) => Cell::Num(*x),
            Self::Text(t) => Cell::Text(t),
        }
    }

    /// The value as a category label (`None` for null and non-finite numbers), as the sidecar
    /// labels it.
    fn label(&self) -> Option<String> {
        match self {
            Self::Null => None,
            Self::Num(x) if x.is_finite() => Some(discrete_label(*x)),
            Self::Num(_) => None,
            Self::Text(t) => Some(t.clone()),
        }
    }
}

/// A table read from a file: column names in file order and one row per record, each row as
/// long as `columns`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file it was read from (as given), used in messages and record hashes.
    pub source: String,
    /// Column names, in file order.
    pub columns: Vec<String>,
    /// One row per record, each as long as `columns`.
    pub rows: Vec<Vec<CellValue>>,
}

impl Table {
    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The name the record hashes use: the file name without its extension.
    pub fn hash_name(&self) -> String {
        let p = Path::new(&self.source);
        p.file_stem()
            .or_else(|| p.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.source.clone())
    }

    fn cell(&self, row: usize, col: usize) -> &CellValue {
        self.rows
            .get(row)
            .and_then(|r| r.get(col))
            .unwrap_or(&CellValue::Null)
    }
}

/// Which columns are what. Declared types win over inference; see the module docs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnSpec {
    /// Columns that must be numeric (a text value is an error).
    pub numeric: Vec<String>,
    /// Columns that are categorical even if their values are numbers.
    pub categorical: Vec<String>,
    /// Columns that are not features (ids, timestamps). Names absent from the table are fine.
    pub ignore: Vec<String>,
    /// Segment column (e.g. `camera_id`): one reference per value with ≥ [`MIN_SEGMENT_ROWS`]
    /// rows, and one report per value.
    pub segment: Option<String>,
    /// Ground-truth label column (binary); with `score`, fits the CBPE calibration. Not a feature.
    pub label: Option<String>,
    /// Model score column (probability of the positive label); a `score` feature.
    pub score: Option<String>,
    /// Decision threshold for CBPE; [`DEFAULT_THRESHOLD`] if `None`.
    pub threshold: Option<f64>,
}

/// Everything that can go wrong reading or profiling a table. Each message names the file,
/// where in it (line, row or column), and what to change.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The file cannot be opened or read.
    #[error("{path}: cannot read the file: {source}")]
    Io {
        /// The file, as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The extension names no supported format.
    #[error("{path}: unknown file type {extension:?}; use a .csv file (with a header row) or JSON lines (.jsonl or .ndjson)")]
    Extension {
        /// The file, as given.
        path: String,
        /// Its extension.
        extension: String,
    },
    /// The CSV does not parse.
    #[error("{path}: line {line}: {message}")]
    Csv {
        /// The file, as given.
        path: String,
        /// Line number (1-based, the header is line 1).
        line: u64,
        /// What the parser says.
        message: String,
    },
    /// The CSV file has no header row.
    #[error("{path}: the CSV file is empty; it needs a header row naming the columns")]
    NoHeader {
        /// The file, as given.
        path: String,
    },
    /// A header column has no name.
    #[error("{path}: header column {position} has an empty name; name it (or, for a pandas index, write the file with index=False)")]
    EmptyColumnName {
        /// The file, as given.
        path: String,
        /// 1-based header position.
        position: usize,
    },
    /// Two header columns have the same name.
    #[error("{path}: column {column:?} appears twice in the header (columns {first} and {second}); column names must be unique")]
    DuplicateColumn {
        /// The file, as given.
        path: String,
        /// The name.
        column: String,
        /// 1-based position of the first.
        first: usize,
        /// 1-based position of the second.
        second: usize,
    },
    /// A line is not valid JSON.
    #[error("{path}: line {line}, column {column}: {message}")]
    Json {
        /// The file, as given.
        path: String,
        /// Line number (1-based).
        line: usize,
        /// Column within the line (1-based).
        column: usize,
        /// What the parser says.
        message: String,
    },
    /// A JSON field holds an array or object.
    #[error("{path}: line {line}: field {field:?} is a nested {what}; only scalar values (number, string, boolean, null) are supported — flatten it into separate fields")]
    Nested {
        /// The file, as given.
        path: String,
        /// Line number (1-based).
        line: usize,
        /// The field.
        field: String,
        /// `array` or `object`.
        what: &'static str,
    },
    /// A JSON object has a field twice.
    #[error("{path}: line {line}: field {field:?} appears twice in the same object")]
    DuplicateField {
        /// The file, as given.
        path: String,
        /// Line number (1-based).
        line: usize,
        /// The field.
        field: String,
    },
    /// A column named by a flag is not in the file.
    #[error("{path}: column {column:?} (declared {role}) is not in the file; its columns are: {available}")]
    MissingColumn {
        /// The file, as given.
        path: String,
        /// The column.
        column: String,
        /// The role it was declared for.
        role: &'static str,
        /// The file's columns.
        available: String,
    },
    /// A column is given two incompatible roles.
    #[error("{path}: column {column:?} is declared both {first} and {second}; declare it once")]
    Conflict {
        /// The file, as given.
        path: String,
        /// The column.
        column: String,
        /// The first role.
        first: &'static str,
        /// The second role.
        second: &'static str,
    },
    /// A column that must be numeric holds text.
    #[error("{path}: column {column:?} must be numeric ({role}) but row {row} (1-based, header not counted) has the text value {value:?}; fix or blank that value, or declare the column categorical")]
    NotNumeric {
        /// The file, as given.
        path: String,
        /// The column.
        column: String,
        /// Why it must be numeric.
        role: &'static str,
        /// The first row with text (1-based, header not counted).
        row: usize,
        /// That text.
        value: String,
    },
    /// The label column cannot serve CBPE.
    #[error("{path}: label column {column:?} {problem}; CBPE needs a binary label (two distinct values, the second in sorted order is positive) — fix the labels or drop the label column")]
    Label {
        /// The file, as given.
        path: String,
        /// The label column.
        column: String,
        /// What is wrong with its values.
        problem: String,
    },
    /// The profile is not a records profile.
    #[error("{path}: the profile is a {found:?} profile; tables can only be compared with a records profile")]
    WrongStream {
        /// The file, as given.
        path: String,
        /// The profile's stream kind.
        found: StreamKind,
    },
    /// The profile cannot be built or read.
    #[error("{path}: {source}")]
    Profile {
        /// The file, as given.
        path: String,
        /// The profile error.
        source: ProfileError,
    },
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Read a CSV or JSON-lines file, chosen by extension (see the module docs).
pub fn read_table(path: &Path) -> Result<Table, RecordsError> {
    let source = path.display().to_string();
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "csv" => read_csv(path, source),
        "jsonl" | "ndjson" => read_jsonl(path, source),
        _ => Err(RecordsError::Extension {
            path: source,
            extension,
        }),
    }
}

fn csv_error(path: &str, fallback_line: u64, e: &csv::Error) -> RecordsError {
    let line = e.position().map_or(fallback_line, csv::Position::line);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => format!(
            "this record has {len} fields but the header has {expected_len}; every row needs one field per column (quote fields that contain commas)"
        ),
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("field {} is not valid UTF-8; save the file as UTF-8", err.field() + 1)
        }
        _ => e.to_string(),
    };
    RecordsError::Csv {
        path: path.to_owned(),
        line,
        message,
    }
}

fn check_columns(path: &str, columns: &[String]) -> Result<(), RecordsError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, c) in columns.iter().enumerate() {
        if c.trim().is_empty() {
            return Err(RecordsError::EmptyColumnName {
                path: path.to_owned(),
                position: i + 1,
            });
        }
        if let Some(first) = seen.insert(c.as_str(), i + 1) {
            return Err(RecordsError::DuplicateColumn {
                path: path.to_owned(),
                column: c.clone(),
                first,
                second: i + 1,
            });
        }
    }
    Ok(())
}

fn csv_cell(field: &str) -> CellValue {
    let t = field.trim();
    if t.is_empty() {
        CellValue::Null
    } else if let Ok(x) = t.parse::<f64>() {
        CellValue::Num(x)
    } else {
        CellValue::Text(field.to_owned())
    }
}

fn read_csv(path: &Path, source: String) -> Result<Table, RecordsError> {
    let file = std::fs::File::open(path).map_err(|e| RecordsError::Io {
        path: source.clone(),
        source: e,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(std::io::BufReader::new(file));
    let header = reader
        .headers()
        .map_err(|e| csv_error(&source, 1, &e))?
        .clone();
    if header.is_empty() {
        return Err(RecordsError::NoHeader { path: source });
    }
    let columns: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
    check_columns(&source, &columns)?;
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let fallback = rows.len() as u64 + 2;
        match reader.read_record(&mut record) {
            Ok(true) => rows.push(record.iter().map(csv_cell).collect()),
            Ok(false) => break,
            Err(e) => return Err(csv_error(&source, fallback, &e)),
        }
    }
    Ok(Table {
        source,
        columns,
        rows,
    })
}

/// A JSON object with its fields in file order (serde_json's map would sort them).
struct OrderedObject(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object (one record per line)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedObject, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    fields.push(entry);
                }
                Ok(OrderedObject(fields))
            }
        }
        d.deserialize_map(V)
    }
}

fn read_jsonl(path: &Path, source: String) -> Result<Table, RecordsError> {
    use std::io::BufRead as _;
    let file = std::fs::File::open(path).map_err(|e| RecordsError::Io {
        path: source.clone(),
        source: e,
    })?;
    let mut columns: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut rows: Vec<Vec<CellValue>> = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| RecordsError::Json {
            path: source.clone(),
            line: line_no,
            column: 1,
            message: format!("cannot read the line ({e}); save the file as UTF-8"),
        })?;
        // A byte-order mark some editors write at the start of the file.
        let line = if i == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            &line
        };
        if line.trim().is_empty() {
            continue;
        }
        let object: OrderedObject = serde_json::from_str(line).map_err(|e| RecordsError::Json {
            path: source.clone(),
            line: line_no,
            column: e.column(),
            message: format!(
                "{e}; each line must be one JSON object such as {{\"x\": 1.5, \"city\": \"Oslo\"}}"
            ),
        })?;
        let mut row = vec![CellValue::Null; columns.len()];
        let mut seen: BTreeSet<usize> = BTreeSet::new();
        for (field, value) in object.0 {
            let cell = match value {
                serde_json::Value::Null => CellValue::Null,
                serde_json::Value::Bool(b) => CellValue::Text(b.to_string()),
                serde_json::Value::Number(n) => CellValue::Num(n.as_f64().unwrap_or(f64::NAN)),
                serde_json::Value::String(s) => CellValue::Text(s),
                serde_json::Value::Array(_) => {
                    return Err(RecordsError::Nested {
                        path: source,
                        line: line_no,
                        field,
                        what: "array",
                    })
                }
                serde_json::Value::Object(_) => {
                    return Err(RecordsError::Nested {
                        path: source,
                        line: line_no,
                        field,
                        what: "object",
                    })
                }
            };
            let col = match index.get(&field) {
                Some(c) => *c,
                None => {
                    if field.trim().is_empty() {
                        return Err(RecordsError::Json {
                            path: source,
                            line: line_no,
                            column: 1,
                            message: "a field has an empty name; name it".to_owned(),
                        });
                    }
                    let c = columns.len();
                    columns.push(field.clone());
                    index.insert(field.clone(), c);
                    row.push(CellValue::Null);
                    c
                }
            };
            if !seen.insert(col) {
                return Err(RecordsError::DuplicateField {
                    path: source,
                    line: line_no,
                    field,
                });
            }
            row[col] = cell;
        }
        rows.push(row);
    }
    // Rows read before a column first appeared are shorter: the field was missing (null).
    for row in &mut rows {
        row.resize(columns.len(), CellValue::Null);
    }
    Ok(Table {
        source,
        columns,
        rows,
    })
}

// ---------------------------------------------------------------------------------------------
// Column roles

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Summarised as numbers: `Numeric` (may become discrete/binary) or `Score`.
    Numeric(FeatureKind),
    Categorical,
}

#[derive(Debug)]
struct Plan {
    /// (column index, role), in column order.
    features: Vec<(usize, Role)>,
    segment: Option<usize>,
    label: Option<usize>,
    score: Option<usize>,
}

fn available(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn require(table: &Table, column: &str, role: &'static str) -> Result<usize, RecordsError> {
    table
        .column_index(column)
        .ok_or_else(|| missing(table, column, role))
}

/// The first row (0-based) of a column holding text, if any.
fn first_text(table: &Table, col: usize) -> Option<(usize, &str)> {
    table
        .rows
        .iter()
        .enumerate()
        .find_map(|(i, r)| match r.get(col) {
            Some(CellValue::Text(t)) => Some((i, t.as_str())),
            _ => None,
        })
}

fn require_numeric(table: &Table, col: usize, role: &'static str) -> Result<(), RecordsError> {
    match first_text(table, col) {
        Some((row, value)) => Err(RecordsError::NotNumeric {
            path: table.source.clone(),
            column: table.columns[col].clone(),
            role,
            row: row + 1,
            value: value.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Whether an undeclared column is numeric by the shared inference rule; a numeric column's
/// text values (missing from its profile) are logged.
fn inferred_numeric(table: &Table, col: usize) -> bool {
    let mut tally = ColumnTally::default();
    for row in &table.rows {
        match row.get(col) {
            Some(CellValue::Num(x)) => tally.add_number(*x),
            Some(CellValue::Text(t)) => tally.add_text(t.trim()),
            Some(CellValue::Null) | None => {}
        }
    }
    let numeric = tally.column_type().is_numeric();
    if numeric {
        if let Some((row, value)) = first_text(table, col) {
            tracing::warn!(
                file = %table.source,
                column = %table.columns[col],
                text_values = tally.non_numeric(),
                first_row = row + 1,
                first_value = value,
                "a numeric column holds a few text values; profiled as missing values"
            );
        }
    }
    numeric
}

fn plan(table: &Table, spec: &ColumnSpec) -> Result<Plan, RecordsError> {
    let mut decls: Vec<(&str, &'static str)> = Vec::new();
    decls.extend(spec.numeric.iter().map(|c| (c.as_str(), "numeric")));
    decls.extend(spec.categorical.iter().map(|c| (c.as_str(), "categorical")));
    decls.extend(spec.ignore.iter().map(|c| (c.as_str(), "ignored")));
    decls.extend(spec.segment.iter().map(|c| (c.as_str(), "segment")));
    decls.extend(spec.label.iter().map(|c| (c.as_str(), "label")));
    decls.extend(spec.score.iter().map(|c| (c.as_str(), "score")));
    let mut declared: HashMap<&str, &'static str> = HashMap::new();
    for (name, role) in &decls {
        if let Some(prev) = declared.insert(*name, *role) {
            let compatible = prev == *role
                || matches!((prev, *role), ("numeric", "score") | ("score", "numeric"));
            if !compatible {
                return Err(RecordsError::Conflict {
                    path: table.source.clone(),
                    column: (*name).to_owned(),
                    first: prev,
                    second: role,
                });
            }
        }
    }
    for (name, role) in &decls {
        if *role != "ignored" {
            require(table, name, role)?;
        }
    }
    let find = |c: &Option<String>| c.as_deref().and_then(|c| table.column_index(c));
    let (segment, label, score) = (find(&spec.segment), find(&spec.label), find(&spec.score));
    let mut features = Vec::new();
    for (i, name) in table.columns.iter().enumerate() {
        if spec.ignore.contains(name) || segment == Some(i) || label == Some(i) {
            continue;
        }
        let role = if score == Some(i) {
            require_numeric(table, i, "the score column")?;
            Role::Numeric(FeatureKind::Score)
        } else if spec.numeric.contains(name) {
            require_numeric(table, i, "declared numeric")?;
            Role::Numeric(FeatureKind::Numeric)
        } else if spec.categorical.contains(name) || !inferred_numeric(table, i) {
            Role::Categorical
        } else {
            Role::Numeric(FeatureKind::Numeric)
        };
        features.push((i, role));
    }
    if label.is_some() != score.is_some() {
        tracing::warn!(
            file = %table.source,
            "a label column needs a score column (and vice versa) for the CBPE calibration; profiling without one"
        );
    }
    Ok(Plan {
        features,
        segment,
        label,
        score,
    })
}

/// The segment a cell puts its row in (`None`: the fleet only).
fn segment_key(cell: &CellValue) -> Option<String> {
    let key = match cell {
        CellValue::Null => return None,
        CellValue::Num(x) => discrete_label(*x),
        CellValue::Text(t) => t.clone(),
    };
    (key != FLEET).then_some(key)
}

fn numbers(table: &Table, col: usize, rows: &[usize]) -> Vec<Option<f64>> {
    rows.iter()
        .map(|r| match table.cell(*r, col) {
            CellValue::Num(x) => Some(*x),
            // Text in a numeric column: rejected by `plan` if declared, else a missing value.
            CellValue::Null | CellValue::Text(_) => None,
        })
        .collect()
}

/// Profile the rows `rows` of the table. With `fleet`, every feature gets the fleet's kind
/// (a segment must have the same schema as `*`, even if, say, only two values occur in it).
fn segment_profile(
    table: &Table,
    plan: &Plan,
    rows: &[usize],
    hashes: &[u64],
    settings: &ProfileSettings,
    fleet: Option<&SegmentProfile>,
) -> SegmentProfile {
    let sub_hashes: Vec<u64> = rows
        .iter()
        .map(|r| hashes.get(*r).copied().unwrap_or(0))
        .collect();
    let features = plan
        .features
        .iter()
        .enumerate()
        .map(|(fi, (col, role))| {
            let name = table.columns[*col].as_str();
            let forced = fleet.and_then(|f| f.features.get(fi)).map(|f| f.kind);
            let labels = || -> Vec<Option<String>> {
                rows.iter().map(|r| table.cell(*r, *col).label()).collect()
            };
            match (role, forced) {
                (Role::Numeric(kind), None) => FeatureProfile::numeric(
                    name,
                    *kind,
                    &numbers(table, *col, rows),
                    &sub_hashes,
                    settings,
                ),
                (Role::Numeric(_), Some(kind)) if kind.is_numeric() => {
                    // `Score` never turns discrete; the kind is then set to the fleet's.
                    let mut p = FeatureProfile::numeric(
                        name,
                        FeatureKind::Score,
                        &numbers(table, *col, rows),
                        &sub_hashes,
                        settings,
                    );
                    p.kind = kind;
                    p
                }
                (Role::Numeric(_), Some(kind)) => {
                    // Discrete in the fleet: label like `FeatureProfile::numeric` does.
                    let values = numbers(table, *col, rows);
                    let labels: Vec<Option<String>> = values
                        .iter()
                        .map(|v| v.filter(|x| x.is_finite()).map(discrete_label))
                        .collect();
                    let mut p = FeatureProfile::categorical(name, kind, &labels, settings);
                    p.kind = kind;
                    p.n_nonfinite =
                        values.iter().flatten().filter(|x| !x.is_finite()).count() as u64;
                    p
                }
                (Role::Categorical, forced) => {
                    let mut p = FeatureProfile::categorical(
                        name,
                        FeatureKind::Categorical,
                        &labels(),
                        settings,
                    );
                    if let Some(kind) = forced {
                        p.kind = kind;
                    }
                    p
                }
            }
        })
        .collect();
    SegmentProfile {
        n: rows.len() as u64,
        features,
        histograms: None,
    }
}

fn calibrate(
    table: &Table,
    label: usize,
    score: usize,
    threshold: f64,
) -> Result<Calibration, RecordsError> {
    let column = table.columns[label].clone();
    let err = |problem: String| RecordsError::Label {
        path: table.source.clone(),
        column: column.clone(),
        problem,
    };
    let cells: Vec<&CellValue> = (0..table.rows.len())
        .map(|r| table.cell(r, label))
        .collect();
    let all_numbers = cells.iter().all(|c| !matches!(c, CellValue::Text(_)));
    let mut distinct: Vec<(f64, String)> = cells
        .iter()
        .filter_map(|c| match c {
            CellValue::Num(x) => c.label().map(|l| (l, *x)),
            CellValue::Text(t) => Some((t.clone(), f64::NAN)),
            CellValue::Null => None,
        })
        .collect::<BTreeMap<String, f64>>()
        .into_iter()
        .map(|(l, x)| (x, l))
        .collect();
    if all_numbers {
        distinct.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    if distinct.len() != 2 {
        let shown: Vec<String> = distinct
            .iter()
            .take(5)
            .map(|d| format!("{:?}", d.1))
            .collect();
        let more = if distinct.len() > 5 { ", ..." } else { "" };
        return Err(err(format!(
            "has {} distinct values ({}{more})",
            distinct.len(),
            shown.join(", ")
        )));
    }
    let positive = distinct[1].1.clone();
    let (mut scores, mut positives) = (Vec::new(), Vec::new());
    for (r, cell) in cells.iter().enumerate() {
        let (Some(l), CellValue::Num(s)) = (cell.label(), table.cell(r, score)) else {
            continue;
        };
        scores.push(*s);
        positives.push(l == positive);
    }
    fit_isotonic(&scores, &positives, &positive, threshold)
        .ok_or_else(|| err("has fewer than 2 rows with both a label and a finite score".to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Profiling and summarising

/// Build a records profile from a reference table: the fleet segment `*` from every row and,
/// with `spec.segment`, one segment per value with ≥ [`MIN_SEGMENT_ROWS`] rows (smaller ones,
/// and values never seen here, are compared with `*`). With `spec.label` and `spec.score`, the
/// isotonic CBPE calibration is fitted on all rows (positive = the second of the two label
/// values in sorted order, numeric order if all labels are numbers; threshold
/// `spec.threshold` or 0.5).
pub fn profile_table(
    table: &Table,
    spec: &ColumnSpec,
    settings: &ProfileSettings,
    id: &str,
    created_by: &str,
) -> Result<Profile, RecordsError> {
    let plan = plan(table, spec)?;
    let name = table.hash_name();
    let n = table.rows.len();
    let hashes: Vec<u64> = (0..n)
        .map(|i| record_hash(settings.seed, &name, 0, i as i64))
        .collect();
    let all: Vec<usize> = (0..n).collect();
    let fleet = segment_profile(table, &plan, &all, &hashes, settings, None);
    let mut segments = BTreeMap::new();
    if let Some(col) = plan.segment {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for r in 0..n {
            if let Some(key) = segment_key(table.cell(r, col)) {
                groups.entry(key).or_default().push(r);
            }
        }
        for (key, rows) in groups {
            if rows.len() >= MIN_SEGMENT_ROWS {
                let p = segment_profile(table, &plan, &rows, &hashes, settings, Some(&fleet));
                segments.insert(key, p);
            } else {
                tracing::info!(
                    file = %table.source,
                    segment = %key,
                    rows = rows.len(),
                    "segment has fewer than {MIN_SEGMENT_ROWS} reference rows; it will be compared with the fleet reference"
                );
            }
        }
    }
    segments.insert(FLEET.to_owned(), fleet);
    let calibration = match (plan.label, plan.score) {
        (Some(label), Some(score)) => Some(calibrate(
            table,
            label,
            score,
            spec.threshold.unwrap_or(DEFAULT_THRESHOLD),
        )?),
        _ => None,
    };
    Profile::seal(
        id.to_owned(),
        StreamKind::Records,
        format!("{} ({n} rows)", table.source),
        settings.clone(),
        segments,
        calibration,
        created_by.to_owned(),
    )
    .map_err(|source| RecordsError::Profile {
        path: table.source.clone(),
        source,
    })
}

/// Summarise every row of `table` into `*` and, with `segment_column`, into its segment, each
/// shaped by that segment's reference (its own, else the fleet's). The table must have every
/// profiled feature column (extra columns are ignored); a table without rows may lack them
/// (an empty JSON-lines file has no columns at all). Unlike profiling, text in a numeric
/// column is not an error here: the value counts as invalid and as null for its feature, so
/// the null-share test reports it. With a calibration in the profile, each row's score is also
/// counted for CBPE. Each numeric feature keeps a bottom-k sample of `sample_k` values (the
/// table's row count keeps every value, as `argus drift compare` does).
pub fn summarise_table(
    table: &Table,
    profile: &Profile,
    segment_column: Option<&str>,
    sample_k: usize,
) -> Result<BTreeMap<String, SegmentSummary>, RecordsError> {
    if profile.stream != StreamKind::Records {
        return Err(RecordsError::WrongStream {
            path: table.source.clone(),
            found: profile.stream,
        });
    }
    let fleet = profile.fleet();
    let strict = !table.rows.is_empty();
    let mut cols: Vec<Option<usize>> = Vec::with_capacity(fleet.features.len());
    for f in &fleet.features {
        match table.column_index(&f.name) {
            Some(c) => cols.push(Some(c)),
            None if !strict => cols.push(None),
            None => return Err(missing(table, &f.name, "a profiled feature")),
        }
    }
    let segment = match segment_column {
        Some(s) if strict => Some(require(table, s, "segment")?),
        Some(s) => table.column_index(s),
        None => None,
    };
    let calibration = profile.calibration.as_ref();
    let score = calibration
        .and_then(|_| {
            fleet
                .features
                .iter()
                .position(|f| f.kind == FeatureKind::Score)
        })
        .and_then(|fi| cols.get(fi).copied().flatten());
    let k = sample_k.max(1);
    let name = table.hash_name();
    let mut fleet_summary = SegmentSummary::new(fleet, calibration, k);
    let mut out: BTreeMap<String, SegmentSummary> = BTreeMap::new();
    for (i, row) in table.rows.iter().enumerate() {
        let hash = record_hash(profile.settings.seed, &name, 0, i as i64);
        let score = score.and_then(|c| match row.get(c) {
            Some(CellValue::Num(x)) => Some(*x),
            Some(CellValue::Text(t)) => t.trim().parse::<f64>().ok(),
            _ => None,
        });
        let row_ctx = RowCtx {
            cols: &cols,
            row,
            hash,
            calibration,
            score,
        };
        row_ctx.add_to(&mut fleet_summary, fleet);
        if let Some(key) = segment.and_then(|c| row.get(c)).and_then(segment_key) {
            let reference = profile.segment(&key);
            let s = out
                .entry(key)
                .or_insert_with(|| SegmentSummary::new(reference, calibration, k));
            row_ctx.add_to(s, reference);
        }
    }
    if fleet_summary.n_invalid > 0 {
        tracing::warn!(
            file = %table.source,
            invalid = fleet_summary.n_invalid,
            "text values in numeric columns were counted as nulls"
        );
    }
    out.insert(FLEET.to_owned(), fleet_summary);
    Ok(out)
}

fn missing(table: &Table, column: &str, role: &'static str) -> RecordsError {
    RecordsError::MissingColumn {
        path: table.source.clone(),
        column: column.to_owned(),
        role,
        available: available(table),
    }
}

struct RowCtx<'a> {
    cols: &'a [Option<usize>],
    row: &'a [CellValue],
    hash: u64,
    calibration: Option<&'a Calibration>,
    score: Option<f64>,
}

impl RowCtx<'_> {
    fn add_to(&self, summary: &mut SegmentSummary, reference: &SegmentProfile) {
        summary.n_records += 1;
        for (fi, col) in self.cols.iter().enumerate() {
            let cell = col
                .and_then(|c| self.row.get(c))
                .map_or(Cell::Null, CellValue::as_cell);
            summary.add(reference, fi, cell, self.hash);
        }
        if let (Some(c), Some(x)) = (self.calibration, self.score) {
            summary.add_score(c, x);
        }
    }
}
