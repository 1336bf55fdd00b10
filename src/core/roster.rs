//! The roster (附件3 《后备干部队伍名册》) in the offices' format: reading a `.xlsx` or `.csv`
//! with Chinese column headings into people and the problems of every bad row, and writing
//! the pool as a `.xlsx` with one sheet per branch and a summary sheet.
//!
//! Pure: bytes and the directory in, rows and diagnostics (or bytes) out. Headings are
//! matched by name ([`Field::from_heading`]), in any order, below any title rows; each cell
//! is set through [`Person::set`], so a roster refuses exactly what a form refuses.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Cursor;

use serde::Serialize;

use super::directory::{Directory, UnitKind};
use super::pool::{Ctx, Field, Person, PersonStatus, Reason, Tier, TierNames};

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An Excel workbook (a zip archive).
    Xlsx,
    /// Comma-separated text, UTF-8 (with or without BOM) or GB18030 as Excel saves it on
    /// Chinese Windows.
    Csv,
}

impl Format {
    /// By content: a zip archive is a workbook, anything else CSV.
    pub fn sniff(bytes: &[u8]) -> Format {
        if bytes.starts_with(b"PK\x03\x04") {
            Format::Xlsx
        } else {
            Format::Csv
        }
    }
}

/// A problem with the file, a sheet, a row or a cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The sheet (empty for CSV).
    pub sheet: String,
    /// The row number as the spreadsheet shows it (1 is the first row), if about a row.
    pub row: Option<u32>,
    /// The column heading, if about a cell.
    pub column: Option<String>,
    /// Chinese.
    pub zh: String,
    /// English.
    pub en: String,
}

impl Problem {
    fn new(sheet: &str, row: Option<u32>, column: Option<&str>, r: Reason) -> Problem {
        Problem {
            sheet: sheet.to_string(),
            row,
            column: column.map(str::to_string),
            zh: r.zh,
            en: r.en,
        }
    }

    /// Where, in Chinese: `工作表「东关社区党委」第 5 行「出生年月」列`.
    pub fn place(&self) -> String {
        let mut s = String::new();
        if !self.sheet.is_empty() {
            s.push_str(&format!("工作表「{}」", self.sheet));
        }
        if let Some(r) = self.row {
            s.push_str(&format!("第 {r} 行"));
        }
        if let Some(c) = &self.column {
            s.push_str(&format!("「{c}」列"));
        }
        s
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = self.place();
        if place.is_empty() {
            write!(f, "{} ({})", self.zh, self.en)
        } else {
            write!(f, "{place}：{} ({})", self.zh, self.en)
        }
    }
}

/// A good row.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterRow {
    /// The sheet (empty for CSV).
    pub sheet: String,
    /// The row number.
    pub row: u32,
    /// The person the row describes.
    pub person: Person,
    /// The fields the file has columns for (an update leaves the others as they are).
    pub given: Vec<Field>,
}

/// What a roster file holds.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    /// The rows that read.
    pub rows: Vec<RosterRow>,
    /// Every bad row and cell (and problems with the file or a sheet as a whole).
    pub problems: Vec<Problem>,
    /// What was ignored: unknown headings, sheets without a 姓名 column.
    pub warnings: Vec<Problem>,
}

impl Roster {
    /// Problems that no skipping can get round: the file or a sheet as a whole.
    pub fn fatal(&self) -> bool {
        self.problems.iter().any(|p| p.row.is_none())
    }

    /// The bad rows, `(sheet, row)`, in order.
    pub fn bad_rows(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = Vec::new();
        for p in &self.problems {
            if let Some(r) = p.row
                && !out.iter().any(|(s, x)| *s == p.sheet && *x == r)
            {
                out.push((p.sheet.clone(), r));
            }
        }
        out
    }
}

/// A sheet as text cells: rows with their numbers.
struct Grid {
    name: String,
    rows: Vec<(u32, Vec<String>)>,
}

/// A sheet's rows as text cells with their numbers, read one at a time; an error ends the
/// file (it cannot be read).
type Rows<'a> = Box<dyn Iterator<Item = Result<(u32, Vec<String>), Reason>> + Send + 'a>;

/// A sheet to read: its name and rows.
struct Sheet<'a> {
    name: String,
    rows: Rows<'a>,
}

