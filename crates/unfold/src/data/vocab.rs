//! Vocabularies for symbol sequences: character-level (the characters seen in a text),
//! byte-level (all 256 bytes) and word-level (whitespace-separated tokens: tree leaves, labels),
//! each with the special symbols `<pad>` (0), `<bos>` (1), `<end>`
//! (2) and `<unk>` (3). Unknown characters encode to `<unk>`, never an error. A vocabulary
//! serialises to one string for a checkpoint's metadata, so sampling needs nothing but the
//! checkpoint.

use crate::error::{Error, Result};

/// Id of the padding symbol.
pub const PAD: usize = 0;
/// Id of the begin-of-sequence symbol.
pub const BOS: usize = 1;
/// Id of the end-of-sequence symbol.
pub const END: usize = 2;
/// Id of the unknown symbol.
pub const UNK: usize = 3;
/// Number of special symbols before the first real one.
pub const SPECIALS: usize = 4;
const SPECIAL_NAMES: [&str; SPECIALS] = ["<pad>", "<bos>", "<end>", "<unk>"];

/// How text is cut into symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vocab {
    /// One symbol per Unicode character, from a fixed list.
    Chars(Vec<char>),
    /// One symbol per byte (256), for any input.
    Bytes,
    /// One symbol per word of a fixed, sorted list (words hold no whitespace).
    Words(Vec<String>),
}

impl Vocab {
    /// The characters of `text`, sorted, as a vocabulary.
    pub fn chars_of(text: &str) -> Self {
        let mut cs: Vec<char> = text.chars().collect();
        cs.sort_unstable();
        cs.dedup();
        Vocab::Chars(cs)
    }

