//! The one rule that infers a table column's type from sampled values, shared by the record
//! producer (`argus produce records`) and the drift profiler (`argus drift profile`), so a
//! column one of them reads as numbers the other does too.
//!
//! The rule: a column whose values are all `true`/`false` (with `0`/`1` mixed in) is a bool;
//! one whose values are at least [`NUMERIC_SHARE`] whole numbers (and no other numbers) is an
//! int; at least [`NUMERIC_SHARE`] numbers, a float; anything else is text. One typo in a
//! numeric column therefore does not turn it into text: the odd value is a bad value of a
//! numeric column (a bad row for the producer, a missing value for the profiler).

/// Share of sampled values that must be numbers for a column with a few non-numeric values
/// to stay numeric.
pub const NUMERIC_SHARE: f64 = 0.9;

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `true` / `false` (0 / 1 too).
    Bool,
    /// A whole number (`i64`).
    Int,
    /// A finite number (`f64`).
    Float,
    /// Anything else, verbatim.
    Text,
}

impl ColumnType {
    /// The name used in `--type col=TYPE`.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Bool => "bool",
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Text => "text",
        }
    }

    /// Whether values of this type are numbers (int or float).
    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Int | ColumnType::Float)
    }
}

impl std::str::FromStr for ColumnType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "bool" | "boolean" => Ok(ColumnType::Bool),
            "int" | "integer" => Ok(ColumnType::Int),
            "float" | "number" | "double" => Ok(ColumnType::Float),
            "text" | "string" | "category" => Ok(ColumnType::Text),
            other => Err(format!(
                "unknown column type {other:?}; use bool, int, float or text"
            )),
        }
    }
}

/// `true` or `false`, in any case.
pub fn is_bool_text(t: &str) -> bool {
    t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false")
}

/// Counts over a column's sampled (non-empty) values, from which [`ColumnTally::column_type`]
/// infers its type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnTally {
    n: usize,
    ints: usize,
    numbers: usize,
    bools: usize,
    zero_ones: usize,
}

impl ColumnTally {
    /// Count one value as written in the file (trimmed, non-empty).
    pub fn add_text(&mut self, text: &str) {
        self.n += 1;
        if is_bool_text(text) {
            self.bools += 1;
        } else if text == "0" || text == "1" {
            self.zero_ones += 1;
        }
        if text.parse::<i64>().is_ok() {
            self.ints += 1;
        }
        if text.parse::<f64>().is_ok_and(f64::is_finite) {
            self.numbers += 1;
        }
    }

    /// Count one value a reader already holds as a number (a JSON number, a CSV field it
    /// parsed). A non-finite number still counts as a number: a reader that keeps those
    /// reports them as non-finite values of a numeric column.
    pub fn add_number(&mut self, x: f64) {
        self.n += 1;
        self.numbers += 1;
        if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
            self.ints += 1;
            if x == 0.0 || x == 1.0 {
                self.zero_ones += 1;
            }
        }
    }

    /// Values counted.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Values counted that are not numbers (the bad values of a numeric column).
    pub fn non_numeric(&self) -> usize {
        self.n - self.numbers
    }

    /// The inferred type (text when nothing was counted).
    pub fn column_type(&self) -> ColumnType {
        if self.n == 0 {
            return ColumnType::Text;
        }
        let share = |k: usize| k as f64 >= NUMERIC_SHARE * self.n as f64;
        if self.bools > 0 && self.bools + self.zero_ones == self.n {
            ColumnType::Bool
        } else if self.ints == self.n || (self.numbers == self.ints && share(self.ints)) {
            ColumnType::Int
        } else if self.numbers == self.n || share(self.numbers) {
            ColumnType::Float
        } else {
            ColumnType::Text
        }
    }
}

/// The type of a column sampled as the texts `values` (trimmed, non-empty).
pub fn infer_column_type(values: &[&str]) -> ColumnType {
    let mut tally = ColumnTally::default();
    for v in values {
        tally.add_text(v);
    }
    tally.column_type()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_typos_keep_a_column_numeric_but_text_columns_stay_text() {
        let mut v = vec!["1"; 19];
        v.push("ten");
        assert_eq!(infer_column_type(&v), ColumnType::Int);
        let mut v = vec!["1.5"; 18];
        v.extend(["2", "x"]);
        assert_eq!(infer_column_type(&v), ColumnType::Float);
        assert_eq!(infer_column_type(&["1", "a", "b"]), ColumnType::Text);
        assert_eq!(infer_column_type(&["1", "0"]), ColumnType::Int);
        assert_eq!(
            infer_column_type(&["true", "0", "FALSE", "1"]),
            ColumnType::Bool
        );
        assert_eq!(infer_column_type(&[]), ColumnType::Text);
    }

    #[test]
    fn numbers_held_as_numbers_count_like_their_text() {
        let texts = ["1", "0", "2.5", "7", "n/a"];
        let mut held = ColumnTally::default();
        for x in [1.0, 0.0, 2.5, 7.0] {
            held.add_number(x);
        }
        held.add_text("n/a");
        let mut read = ColumnTally::default();
        texts.iter().for_each(|t| read.add_text(t));
        assert_eq!(held, read);
        assert_eq!(read.non_numeric(), 1);
        // 4 of 5 numbers is below the share: text.
        assert_eq!(read.column_type(), ColumnType::Text);
        held.add_number(f64::NAN);
        assert_eq!(held.non_numeric(), 1);
    }
}