/// The sheet being read, past its heading row.
struct Open<'a> {
    name: String,
    rows: Rows<'a>,
    /// Rows read while looking for the heading row, after it.
    ahead: std::collections::VecDeque<(u32, Vec<String>)>,
    columns: Vec<(usize, Field, String)>,
    sheet_unit: Option<String>,
}

/// A person's identity in the pool: name, unit, birth.
type Key = (String, String, chrono::NaiveDate);

/// Reads a roster one row at a time: [`Scanner::next_row`] gives each good row in file
/// order (a row with any problem, or the same person as an earlier row, is not given) and
/// [`Scanner::finish`] every problem and warning, as [`read`] reports them. A CSV file is
/// read as it goes (a city's roster is 100,000 rows: only the row being read and each
/// person's identity, to find the same person twice, are kept); a workbook is unpacked
/// whole first (calamine reads a sheet at once).
pub struct Scanner<'a> {
    ctx: Ctx<'a>,
    sheets: std::vec::IntoIter<Sheet<'a>>,
    open: Option<Open<'a>>,
    /// Each person read so far: the sheet (an index into `names`) and row.
    seen: HashMap<Key, (usize, u32)>,
    names: Vec<String>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    rows: usize,
    done: bool,
}

impl<'a> Scanner<'a> {
    /// Start reading a file.
    pub fn new(bytes: &'a [u8], format: Format, ctx: Ctx<'a>) -> Scanner<'a> {
        let sheets = match format {
            Format::Xlsx => xlsx_grids(bytes).map(|grids| {
                grids
                    .into_iter()
                    .map(|g| Sheet {
                        name: g.name,
                        rows: Box::new(g.rows.into_iter().map(Ok)) as Rows<'a>,
                    })
                    .collect()
            }),
            Format::Csv => Ok(vec![csv_sheet(bytes)]),
        };
        let mut s = Scanner {
            ctx,
            sheets: Vec::new().into_iter(),
            open: None,
            seen: HashMap::new(),
            names: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
            rows: 0,
            done: false,
        };
        match sheets {
            Ok(sheets) => s.sheets = sheets.into_iter(),
            Err(r) => s.fail(r),
        }
        s
    }

    /// The file cannot be read: that is its only problem (as when it was read whole).
    fn fail(&mut self, r: Reason) {
        self.problems.clear();
        self.warnings.clear();
        self.problems.push(Problem::new("", None, None, r));
        self.open = None;
        self.done = true;
    }

    /// True once any problem was found (a row, a sheet or the file).
    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// The next good row; None at the end of the file (or when it cannot be read).
    pub fn next_row(&mut self) -> Option<RosterRow> {
        loop {
            if self.done {
                return None;
            }
            let Some(open) = self.open.as_mut() else {
                match self.sheets.next() {
                    Some(sheet) => self.open_sheet(sheet),
                    None => self.done = true,
                }
                continue;
            };
            let next = match open.ahead.pop_front() {
                Some(r) => Some(Ok(r)),
                None => open.rows.next(),
            };
            match next {
                None => self.open = None,
                Some(Err(r)) => self.fail(r),
                Some(Ok((number, cells))) => {
                    if let Some(row) = self.read_row(number, &cells) {
                        self.rows += 1;
                        return Some(row);
                    }
                }
            }
        }
    }

    /// Every problem (by sheet and row) and warning; "no roster" when nothing was read.
    pub fn finish(mut self) -> (Vec<Problem>, Vec<Problem>) {
        while self.next_row().is_some() {}
        if self.rows == 0 && self.problems.is_empty() {
            self.problems.push(Problem::new(
                "",
                None,
                None,
                Reason::new(
                    "文件中没有名册：找不到含「姓名」列的表头",
                    "no roster in the file: no heading row with a 姓名 column",
                ),
            ));
        }
        self.problems
            .sort_by(|a, b| (&a.sheet, a.row).cmp(&(&b.sheet, b.row)));
        (self.problems, self.warnings)
    }

    /// Find a sheet's heading row among its first ten and its columns.
    fn open_sheet(&mut self, mut sheet: Sheet<'a>) {
        let mut first: Vec<(u32, Vec<String>)> = Vec::new();
        while first.len() < 10 {
            match sheet.rows.next() {
                Some(Ok(r)) => first.push(r),
                Some(Err(r)) => return self.fail(r),
                None => break,
            }
        }
        let header = first.iter().position(|(_, cells)| {
            cells
                .iter()
                .any(|c| Field::from_heading(c) == Some(Field::Name))
        });
        let Some(header) = header else {
            let filled = |c: &[String]| c.iter().any(|x| !x.trim().is_empty());
            let mut any = first.iter().any(|(_, c)| filled(c));
            for r in sheet.rows.by_ref() {
                match r {
                    Ok((_, c)) => any |= filled(&c),
                    Err(r) => return self.fail(r),
                }
            }
            if any && sheet.name != "汇总" {
                self.warnings.push(Problem::new(
                    &sheet.name,
                    None,
                    None,
                    Reason::new(
                        "没有含「姓名」列的表头，已跳过此工作表",
                        "no heading row with a 姓名 column; sheet skipped",
                    ),
                ));
            }
            return;
        };
        let mut ahead: std::collections::VecDeque<(u32, Vec<String>)> = first.into();
        let headings = ahead
            .drain(..=header)
            .next_back()
            .map(|(_, c)| c)
            .unwrap_or_default();
        let name = sheet.name;
        let mut columns: Vec<(usize, Field, String)> = Vec::new();
        for (i, h) in headings.iter().enumerate() {
            let h = h.trim();
            if h.is_empty() || IGNORED.contains(&h) {
                continue;
            }
            match Field::from_heading(h) {
                Some(f) if columns.iter().any(|(_, g, _)| *g == f) => {
                    self.problems.push(Problem::new(
                        &name,
                        None,
                        Some(h),
                        Reason::new(
                            format!("「{}」列出现了两次", f.heading()),
                            format!("two columns for {}", f.key()),
                        ),
                    ));
                }
                Some(f) => columns.push((i, f, h.to_string())),
                None => self.warnings.push(Problem::new(
                    &name,
                    None,
                    Some(h),
                    Reason::new(
                        format!("未识别的列「{h}」，已忽略"),
                        format!("unknown heading `{h}`, ignored"),
                    ),
                )),
            }
        }
        // A sheet named after a unit needs no unit column.
        let sheet_unit = super::pool::unit_id(self.ctx.directory, &name);
        let has = |f: Field| columns.iter().any(|(_, g, _)| *g == f);
        let mut missing = false;
        for f in Field::all().iter().copied().filter(|f| f.required()) {
            let named_by_sheet = f == Field::Unit && sheet_unit.is_some();
            if !has(f) && !named_by_sheet {
                missing = true;
                self.problems.push(Problem::new(
                    &name,
                    None,
                    Some(f.heading()),
                    Reason::new(
                        format!("缺少「{}」列", f.heading()),
                        format!("no {} column ({})", f.heading(), f.key()),
                    ),
                ));
            }
        }
        if missing {
            // The sheet's rows are not read (a CSV's rows still are, for a read error).
            for r in sheet.rows {
                if let Err(r) = r {
                    return self.fail(r);
                }
            }
            return;
        }
        self.open = Some(Open {
            name,
            rows: sheet.rows,
            ahead,
            columns,
            sheet_unit,
        });
    }

    /// A row of the open sheet: the person, or None (blank, bad, or a repeat).
    fn read_row(&mut self, number: u32, cells: &[String]) -> Option<RosterRow> {
        let ctx = self.ctx;
        let open = self.open.as_ref()?;
        let columns = &open.columns;
        let cell = |i: usize| cells.get(i).map(String::as_str).unwrap_or("");
        if columns.iter().all(|(i, _, _)| cell(*i).trim().is_empty()) {
            return None;
        }
        let has = |f: Field| columns.iter().any(|(_, g, _)| *g == f);
        let mut fields: Vec<(Field, String)> = columns
            .iter()
            .map(|(i, f, _)| (*f, cell(*i).to_string()))
            .collect();
        let mut given: Vec<Field> = columns.iter().map(|(_, f, _)| *f).collect();
        if let (false, Some(u)) = (has(Field::Unit), &open.sheet_unit) {
            fields.push((Field::Unit, u.clone()));
            given.push(Field::Unit);
        }
        if given.contains(&Field::TermStart) && !given.contains(&Field::TermEnd) {
            given.push(Field::TermEnd);
        }
        match Person::from_fields(&fields, ctx) {
            Ok(person) => {
                let key = (person.name.clone(), person.unit.clone(), person.birth);
                if self.names.last() != Some(&open.name) {
                    self.names.push(open.name.clone());
                }
                let sheet = self.names.len() - 1;
                if let Some((s, row)) = self.seen.get(&key) {
                    let first = &self.names[*s];
                    let (at, at_en) = if first.is_empty() {
                        (format!("第 {row} 行"), format!("row {row}"))
                    } else {
                        (
                            format!("工作表「{first}」第 {row} 行"),
                            format!("sheet {first} row {row}"),
                        )
                    };
                    self.problems.push(Problem::new(
                        &open.name,
                        Some(number),
                        Some(Field::Name.heading()),
                        Reason::new(
                            format!("与{at}是同一人（姓名、单位、出生年月相同）"),
                            format!("the same person (name, unit, birth) as {at_en}"),
                        ),
                    ));
                    return None;
                }
                self.seen.insert(key, (sheet, number));
                Some(RosterRow {
                    sheet: open.name.clone(),
                    row: number,
                    person,
                    given,
                })
            }
            Err(mut errors) => {
                // In the file's column order, as the clerk reads the row.
                let col = |f: &Field| {
                    columns
                        .iter()
                        .position(|(_, g, _)| g == f)
                        .unwrap_or(usize::MAX)
                };
                errors.sort_by_key(|(f, _)| col(f));
                for (f, r) in errors {
                    let heading = columns
                        .iter()
                        .find(|(_, g, _)| *g == f)
                        .map(|(_, _, h)| h.as_str())
                        .unwrap_or(f.heading());
                    self.problems
                        .push(Problem::new(&open.name, Some(number), Some(heading), r));
                }
                None
            }
        }
    }
}

