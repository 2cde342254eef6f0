//! Splitting input into postbacks: one JSON object, a JSON array of objects, or NDJSON.
//!
//! Everything is streamed: a file of a million lines is read one postback at a time, and a JSON
//! array is walked element by element without holding the whole array. Items are handed over as
//! raw bytes, untouched, because the postback's original bytes are what gets verified and stored.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, BufRead};

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::skan::{ParseError, ParseErrorKind};

/// Largest single item accepted while looking for the end of a multi-line JSON value.
pub const MAX_ITEM_BYTES: usize = 1 << 20;

/// How the input is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Decide from the first non-blank byte: `[` means a JSON array; otherwise a sequence of JSON
    /// values, one per line or spread over several lines (pretty-printed objects).
    Auto,
    /// Strictly one JSON value per line (`application/x-ndjson`).
    Ndjson,
}

/// One framed item: the raw bytes of a candidate postback, or why the framing itself failed.
#[derive(Debug)]
pub enum Item {
    /// The bytes of one JSON value (not yet checked to be a postback).
    Raw(Vec<u8>),
    /// The input stopped being valid where this item should have been (a broken JSON array);
    /// nothing after it can be read.
    Broken(ParseError),
}

/// Feed every item of `reader` to `sink`, in order.
///
/// # Errors
/// An I/O error from the reader, or whatever `sink` returns.
pub fn for_each_item<R: BufRead>(
    mut reader: R,
    framing: Framing,
    mut sink: impl FnMut(Item) -> io::Result<()>,
) -> io::Result<()> {
    if framing == Framing::Auto && skip_blank_and_peek(&mut reader)? == Some(b'[') {
        return for_each_array_element(reader, sink);
    }
    let mut line = Vec::new();
    let mut pending = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            if !pending.is_empty() {
                sink(Item::Raw(std::mem::take(&mut pending)))?;
            }
            return Ok(());
        }
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        if framing == Framing::Ndjson {
            sink(Item::Raw(trimmed.to_vec()))?;
            continue;
        }
        if !pending.is_empty() {
            pending.push(b'\n');
        }
        pending.extend_from_slice(trimmed);
        let incomplete = matches!(
            serde_json::from_slice::<de::IgnoredAny>(&pending),
            Err(err) if err.is_eof()
        );
        if !incomplete || pending.len() > MAX_ITEM_BYTES {
            sink(Item::Raw(std::mem::take(&mut pending)))?;
        }
    }
}

/// Split an in-memory NDJSON body into its non-blank lines, trimmed, without copying.
#[must_use]
pub fn split_lines(body: &bytes::Bytes) -> Vec<bytes::Bytes> {
    body.split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .map(|line| body.slice_ref(line))
        .collect()
}

/// Skip white space and a UTF-8 byte-order mark; return the next byte without consuming it.
fn skip_blank_and_peek<R: BufRead>(reader: &mut R) -> io::Result<Option<u8>> {
    let mut at_start = true;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        if at_start && buf.starts_with(b"\xEF\xBB\xBF") {
            reader.consume(3);
            at_start = false;
            continue;
        }
        at_start = false;
        let blank = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if blank < buf.len() {
            let next = buf[blank];
            reader.consume(blank);
            return Ok(Some(next));
        }
        let len = buf.len();
        reader.consume(len);
    }
}

fn for_each_array_element<R: BufRead>(
    reader: R,
    mut sink: impl FnMut(Item) -> io::Result<()>,
) -> io::Result<()> {
    let sink_error = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut emitted = 0usize;
    let walk = ArrayWalker { sink: &mut sink, sink_error: &sink_error, emitted: &mut emitted };
    let result = walk.deserialize(&mut de).and_then(|()| de.end());
    if let Some(err) = sink_error.into_inner() {
        return Err(err);
    }
    match result {
        Ok(()) => Ok(()),
        Err(err) if err.is_io() => Err(io::Error::other(err)),
        Err(err) => sink(Item::Broken(ParseError {
            field: None,
            kind: ParseErrorKind::MalformedJson {
                detail: format!("the JSON array breaks after {emitted} element(s): {err}"),
            },
        })),
    }
}

struct ArrayWalker<'a, F> {
    sink: &'a mut F,
    sink_error: &'a RefCell<Option<io::Error>>,
    emitted: &'a mut usize,
}

impl<'de, F: FnMut(Item) -> io::Result<()>> DeserializeSeed<'de> for ArrayWalker<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(Item) -> io::Result<()>> Visitor<'de> for ArrayWalker<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of postbacks")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(element) = seq.next_element::<Box<RawValue>>()? {
            if let Err(err) = (self.sink)(Item::Raw(element.get().as_bytes().to_vec())) {
                *self.sink_error.borrow_mut() = Some(err);
                return Err(de::Error::custom("stopped by the consumer"));
            }
            *self.emitted += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(input: &str, framing: Framing) -> Vec<String> {
        let mut out = Vec::new();
        for_each_item(input.as_bytes(), framing, |item| {
            out.push(match item {
                Item::Raw(bytes) => String::from_utf8(bytes).unwrap(),
                Item::Broken(err) => format!("BROKEN {}", err.message()),
            });
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_single_pretty_printed_object_is_one_item() {
        let got = items("{\n  \"a\": 1,\n  \"b\": [1,\n 2]\n}\n", Framing::Auto);
        assert_eq!(got, ["{\n\"a\": 1,\n\"b\": [1,\n2]\n}"]);
    }

    #[test]
    fn ndjson_lines_are_items_and_blank_lines_are_skipped() {
        let got = items("{\"a\":1}\r\n\n{\"a\":2}\n", Framing::Auto);
        assert_eq!(got, ["{\"a\":1}", "{\"a\":2}"]);
    }

    #[test]
    fn a_malformed_line_is_its_own_item_and_the_next_line_still_reads() {
        let got = items("{\"a\":1}\n{\"a\" 2}\n{\"a\":3}\n", Framing::Auto);
        assert_eq!(got, ["{\"a\":1}", "{\"a\" 2}", "{\"a\":3}"]);
    }

    #[test]
    fn array_elements_are_items_with_their_exact_bytes() {
        let got = items("\u{feff} [ {\"a\": 1} ,{\"b\":[2, 3]} ]", Framing::Auto);
        assert_eq!(got, ["{\"a\": 1}", "{\"b\":[2, 3]}"]);
    }

    #[test]
    fn a_broken_array_reports_where_it_broke() {
        let got = items("[{\"a\":1}, {\"b\":", Framing::Auto);
        assert_eq!(got.len(), 2);
        assert!(got[1].starts_with("BROKEN") && got[1].contains("after 1 element"), "{got:?}");
    }

    #[test]
    fn in_memory_lines_are_zero_copy_trimmed_views() {
        let body = bytes::Bytes::from_static(b"{\"a\":1}\r\n\n  {\"a\":2}  \n");
        let lines = split_lines(&body);
        assert_eq!(lines, [&b"{\"a\":1}"[..], &b"{\"a\":2}"[..]]);
        assert_eq!(lines[1].as_ptr(), body[12..].as_ptr());
    }

    #[test]
    fn strict_ndjson_does_not_join_lines() {
        let got = items("{\n}\n", Framing::Ndjson);
        assert_eq!(got, ["{", "}"]);
    }

    #[test]
    fn an_unterminated_value_at_the_end_is_still_handed_over() {
        let got = items("{\"a\":1}\n{\"a\":", Framing::Auto);
        assert_eq!(got, ["{\"a\":1}", "{\"a\":"]);
    }
}
