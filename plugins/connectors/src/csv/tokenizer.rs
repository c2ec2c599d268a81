//! Splitting CSV bytes into records and fields.
//!
//! Fields are not copied: a field is a [`Span`] into the input, except when unquoting changes
//! its bytes (doubled quotes, escapes, text after a closing quote), in which case the
//! unquoted text goes to a side buffer. Records end at `\n`; a `\r` right before it belongs
//! to the terminator. Blank lines and comment lines are skipped but counted, so every record
//! knows the physical line it starts on.

use memchr::{memchr, memchr_iter, memchr2, memrchr};

/// How the CSV is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dialect {
    /// Field separator.
    pub delimiter: u8,
    /// Quote character.
    pub quote: u8,
    /// Escape character inside quotes (`None`: RFC 4180 doubled quotes only).
    pub escape: Option<u8>,
    /// Lines starting with this character are skipped.
    pub comment: Option<u8>,
    /// Trim spaces and tabs around unquoted fields.
    pub trim: bool,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect { delimiter: b',', quote: b'"', escape: None, comment: None, trim: false }
    }
}

/// Marks a span that points into the side buffer rather than the input.
const UNQUOTED: u32 = 1 << 31;

/// Largest input a tokenizer accepts (spans are 31-bit offsets).
pub(crate) const MAX_INPUT: usize = (UNQUOTED - 1) as usize;

/// Where one field's text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

/// The fields of tokenized records: spans plus the side buffer for rewritten fields.
#[derive(Debug, Default)]
pub(crate) struct FieldBuf {
    /// One span per field, records back to back.
    pub spans: Vec<Span>,
    unquoted: Vec<u8>,
}

impl FieldBuf {
    /// The text of a field of `input`.
    #[inline]
    pub(crate) fn get<'a>(&'a self, input: &'a [u8], s: Span) -> &'a [u8] {
        if s.start & UNQUOTED == 0 {
            &input[s.start as usize..s.end as usize]
        } else {
            &self.unquoted[(s.start & !UNQUOTED) as usize..s.end as usize]
        }
    }

    /// The 16 bytes starting where a field's text starts, when the buffer holds that many
    /// (they may run past the field; see `push_text`).
    #[inline]
    pub(crate) fn window16<'a>(&'a self, input: &'a [u8], s: Span) -> Option<&'a [u8; 16]> {
        let (buf, start) = if s.start & UNQUOTED == 0 {
            (input, s.start as usize)
        } else {
            (&self.unquoted[..], (s.start & !UNQUOTED) as usize)
        };
        buf.get(start..start + 16)?.try_into().ok()
    }

    /// Forgets all fields (keeping the allocations).
    pub(crate) fn clear(&mut self) {
        self.spans.clear();
        self.unquoted.clear();
    }

    /// Total text length of the given spans (to size builders).
    pub(crate) fn text_len(spans: impl Iterator<Item = Span>) -> usize {
        spans.map(|s| (s.end - (s.start & !UNQUOTED)) as usize).sum()
    }
}

/// One record found by [`Cursor::next_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    /// Byte offset where the record starts.
    pub start: usize,
    /// Byte offset where it ends, excluding its line terminator.
    pub end: usize,
    /// Line breaks before the record (0-based physical line, relative to the input).
    pub line: u64,
    /// Number of fields pushed to the `FieldBuf`.
    pub fields: usize,
}

/// What [`Cursor::next_record`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A complete record.
    Record(Record),
    /// The input ends inside a quoted field and no more input follows; the rest of the
    /// input (from `start`) is one broken record.
    Unterminated { start: usize, line: u64 },
    /// The input ends inside the record starting at `start`; more input is needed.
    Incomplete { start: usize, line: u64 },
    /// No more records.
    End,
}

/// Reads records one after another from a byte buffer.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    d: Dialect,
    at_eof: bool,
    /// Offset of the next unread byte.
    pub pos: usize,
    /// Line breaks consumed so far.
    pub newlines: u64,
}

