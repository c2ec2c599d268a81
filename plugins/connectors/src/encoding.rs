//! Text encodings of input files. Everything inside Sluice is UTF-8; files in a single-byte
//! encoding are decoded while they are read. Single-byte decoding needs no state, so any
//! block of a file decodes on its own, whatever its boundaries.

/// The encoding of an input file (the `encoding` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Encoding {
    /// UTF-8 (read as is; invalid bytes are reported per row).
    #[default]
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same number.
    Latin1,
    /// Windows-1252: Latin-1 with printable characters in 0x80–0x9F.
    Windows1252,
}

/// The names the `encoding` key accepts.
pub(crate) const ENCODING_NAMES: &[&str] = &["utf-8", "latin-1", "windows-1252"];

/// Code points of windows-1252 bytes 0x80–0x9F. The five bytes the code page leaves
/// undefined keep their Latin-1 (control character) meaning, as browsers do.
const CP1252_HIGH: [u16; 32] = [
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152,
    0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122,
    0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
];

impl Encoding {
    /// Parses the pipeline-file spelling (case and `-`/`_` do not matter).
    pub(crate) fn parse(name: &str) -> Option<Self> {
        let n: String = name.trim().to_ascii_lowercase().chars().filter(|c| *c != '-' && *c != '_').collect();
        match n.as_str() {
            "utf8" => Some(Encoding::Utf8),
            "latin1" | "iso88591" => Some(Encoding::Latin1),
            "windows1252" | "cp1252" => Some(Encoding::Windows1252),
            _ => None,
        }
    }

    /// The code point of a byte of this (single-byte) encoding.
    #[inline]
    fn code_point(self, b: u8) -> u32 {
        match self {
            Encoding::Windows1252 if (0x80..0xA0).contains(&b) => {
                u32::from(CP1252_HIGH[usize::from(b - 0x80)])
            }
            _ => u32::from(b),
        }
    }

    /// Appends `input`, decoded, to `out` as UTF-8. Only for single-byte encodings; UTF-8
    /// input is copied unchanged.
    pub(crate) fn decode_into(self, input: &[u8], out: &mut Vec<u8>) {
        if self == Encoding::Utf8 {
            out.extend_from_slice(input);
            return;
        }
        out.reserve(input.len() + input.len() / 8);
        let mut rest = input;
        while !rest.is_empty() {
            // Most text is ASCII, which is the same in every supported encoding: copy runs.
            let ascii = rest.iter().position(|b| !b.is_ascii()).unwrap_or(rest.len());
            out.extend_from_slice(&rest[..ascii]);
            rest = &rest[ascii..];
            let Some((&b, tail)) = rest.split_first() else { break };
            let cp = self.code_point(b);
            // Every code point here is at most U+FFFF and not a surrogate.
            if cp < 0x800 {
                out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]);
            } else {
                out.extend_from_slice(&[
                    0xE0 | (cp >> 12) as u8,
                    0x80 | ((cp >> 6) & 0x3F) as u8,
                    0x80 | (cp & 0x3F) as u8,
                ]);
            }
            rest = tail;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(e: Encoding, input: &[u8]) -> String {
        let mut out = Vec::new();
        e.decode_into(input, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_byte_encodings_decode_every_byte() {
        assert_eq!(decode(Encoding::Latin1, b"Jos\xe9 M\xfcller \xa3"), "José Müller £");
        assert_eq!(
            decode(Encoding::Windows1252, b"\x80 \x93quoted\x94 \x9f \x81"),
            "€ \u{201C}quoted\u{201D} Ÿ \u{81}"
        );
        assert_eq!(decode(Encoding::Latin1, b"\x80"), "\u{80}");
        let all: Vec<u8> = (0..=255).collect();
        for e in [Encoding::Latin1, Encoding::Windows1252] {
            assert_eq!(decode(e, &all).chars().count(), 256);
        }
        for (i, c) in decode(Encoding::Latin1, &all).chars().enumerate() {
            assert_eq!(c as usize, i);
        }
    }

    #[test]
    fn names_are_read_loosely() {
        assert_eq!(Encoding::parse("UTF-8"), Some(Encoding::Utf8));
        assert_eq!(Encoding::parse("latin1"), Some(Encoding::Latin1));
        assert_eq!(Encoding::parse("ISO-8859-1"), Some(Encoding::Latin1));
        assert_eq!(Encoding::parse("Windows-1252"), Some(Encoding::Windows1252));
        assert_eq!(Encoding::parse("utf-16"), None);
        for n in ENCODING_NAMES {
            assert!(Encoding::parse(n).is_some());
        }
    }
}