    /// The distinct words of `words`, sorted, as a vocabulary; a word must be non-empty and
    /// hold no whitespace.
    pub fn words_of<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut ws: Vec<String> = Vec::new();
        for w in words {
            if w.is_empty() || w.chars().any(char::is_whitespace) {
                return Err(Error::InvalidData(format!(
                    "'{w}' cannot be a vocabulary word (empty or holds whitespace)"
                )));
            }
            ws.push(w.to_string());
        }
        ws.sort_unstable();
        ws.dedup();
        Ok(Vocab::Words(ws))
    }

    /// Number of symbols, specials included.
    pub fn len(&self) -> usize {
        SPECIALS
            + match self {
                Vocab::Chars(c) => c.len(),
                Vocab::Bytes => 256,
                Vocab::Words(w) => w.len(),
            }
    }

    /// The id of one word of a word vocabulary ([`UNK`] when unknown, or for another kind of
    /// vocabulary).
    pub fn word_id(&self, word: &str) -> usize {
        match self {
            Vocab::Words(ws) => ws
                .binary_search_by(|w| w.as_str().cmp(word))
                .map_or(UNK, |i| i + SPECIALS),
            _ => UNK,
        }
    }

    /// Never empty: the specials are always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Symbol ids of `text` (unknown characters become [`UNK`]).
    pub fn encode(&self, text: &str) -> Vec<usize> {
        match self {
            Vocab::Chars(cs) => text
                .chars()
                .map(|c| cs.binary_search(&c).map_or(UNK, |i| i + SPECIALS))
                .collect(),
            Vocab::Bytes => text.bytes().map(|b| b as usize + SPECIALS).collect(),
            Vocab::Words(_) => text.split_whitespace().map(|w| self.word_id(w)).collect(),
        }
    }

    /// The text of one symbol: its character, its byte as a character (bytes outside ASCII
    /// come out as U+FFFD unless decoded together with [`Vocab::decode`]), or a special's name.
    pub fn symbol(&self, id: usize) -> String {
        if id < SPECIALS {
            return SPECIAL_NAMES[id].to_string();
        }
        match self {
            Vocab::Chars(cs) => cs
                .get(id - SPECIALS)
                .map_or("<unk>".into(), |c| c.to_string()),
            Vocab::Bytes => String::from_utf8_lossy(&[(id - SPECIALS) as u8]).into_owned(),
            Vocab::Words(ws) => ws.get(id - SPECIALS).map_or("<unk>".into(), |w| w.clone()),
        }
    }

    /// Text of a symbol sequence; special symbols are left out.
    pub fn decode(&self, ids: &[usize]) -> String {
        match self {
            Vocab::Chars(cs) => ids
                .iter()
                .filter(|&&i| i >= SPECIALS)
                .filter_map(|&i| cs.get(i - SPECIALS))
                .collect(),
            Vocab::Bytes => {
                let bytes: Vec<u8> = ids
                    .iter()
                    .filter(|&&i| (SPECIALS..SPECIALS + 256).contains(&i))
                    .map(|&i| (i - SPECIALS) as u8)
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Vocab::Words(ws) => ids
                .iter()
                .filter(|&&i| i >= SPECIALS)
                .filter_map(|&i| ws.get(i - SPECIALS).map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// One-string form for checkpoint metadata: `bytes`, `chars:` and the characters with `\`
    /// and newline escaped, or `words:` and the words separated by spaces.
    pub fn to_metadata(&self) -> String {
        match self {
            Vocab::Bytes => "bytes".into(),
            Vocab::Words(ws) => format!("words:{}", ws.join(" ")),
            Vocab::Chars(cs) => {
                let mut s = String::from("chars:");
                for &c in cs {
                    match c {
                        '\\' => s.push_str("\\\\"),
                        '\n' => s.push_str("\\n"),
                        '\r' => s.push_str("\\r"),
                        '\t' => s.push_str("\\t"),
                        c => s.push(c),
                    }
                }
                s
            }
        }
    }

    /// Parses [`Vocab::to_metadata`]'s form.
    pub fn from_metadata(s: &str) -> Result<Self> {
        if s == "bytes" {
            return Ok(Vocab::Bytes);
        }
        if let Some(body) = s.strip_prefix("words:") {
            let ws: Vec<String> = body
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect();
            if ws.windows(2).any(|p| p[0] >= p[1]) {
                return Err(Error::CheckpointMismatch(
                    "vocabulary words are not sorted and unique".into(),
                ));
            }
            return Ok(Vocab::Words(ws));
        }
        let body = s.strip_prefix("chars:").ok_or_else(|| {
            Error::CheckpointMismatch(format!("unknown vocabulary form '{s:.20}'"))
        })?;
        let mut cs = Vec::new();
        let mut it = body.chars();
        while let Some(c) = it.next() {
            cs.push(if c == '\\' {
                match it.next() {
                    Some('\\') => '\\',
                    Some('n') => '\n',
                    Some('r') => '\r',
                    Some('t') => '\t',
                    other => {
                        return Err(Error::CheckpointMismatch(format!(
                            "bad escape in vocabulary: \\{other:?}"
                        )))
                    }
                }
            } else {
                c
            });
        }
        let mut sorted = cs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted != cs {
            return Err(Error::CheckpointMismatch(
                "vocabulary characters are not sorted and unique".into(),
            ));
        }
        Ok(Vocab::Chars(cs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_maps_unknowns() {
        let v = Vocab::chars_of("hello\\ world\n\t");
        let ids = v.encode("hold?");
        assert_eq!(ids[4], UNK);
        assert_eq!(v.decode(&ids), "hold");
        let back = Vocab::from_metadata(&v.to_metadata()).unwrap();
        assert_eq!(back, v);
        assert_eq!(v.symbol(END), "<end>");
        let b = Vocab::Bytes;
        assert_eq!(b.decode(&b.encode("naïve")), "naïve");
        assert_eq!(Vocab::from_metadata("bytes").unwrap(), Vocab::Bytes);
        assert!(Vocab::from_metadata("chars:ba").is_err());
        assert!(Vocab::from_metadata("words").is_err());
    }

    #[test]
    fn word_vocabularies_round_trip() {
        let v = Vocab::words_of(["the", "cat", "the", "sat"]).unwrap();
        assert_eq!(v.len(), SPECIALS + 3);
        let ids = v.encode("the dog sat");
        assert_eq!(ids[1], UNK);
        assert_eq!(v.decode(&ids), "the sat");
        assert_eq!(v.symbol(v.word_id("cat")), "cat");
        assert_eq!(Vocab::from_metadata(&v.to_metadata()).unwrap(), v);
        assert!(Vocab::from_metadata("words:b a").is_err());
        assert!(Vocab::words_of(["a b"]).is_err());
    }
}