/// Read a roster whole. Every bad row is reported (each cell that is wrong, with its
/// heading); a row with any problem is not among [`Roster::rows`]. The same person (name,
/// unit and birth) twice in the file is a problem of the second row. [`Scanner`] reads one
/// row at a time.
pub fn read(bytes: &[u8], format: Format, ctx: Ctx<'_>) -> Roster {
    let mut scanner = Scanner::new(bytes, format, ctx);
    let mut rows = Vec::new();
    while let Some(r) = scanner.next_row() {
        rows.push(r);
    }
    let (problems, warnings) = scanner.finish();
    Roster {
        rows,
        problems,
        warnings,
    }
}

/// The headings that are known and carry nothing to keep.
const IGNORED: &[&str] = &["序号", "编号"];

fn unreadable(what: &str, e: impl std::fmt::Display) -> Reason {
    Reason::new(
        format!("无法读取{what}文件：{e}"),
        format!("cannot read the {what} file: {e}"),
    )
}

fn xlsx_grids(bytes: &[u8]) -> Result<Vec<Grid>, Reason> {
    use calamine::{Data, Reader};
    let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(bytes.to_vec()))
        .map_err(|e| unreadable("Excel", e))?;
    let mut out = Vec::new();
    for (name, range) in book.worksheets() {
        let (row0, col0) = range.start().unwrap_or((0, 0));
        let rows = range
            .rows()
            .enumerate()
            .map(|(i, r)| {
                let mut cells = vec![String::new(); col0 as usize];
                cells.extend(r.iter().map(|c| {
                    match c {
                        Data::Empty | Data::Error(_) => String::new(),
                        Data::String(s) | Data::DurationIso(s) => s.clone(),
                        Data::DateTimeIso(s) => s.chars().take(10).collect(),
                        Data::Int(n) => n.to_string(),
                        Data::Float(f) => f.to_string(),
                        Data::Bool(b) => b.to_string(),
                        Data::DateTime(d) => super::pool::excel_serial(d.as_f64())
                            .map(|d| d.format("%Y-%m-%d").to_string())
                            .unwrap_or_else(|| d.as_f64().to_string()),
                    }
                }));
                (row0 + i as u32 + 1, cells)
            })
            .collect();
        out.push(Grid { name, rows });
    }
    Ok(out)
}