enum Quoted {
    Field { span: Span, next: usize, newlines: u64 },
    Incomplete,
    Unterminated,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`; `at_eof` says whether the input ends with `buf`.
    pub(crate) fn new(buf: &'a [u8], d: Dialect, at_eof: bool) -> Self {
        debug_assert!(buf.len() <= MAX_INPUT);
        Cursor { buf, d, at_eof, pos: 0, newlines: 0 }
    }

    /// Skips blank and comment lines; false if the input ran out part way through one.
    fn skip_ignored_lines(&mut self) -> bool {
        let buf = self.buf;
        while self.pos < buf.len() {
            let i = self.pos;
            let b = buf[i];
            if b == b'\n' {
                self.pos += 1;
                self.newlines += 1;
            } else if b == b'\r' && i + 1 < buf.len() && buf[i + 1] == b'\n' {
                self.pos += 2;
                self.newlines += 1;
            } else if b == b'\r' && i + 1 == buf.len() {
                if !self.at_eof {
                    return false;
                }
                self.pos += 1;
            } else if Some(b) == self.d.comment {
                match memchr(b'\n', &buf[i..]) {
                    Some(p) => {
                        self.pos = i + p + 1;
                        self.newlines += 1;
                    }
                    None if self.at_eof => self.pos = buf.len(),
                    None => return false,
                }
            } else {
                break;
            }
        }
        true
    }

    /// Reads the next record, appending its fields to `out`.
    pub(crate) fn next_record(&mut self, out: &mut FieldBuf) -> Step {
        if !self.skip_ignored_lines() {
            return Step::Incomplete { start: self.pos, line: self.newlines };
        }
        let buf = self.buf;
        let len = buf.len();
        if self.pos >= len {
            return Step::End;
        }
        let d = self.d;
        let start = self.pos;
        let line = self.newlines;
        let spans_before = out.spans.len();
        let unquoted_before = out.unquoted.len();
        let mut inner_newlines = 0u64;
        let mut i = start;
        loop {
            let mut fs = i;
            if d.trim {
                // Never past a delimiter: with `delimiter = "\t"` a tab ends the field.
                while fs < len && (buf[fs] == b' ' || buf[fs] == b'\t') && buf[fs] != d.delimiter {
                    fs += 1;
                }
            }
            if fs < len && buf[fs] == d.quote {
                match self.quoted_field(fs, out) {
                    Quoted::Field { span, next, newlines } => {
                        out.spans.push(span);
                        inner_newlines += newlines;
                        i = next;
                    }
                    Quoted::Incomplete => {
                        out.spans.truncate(spans_before);
                        out.unquoted.truncate(unquoted_before);
                        return Step::Incomplete { start, line };
                    }
                    Quoted::Unterminated => {
                        out.spans.truncate(spans_before);
                        out.unquoted.truncate(unquoted_before);
                        self.newlines += memchr_iter(b'\n', &buf[start..]).count() as u64;
                        self.pos = len;
                        return Step::Unterminated { start, line };
                    }
                }
            } else {
                let e = find_stop(buf, fs, d.delimiter);
                let mut fe = e;
                if (e == len || buf[e] == b'\n') && fe > fs && buf[fe - 1] == b'\r' {
                    fe -= 1;
                }
                if d.trim {
                    while fe > fs && (buf[fe - 1] == b' ' || buf[fe - 1] == b'\t') {
                        fe -= 1;
                    }
                }
                out.spans.push(Span { start: fs as u32, end: fe as u32 });
                i = e;
            }
            if i >= len {
                if !self.at_eof {
                    out.spans.truncate(spans_before);
                    out.unquoted.truncate(unquoted_before);
                    return Step::Incomplete { start, line };
                }
                let end = if buf[len - 1] == b'\r' { len - 1 } else { len };
                self.pos = len;
                self.newlines += inner_newlines;
                let fields = out.spans.len() - spans_before;
                return Step::Record(Record { start, end, line, fields });
            }
            if buf[i] == d.delimiter {
                i += 1;
                continue;
            }
            // buf[i] == b'\n'
            let end = if i > start && buf[i - 1] == b'\r' { i - 1 } else { i };
            self.pos = i + 1;
            self.newlines += inner_newlines + 1;
            let fields = out.spans.len() - spans_before;
            return Step::Record(Record { start, end, line, fields });
        }
    }

    /// Reads a quoted field whose opening quote is at `q`; `next` is the delimiter or line
    /// break after it (or the end of the input).
    fn quoted_field(&self, q: usize, out: &mut FieldBuf) -> Quoted {
        let buf = self.buf;
        let len = buf.len();
        let d = self.d;
        let content = q + 1;
        let mut j = content;
        let mut rewritten = false;
        let mut newlines = 0u64;
        let ran_out = if self.at_eof { Quoted::Unterminated } else { Quoted::Incomplete };
        let close = loop {
            let hit = match d.escape {
                None => memchr(d.quote, &buf[j..]),
                Some(e) => memchr2(d.quote, e, &buf[j..]),
            };
            let Some(off) = hit else { return ran_out };
            let p = j + off;
            newlines += memchr_iter(b'\n', &buf[j..p]).count() as u64;
            if buf[p] != d.quote {
                // An escape: the next byte is literal, whatever it is.
                if p + 1 >= len {
                    return ran_out;
                }
                newlines += u64::from(buf[p + 1] == b'\n');
                rewritten = true;
                j = p + 2;
                continue;
            }
            if p + 1 < len && buf[p + 1] == d.quote {
                rewritten = true;
                j = p + 2;
                continue;
            }
            if p + 1 >= len && !self.at_eof {
                // Cannot tell a closing quote from the first half of a doubled one yet.
                return Quoted::Incomplete;
            }
            break p;
        };
        // Text between the closing quote and the delimiter is kept (like most readers do).
        let after = close + 1;
        let next = find_stop(buf, after, d.delimiter);
        let mut te = next;
        if (next == len || buf[next] == b'\n') && te > after && buf[te - 1] == b'\r' {
            te -= 1;
        }
        let mut trailing = &buf[after..te];
        if d.trim {
            while let [rest @ .., b' ' | b'\t'] = trailing {
                trailing = rest;
            }
        }
        if !rewritten && trailing.is_empty() {
            let span = Span { start: content as u32, end: close as u32 };
            return Quoted::Field { span, next, newlines };
        }
        let start = out.unquoted.len();
        let text = &buf[content..close];
        let mut k = 0;
        while k < text.len() {
            let b = text[k];
            // Inside a well-formed quoted field a quote is always doubled and an escape is
            // always followed by the byte it escapes, so skipping one byte is safe.
            if (b == d.quote || Some(b) == d.escape) && k + 1 < text.len() {
                out.unquoted.push(text[k + 1]);
                k += 2;
            } else {
                out.unquoted.push(b);
                k += 1;
            }
        }
        out.unquoted.extend_from_slice(trailing);
        let span = Span { start: start as u32 | UNQUOTED, end: out.unquoted.len() as u32 };
        Quoted::Field { span, next, newlines }
    }
}

/// The first delimiter or `\n` at or after `i`, or the end of `buf`.
#[inline]
fn find_stop(buf: &[u8], mut i: usize, delim: u8) -> usize {
    // Eight bytes at a time: a byte equal to the target becomes zero after XOR, and the
    // classic "has zero byte" test flags it. Flags above the first true hit can be spurious
    // (borrows), so only the lowest flag is used, which is exact.
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let dm = LO * u64::from(delim);
    let nm = LO * u64::from(b'\n');
    while let Some(chunk) = buf.get(i..i + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else { break };
        let w = u64::from_le_bytes(bytes);
        let x = w ^ dm;
        let y = w ^ nm;
        let m = ((x.wrapping_sub(LO) & !x) | (y.wrapping_sub(LO) & !y)) & HI;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < buf.len() {
        let b = buf[i];
        if b == delim || b == b'\n' {
            return i;
        }
        i += 1;
    }
    buf.len()
}

/// A likely record boundary near the end of `buf`: the offset just after the last line break
/// that is outside quotes, judging quotes by a quick scan that assumes `buf` starts at a
/// record boundary. Comment lines and `trim` can fool the scan; callers verify with the
/// tokenizer and recover (see the reader), so a wrong guess costs time, never correctness.
pub(crate) fn last_boundary(buf: &[u8], d: Dialect) -> Option<usize> {
    let mut last = None;
    let mut i = 0;
    let mut outside_from = 0;
    loop {
        // Outside quotes: a quote only opens a quoted field at the start of a field.
        let Some(off) = memchr(d.quote, &buf[i..]) else {
            if let Some(n) = memrchr(b'\n', &buf[outside_from..]) {
                last = Some(outside_from + n + 1);
            }
            return last;
        };
        let q = i + off;
        i = q + 1;
        let at_field_start = q == 0 || buf[q - 1] == d.delimiter || buf[q - 1] == b'\n';
        if !at_field_start {
            continue;
        }
        if let Some(n) = memrchr(b'\n', &buf[outside_from..q]) {
            last = Some(outside_from + n + 1);
        }
        // Inside quotes: find the closing quote.
        loop {
            let hit = match d.escape {
                None => memchr(d.quote, &buf[i..]),
                Some(e) => memchr2(d.quote, e, &buf[i..]),
            };
            let Some(off) = hit else { return last };
            let p = i + off;
            if buf[p] != d.quote || buf.get(p + 1) == Some(&d.quote) {
                i = p + 2;
                if i > buf.len() {
                    return last;
                }
                continue;
            }
            i = p + 1;
            outside_from = i;
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All records of `input` as (line, fields) pairs, plus any final non-record step.
    fn records(input: &str, d: Dialect, at_eof: bool) -> (Vec<(u64, Vec<String>)>, Step) {
        let mut cur = Cursor::new(input.as_bytes(), d, at_eof);
        let mut out = Vec::new();
        loop {
            let mut fb = FieldBuf::default();
            match cur.next_record(&mut fb) {
                Step::Record(r) => {
                    let fields = fb
                        .spans
                        .iter()
                        .map(|s| String::from_utf8(fb.get(input.as_bytes(), *s).to_vec()).unwrap())
                        .collect();
                    assert_eq!(r.fields, fb.spans.len());
                    out.push((r.line, fields));
                }
                other => return (out, other),
            }
        }
    }

    fn fields(input: &str) -> Vec<Vec<String>> {
        records(input, Dialect::default(), true).0.into_iter().map(|(_, f)| f).collect()
    }

    #[test]
    fn quoted_fields_keep_delimiters_doubled_quotes_and_newlines() {
        let got = records("a,\"b,c\",\"say \"\"hi\"\"\"\n\"x\ny\",2,3\nlast,1,2\n", Dialect::default(), true);
        assert_eq!(got.0[0], (0, vec!["a".into(), "b,c".into(), "say \"hi\"".into()]));
        assert_eq!(got.0[1], (1, vec!["x\ny".into(), "2".into(), "3".into()]));
        // The quoted newline makes the third record start on the fourth physical line.
        assert_eq!(got.0[2], (3, vec!["last".into(), "1".into(), "2".into()]));
        assert_eq!(got.1, Step::End);
    }

    #[test]
    fn crlf_blank_lines_and_missing_final_newline() {
        assert_eq!(fields("a,b\r\n\r\n\nc,\"d\"\r\ne,f"), [["a", "b"], ["c", "d"], ["e", "f"]]);
        assert_eq!(fields("a,b\r"), [["a", "b"]]);
        assert_eq!(fields("a,\n"), [["a", ""]]);
        assert_eq!(fields(""), Vec::<Vec<String>>::new());
    }

    #[test]
    fn trim_keeps_empty_fields_between_tab_delimiters() {
        let d = Dialect { delimiter: b'\t', trim: true, ..Dialect::default() };
        let input = b"1\t x \t\t7\n";
        let mut fb = FieldBuf::default();
        let mut cur = Cursor::new(input, d, true);
        assert!(matches!(cur.next_record(&mut fb), Step::Record(_)));
        let fields: Vec<&[u8]> = fb.spans.iter().map(|s| fb.get(input, *s)).collect();
        assert_eq!(fields, [&b"1"[..], b"x", b"", b"7"]);
    }

    #[test]
    fn escapes_comments_trim_and_lenient_quotes() {
        let d = Dialect { escape: Some(b'\\'), comment: Some(b'#'), trim: true, ..Dialect::default() };
        let got = records("# note, \"odd\n a , \"b\\\"c\" ,\"\"\n#x\n 5'6\", z\n", d, true).0;
        assert_eq!(got[0], (1, vec!["a".into(), "b\"c".into(), "".into()]));
        assert_eq!(got[1], (3, vec!["5'6\"".into(), "z".into()]));
        // Text after a closing quote is kept; a quote inside an unquoted field is literal.
        assert_eq!(fields("\"ab\"c,d\"e\n"), [["abc", "d\"e"]]);
    }

    #[test]
    fn running_out_of_input_is_incomplete_or_unterminated() {
        let (recs, step) = records("a,b\nc,\"d\n", Dialect::default(), false);
        assert_eq!(recs.len(), 1);
        assert_eq!(step, Step::Incomplete { start: 4, line: 1 });
        let (_, step) = records("a,b\nc,d", Dialect::default(), false);
        assert_eq!(step, Step::Incomplete { start: 4, line: 1 });
        let (recs, step) = records("a,b\nc,\"d\ne\n", Dialect::default(), true);
        assert_eq!(recs.len(), 1);
        assert_eq!(step, Step::Unterminated { start: 4, line: 1 });
    }

    #[test]
    fn find_stop_finds_the_first_delimiter_or_newline() {
        let s = b"abcdefghij,klmnopq\nrst";
        assert_eq!(find_stop(s, 0, b','), 10);
        assert_eq!(find_stop(s, 11, b','), 18);
        assert_eq!(find_stop(s, 19, b','), 22);
        for i in 0..s.len() {
            let want = s[i..].iter().position(|&b| b == b',' || b == b'\n').map_or(s.len(), |p| p + i);
            assert_eq!(find_stop(s, i, b','), want);
        }
    }

    #[test]
    fn boundary_guess_skips_newlines_inside_quotes() {
        let d = Dialect::default();
        assert_eq!(last_boundary(b"a,b\nc,d\ne", d), Some(8));
        assert_eq!(last_boundary(b"a,b\nc,\"d\ne\"\nf,\"g\nh", d), Some(12));
        assert_eq!(last_boundary(b"5'6\",x\ny,z\n", d), Some(11));
        assert_eq!(last_boundary(b"abc", d), None);
    }
}
