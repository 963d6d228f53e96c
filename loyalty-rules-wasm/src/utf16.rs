//! Conversion between UTF-8 byte offsets (what the core reports) and UTF-16
//! code-unit offsets (what JavaScript strings, CodeMirror and Monaco count).

/// One non-ASCII character of the source.
#[derive(Debug, Clone, Copy)]
struct Wide {
    byte: usize,
    unit: usize,
    byte_len: usize,
    unit_len: usize,
}

/// Offset map for one source text. ASCII-only text maps every offset to itself
/// and costs nothing; otherwise each lookup is a binary search over the
/// non-ASCII characters.
#[derive(Debug)]
pub struct Utf16Map {
    len_bytes: usize,
    len_units: usize,
    wide: Vec<Wide>,
}

impl Utf16Map {
    pub fn new(source: &str) -> Self {
        let mut wide = Vec::new();
        let mut unit = 0usize;
        for (byte, ch) in source.char_indices() {
            let unit_len = ch.len_utf16();
            if !ch.is_ascii() {
                wide.push(Wide {
                    byte,
                    unit,
                    byte_len: ch.len_utf8(),
                    unit_len,
                });
            }
            unit += unit_len;
        }
        Utf16Map {
            len_bytes: source.len(),
            len_units: unit,
            wide,
        }
    }

    /// Length of the source in UTF-16 code units.
    pub fn len_utf16(&self) -> usize {
        self.len_units
    }

    /// UTF-8 byte offset -> UTF-16 code-unit offset. Offsets past the end clamp
    /// to the end; an offset inside a multi-byte character snaps to its start.
    pub fn to_utf16(&self, byte: usize) -> usize {
        let byte = byte.min(self.len_bytes);
        let k = self.wide.partition_point(|w| w.byte < byte);
        if k == 0 {
            return byte;
        }
        let w = self.wide[k - 1];
        if byte < w.byte + w.byte_len {
            // inside the character
            return w.unit;
        }
        w.unit + w.unit_len + (byte - (w.byte + w.byte_len))
    }

    /// UTF-16 code-unit offset -> UTF-8 byte offset. Offsets past the end clamp
    /// to the end; an offset inside a surrogate pair snaps to the character's start.
    pub fn to_byte(&self, unit: usize) -> usize {
        let unit = unit.min(self.len_units);
        let k = self.wide.partition_point(|w| w.unit < unit);
        if k == 0 {
            return unit;
        }
        let w = self.wide[k - 1];
        if unit < w.unit + w.unit_len {
            return w.byte;
        }
        w.byte + w.byte_len + (unit - (w.unit + w.unit_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_to_utf16(s: &str, byte: usize) -> usize {
        let mut b = byte.min(s.len());
        while !s.is_char_boundary(b) {
            b -= 1;
        }
        s[..b].encode_utf16().count()
    }

    #[test]
    fn ascii_is_identity() {
        let m = Utf16Map::new("hello");
        for i in 0..=5 {
            assert_eq!(m.to_utf16(i), i);
            assert_eq!(m.to_byte(i), i);
        }
        assert_eq!(m.to_utf16(99), 5);
    }

    #[test]
    fn non_ascii_round_trips() {
        let s = "rule \"Café €5 bonus 😀\"\nIF purchase.amout > $1";
        let m = Utf16Map::new(s);
        assert_eq!(m.len_utf16(), s.encode_utf16().count());
        for b in 0..=s.len() + 2 {
            assert_eq!(m.to_utf16(b), naive_to_utf16(s, b), "byte {b}");
        }
        for (b, _) in s.char_indices() {
            assert_eq!(m.to_byte(m.to_utf16(b)), b);
        }
        // inside the surrogate pair of the emoji snaps to the emoji's start
        let emoji = s.find('😀').unwrap();
        let u = m.to_utf16(emoji);
        assert_eq!(m.to_byte(u + 1), emoji);
        let err = s.find("amout").unwrap();
        assert_eq!(m.to_utf16(err), s[..err].encode_utf16().count());
    }
}
