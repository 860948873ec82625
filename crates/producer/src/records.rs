//! Records from CSV or JSON lines (a file or stdin) for `argus produce`. The parsing rules
//! live in [`argus_wire::records`] (shared with `argus model evaluate`); this module opens
//! the file or stdin.
pub use argus_wire::records::{BadRow, RecordFormat, RecordReader, RecordsSource, Row};
use std::io::Read;

/// Opens the source's file (or stdin when it has no path) and reads its header and the rows
/// that column types are inferred from. Errors (exit 64 material) say what to fix.
pub fn open(source: &RecordsSource) -> Result<RecordReader, String> {
    let input: Box<dyn Read + Send> = match &source.path {
        None => Box::new(std::io::stdin()),
        Some(p) => std::fs::File::open(p)
            .map(|f| Box::new(f) as Box<dyn Read + Send>)
            .map_err(|e| format!("{}: cannot open: {e}", p.display()))?,
    };
    RecordReader::from_reader(source, input)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    #[test]
    fn opens_a_file_and_names_a_missing_one() {
        let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        f.write_all(b"id,n\na,1\n").unwrap();
        let src = RecordsSource::new(f.path().to_str().unwrap(), None, "id").unwrap();
        let mut r = open(&src).unwrap();
        assert_eq!(r.next_row().unwrap().unwrap().key, "a");
        let missing = RecordsSource::new("/nonexistent/x.csv", None, "id").unwrap();
        assert!(open(&missing).unwrap_err().contains("cannot open"));
    }
}