/// A CSV file as a sheet read record by record. UTF-8 is read in place; GB18030 (as Excel
/// saves CSV on Chinese Windows) is decoded first, which needs a copy of the text.
fn csv_sheet(bytes: &[u8]) -> Sheet<'_> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let source: Box<dyn std::io::Read + Send + '_> = match std::str::from_utf8(bytes) {
        Ok(_) => Box::new(bytes),
        Err(_) => Box::new(Cursor::new(
            encoding_rs::GB18030
                .decode(bytes)
                .0
                .into_owned()
                .into_bytes(),
        )),
    };
    let reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(source);
    let rows = reader.into_records().enumerate().map(|(i, rec)| {
        let rec = rec.map_err(|e| unreadable("CSV", e))?;
        let line = rec.position().map_or(i as u32 + 1, |p| p.line() as u32);
        Ok((line, rec.iter().map(str::to_string).collect()))
    });
    Sheet {
        name: String::new(),
        rows: Box::new(rows),
    }
}

/// A worksheet name Excel accepts, from a branch's name: no `[ ] : * ? / \`, no leading or
/// trailing apostrophe, at most 31 characters, not `History`, and unique in the workbook
/// (without regard to case; a repeat gets ` (2)`).
pub fn sheet_name(name: &str, used: &mut HashSet<String>) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut clean = clean.trim().trim_matches('\'').to_string();
    if clean.is_empty() || clean.eq_ignore_ascii_case("history") {
        clean = format!("{clean}_");
    }
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let mut candidate = cut(&clean, 31);
    let mut n = 2;
    while used.contains(&candidate.to_lowercase()) {
        let suffix = format!(" ({n})");
        candidate = format!("{}{suffix}", cut(&clean, 31 - suffix.chars().count()));
        n += 1;
    }
    used.insert(candidate.to_lowercase());
    candidate
}

/// The summary sheet's name.
pub const SUMMARY: &str = "汇总";

/// Errors writing a workbook.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the workbook: {0}")]
pub struct WriteError(#[from] rust_xlsxwriter::XlsxError);

/// Every unit to list: the branches of the directory, then any other unit with people.
fn units_in_order<'a>(people: &[&'a Person], directory: &'a Directory) -> Vec<String> {
    let mut out: Vec<String> = directory
        .units
        .iter()
        .filter(|u| u.kind == UnitKind::Branch || people.iter().any(|p| p.unit == u.id.value))
        .map(|u| u.id.value.clone())
        .collect();
    for p in people {
        if !out.contains(&p.unit) {
            out.push(p.unit.clone());
        }
    }
    out
}

/// The pool as a workbook: a summary sheet (汇总: per branch, the people in the pool by
/// tier, their total and how many were removed), then one sheet per unit with people, in
/// the directory's order, every field a column under its heading, 序号 first. Dates are
/// text as the rosters write them, so reading the file back gives the same registry.
pub fn write_xlsx(
    people: &[Person],
    directory: &Directory,
    tiers: &TierNames,
) -> Result<Vec<u8>, WriteError> {
    use rust_xlsxwriter::{Format as Fmt, Workbook};
    let bold = Fmt::new().set_bold();
    let mut book = Workbook::new();
    let mut used = HashSet::new();
    let refs: Vec<&Person> = people.iter().collect();
    let units = units_in_order(&refs, directory);
    let name_of = |id: &str| {
        directory
            .unit(id)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let mut by_unit: BTreeMap<&str, Vec<&Person>> = BTreeMap::new();
    for p in people {
        by_unit.entry(p.unit.as_str()).or_default().push(p);
    }

    let summary = book.add_worksheet();
    summary.set_name(sheet_name(SUMMARY, &mut used))?;
    let mut head = vec!["单位".to_string()];
    head.extend(Tier::all().map(|t| tiers.name(t).to_string()));
    head.extend(["在库合计".to_string(), "调整出库".to_string()]);
    for (c, h) in head.iter().enumerate() {
        summary.write_string_with_format(0, c as u16, h, &bold)?;
    }
    summary.set_column_width(0, 24)?;
    let mut totals = [0u32; 6];
    let mut r = 1u32;
    for u in &units {
        let list = by_unit.get(u.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let mut counts = [0u32; 6];
        for p in list {
            match p.status {
                PersonStatus::Active => {
                    counts[usize::from(p.tier.get() - 1)] += 1;
                    counts[4] += 1;
                }
                PersonStatus::Removed => counts[5] += 1,
            }
        }
        summary.write_string(r, 0, name_of(u))?;
        for (i, n) in counts.iter().enumerate() {
            summary.write_number(r, i as u16 + 1, *n)?;
            totals[i] += n;
        }
        r += 1;
    }
    summary.write_string_with_format(r, 0, "合计", &bold)?;
    for (i, n) in totals.iter().enumerate() {
        summary.write_number_with_format(r, i as u16 + 1, *n, &bold)?;
    }

    for u in &units {
        let Some(list) = by_unit.get(u.as_str()) else {
            continue;
        };
        let mut list = list.clone();
        list.sort_by_key(|p| (p.status == PersonStatus::Removed, p.tier, p.name.clone()));
        let sheet = book.add_worksheet();
        sheet.set_name(sheet_name(&name_of(u), &mut used))?;
        sheet.write_string_with_format(0, 0, "序号", &bold)?;
        for (c, f) in Field::all().iter().enumerate() {
            sheet.write_string_with_format(0, c as u16 + 1, f.heading(), &bold)?;
            sheet.set_column_width(c as u16 + 1, 12)?;
        }
        for (i, p) in list.iter().enumerate() {
            let row = i as u32 + 1;
            sheet.write_number(row, 0, row)?;
            for (c, f) in Field::all().iter().enumerate() {
                let text = p.text(*f, directory, tiers);
                if !text.is_empty() {
                    sheet.write_string(row, c as u16 + 1, text)?;
                }
            }
        }
    }
    Ok(book.save_to_buffer()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diagnostic::Diagnostics;
    use chrono::NaiveDate;

    fn directory() -> Directory {
        let text = include_str!("../../config/directory.yaml");
        Directory::parse(text, &mut Diagnostics::new("d")).expect("directory")
    }

    fn ctx<'a>(d: &'a Directory, t: &'a TierNames) -> Ctx<'a> {
        Ctx {
            directory: d,
            tiers: t,
            today: NaiveDate::from_ymd_opt(2026, 1, 10).expect("date"),
        }
    }

    #[test]
    fn a_csv_with_a_title_row_and_headings_in_any_order_reads() {
        let (d, t) = (directory(), TierNames::default());
        let csv = "后备干部队伍名册,,,,\n序号,梯队,出生年月,姓名,所在单位,性别\n1,第二梯队,1990.05,张三,东关社区党委,男\n2,1,1988年3月,李四,xiguan,女\n";
        let r = read(csv.as_bytes(), Format::Csv, ctx(&d, &t));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.rows[0].person.unit, "dongguan");
        assert_eq!(r.rows[0].row, 3);
        assert_eq!(r.rows[1].person.tier.get(), 1);
        assert_eq!(
            r.rows[1].person.term_end,
            NaiveDate::from_ymd_opt(2028, 1, 10)
        );
    }

    #[test]
    fn every_bad_cell_is_reported_with_row_and_heading() {
        let (d, t) = (directory(), TierNames::default());
        let csv = "姓名,所在单位,梯队,出生年月,政治面貌\n张三,东关社区党委,5,1990.05,党员\n,无此社区,1,1990-13-01,\n王五,dongguan,2,1991.02,\n";
        let r = read(csv.as_bytes(), Format::Csv, ctx(&d, &t));
        let places: Vec<String> = r.problems.iter().map(Problem::place).collect();
        assert_eq!(
            places,
            [
                "第 2 行「梯队」列",
                "第 3 行「姓名」列",
                "第 3 行「所在单位」列",
                "第 3 行「出生年月」列"
            ]
        );
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert_eq!(r.bad_rows().len(), 2);
        assert!(!r.fatal());
    }

    #[test]
    fn a_missing_required_column_refuses_the_sheet() {
        let (d, t) = (directory(), TierNames::default());
        let r = read("姓名,梯队\n张三,1\n".as_bytes(), Format::Csv, ctx(&d, &t));
        assert!(r.fatal());
        assert!(r.rows.is_empty());
    }

    #[test]
    fn gb18030_csv_as_excel_saves_it_reads() {
        let (d, t) = (directory(), TierNames::default());
        let text = "姓名,所在单位,梯队,出生年月\n张三,东关社区党委,1,1990.05\n";
        let (bytes, _, _) = encoding_rs::GB18030.encode(text);
        let r = read(&bytes, Format::Csv, ctx(&d, &t));
        assert_eq!(r.rows.len(), 1, "{:?}", r.problems);
        assert_eq!(r.rows[0].person.name, "张三");
    }

    #[test]
    fn a_workbook_with_number_and_date_cells_reads_them_as_the_rosters_mean() {
        use rust_xlsxwriter::{ExcelDateTime, Format as Fmt, Workbook};
        let (d, t) = (directory(), TierNames::default());
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        sheet.set_name("东关社区党委").expect("name");
        sheet
            .write_string(0, 0, "东关社区后备干部名册")
            .expect("title");
        for (c, h) in ["序号", "姓名", "梯队", "出生年月", "入库时间", "联系电话"]
            .iter()
            .enumerate()
        {
            sheet.write_string(1, c as u16, *h).expect("heading");
        }
        let date_format = Fmt::new().set_num_format("yyyy-mm-dd");
        sheet.write_number(2, 0, 1).expect("n");
        sheet.write_string(2, 1, "张三").expect("name");
        sheet.write_number(2, 2, 2).expect("tier");
        // Excel keeps 1990.10 as the number 1990.1.
        sheet.write_number(2, 3, 1990.1).expect("birth");
        let joined = ExcelDateTime::from_ymd(2019, 7, 19).expect("date");
        sheet
            .write_datetime_with_format(2, 4, &joined, &date_format)
            .expect("joined");
        sheet.write_number(2, 5, 13800000000.0).expect("phone");
        let bytes = book.save_to_buffer().expect("save");
        let r = read(&bytes, Format::sniff(&bytes), ctx(&d, &t));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let p = &r.rows[0].person;
        assert_eq!(r.rows[0].row, 3);
        assert_eq!(p.unit, "dongguan", "the sheet names the unit");
        assert_eq!(p.birth, NaiveDate::from_ymd_opt(1990, 10, 1).expect("date"));
        assert_eq!(
            p.joined_at,
            NaiveDate::from_ymd_opt(2019, 7, 19).expect("date")
        );
        assert_eq!(p.phone.as_deref(), Some("13800000000"));
        assert_eq!(p.tier.get(), 2);
    }

    #[test]
    fn sheet_names_follow_excels_rules() {
        let mut used = HashSet::new();
        assert_eq!(
            sheet_name("东关/西关[联合]:党委?", &mut used),
            "东关_西关_联合__党委_"
        );
        let long = "一".repeat(40);
        assert_eq!(sheet_name(&long, &mut used).chars().count(), 31);
        let again = sheet_name(&long, &mut used);
        assert!(
            again.ends_with(" (2)") && again.chars().count() == 31,
            "{again}"
        );
        assert_eq!(sheet_name("'History'", &mut used), "History_");
        assert_eq!(sheet_name("history", &mut used), "history_ (2)");
    }

    #[test]
    fn an_exported_workbook_reads_back_as_the_same_people() {
        let (d, t) = (directory(), TierNames::default());
        let csv = "姓名,所在单位,梯队,出生年月,性别,入库时间,任期开始,任期结束,状态,出库原因,出库时间,备注\n张三,东关社区党委,2,1990.05,男,2019-07-19,2019-07-19,2021-07-19,在库,,,\n李四,dongguan,1,1988-03-15,女,2019-07-19,,,调整出库,考核不称职,2020-12-31,\"逗号,引号\"\"\"\n";
        let first = read(csv.as_bytes(), Format::Csv, ctx(&d, &t));
        assert!(first.problems.is_empty(), "{:?}", first.problems);
        let people: Vec<Person> = first.rows.iter().map(|r| r.person.clone()).collect();
        let bytes = write_xlsx(&people, &d, &t).expect("write");
        let again = read(&bytes, Format::sniff(&bytes), ctx(&d, &t));
        assert!(again.problems.is_empty(), "{:?}", again.problems);
        let mut back: Vec<Person> = again.rows.into_iter().map(|r| r.person).collect();
        back.sort_by(|a, b| a.name.cmp(&b.name));
        let mut people = people;
        people.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back, people);
    }
}
