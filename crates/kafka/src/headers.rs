//! A consumed record's headers, read as the bytes they are.
//!
//! rdkafka's `Headers::try_get` turns each header *name* into a `&str` with an `unwrap`
//! (rdkafka 0.39, `message.rs:284`), so one record whose header name is not UTF-8 panics
//! the worker that reads it — and every worker that is assigned its partition next, since
//! the offset never moves: a poison pill. Header bytes are input like the value, so they are
//! read here through librdkafka's C API instead, and a bad name is the caller's decision
//! (the worker sends such a record to the DLQ). This module is the only `unsafe` code in
//! Argus besides one `malloc_trim` call (`argus_model::memory`); each block says why it is sound.
#![allow(unsafe_code)]

use rdkafka::bindings as rdsys;
use rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
use rdkafka::message::BorrowedMessage;
use std::ffi::CStr;

/// A record's headers as they are on it, copied into one buffer: two allocations per
/// record whatever the count (a `Vec` per name and value cost the worker 2n + 1, the
/// largest share of its per-record allocations after the envelope's fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawHeaders {
    /// Every name and value, back to back.
    bytes: Vec<u8>,
    /// Where each header's name and value are in `bytes`, in order.
    spans: Vec<Span>,
}

/// One header's place in [`RawHeaders::bytes`]: name `start..name_end`, value
/// `name_end..end` (`None` for a null value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    name_end: usize,
    end: Option<usize>,
}

/// One header, borrowed from [`RawHeaders`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader<'a> {
    /// The name's bytes (Kafka does not require UTF-8).
    pub name: &'a [u8],
    /// The value's bytes; `None` for a null value.
    pub value: Option<&'a [u8]>,
}

impl RawHeader<'_> {
    /// The name, if it is UTF-8.
    pub fn name_str(&self) -> Option<&str> {
        std::str::from_utf8(self.name).ok()
    }

    /// The name for messages: UTF-8 as is, anything else as `\xNN` escapes.
    pub fn name_escaped(&self) -> String {
        self.name.escape_ascii().to_string()
    }
}

impl RawHeaders {
    /// No headers (allocates nothing).
    pub const fn new() -> Self {
        RawHeaders {
            bytes: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// `pairs` in order: for tests and for inputs that do not come from Kafka.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>) -> Self {
        let mut out = Self::new();
        for (name, value) in pairs {
            out.push(name, value);
        }
        out
    }

    /// Adds a header after the others.
    pub fn push(&mut self, name: &[u8], value: Option<&[u8]>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        let name_end = self.bytes.len();
        let end = value.map(|v| {
            self.bytes.extend_from_slice(v);
            self.bytes.len()
        });
        self.spans.push(Span {
            start,
            name_end,
            end,
        });
    }

    /// How many headers.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The headers, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = RawHeader<'_>> + Clone + '_ {
        self.spans.iter().map(|s| RawHeader {
            name: &self.bytes[s.start..s.name_end],
            value: s.end.map(|end| &self.bytes[s.name_end..end]),
        })
    }

    /// Names and values as pairs, the shape `argus_wire::read_bare` reads.
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + Clone + '_ {
        self.iter().map(|h| (h.name, h.value))
    }
}

/// The headers of `m`, in order; empty (and unallocated) when it has none.
pub fn raw_headers(m: &BorrowedMessage<'_>) -> RawHeaders {
    let mut hdrs: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `m.ptr()` points to the message `m` borrows, alive for this call. librdkafka
    // sets `hdrs` to the message's own header list (freed with the message, not by us), or
    // returns an error and leaves it null.
    let err = unsafe { rdsys::rd_kafka_message_headers(m.ptr(), &mut hdrs) };
    if err != RD_KAFKA_RESP_ERR_NO_ERROR || hdrs.is_null() {
        return RawHeaders::new();
    }
    // SAFETY: `hdrs` is the valid, non-null list returned above.
    let count = unsafe { rdsys::rd_kafka_header_cnt(hdrs) };
    // Two passes: the first sizes the buffer, so it is allocated once.
    let (mut n, mut bytes) = (0, 0);
    while let Some((name, value)) = (n < count).then(|| header_at(m, hdrs, n)).flatten() {
        bytes += name.len() + value.map_or(0, <[u8]>::len);
        n += 1;
    }
    let mut out = RawHeaders {
        bytes: Vec::with_capacity(bytes),
        spans: Vec::with_capacity(n),
    };
    for (name, value) in (0..n).map_while(|idx| header_at(m, hdrs, idx)) {
        out.push(name, value);
    }
    out
}

/// Header `idx` of `hdrs`, the header list of `_m`, borrowed for as long as `_m` is;
/// `None` past the last one.
fn header_at<'m>(
    _m: &'m BorrowedMessage<'_>,
    hdrs: *mut rdsys::rd_kafka_headers_t,
    idx: usize,
) -> Option<(&'m [u8], Option<&'m [u8]>)> {
    let mut name: *const std::os::raw::c_char = std::ptr::null();
    let mut value: *const std::os::raw::c_void = std::ptr::null();
    let mut size = 0usize;
    // SAFETY: `hdrs` is the valid header list of `_m` ([`raw_headers`]); librdkafka checks
    // `idx` against the count and returns an error past it. The out-pointers are ours. It
    // points `name` at a NUL-terminated copy and `value` at `size` bytes (or null), both
    // owned by the list, which is freed with the message, so they live as long as `'m`.
    let err =
        unsafe { rdsys::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size) };
    if err != RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
        return None;
    }
    // SAFETY: see above: `name` is a valid NUL-terminated string for `'m`.
    let name = unsafe { CStr::from_ptr(name) }.to_bytes();
    let value = (!value.is_null()).then(|| {
        // SAFETY: see above: `value` points to `size` readable bytes for `'m`.
        unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }
    });
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_utf8_are_escaped_not_trusted() {
        let hs = RawHeaders::from_pairs([
            (&b"cam\xff\xfe"[..], None),
            (&b"content-type"[..], Some(&b"image/jpeg"[..])),
        ]);
        let [h, ok] = [0, 1].map(|i| hs.iter().nth(i).expect("two headers"));
        assert_eq!(h.name_str(), None);
        assert_eq!(h.name_escaped(), "cam\\xff\\xfe");
        assert_eq!(ok.name_str(), Some("content-type"));
    }

    #[test]
    fn headers_keep_order_null_values_and_empty_values_apart() {
        assert!(RawHeaders::new().is_empty());
        let hs = RawHeaders::from_pairs([
            (&b"a"[..], Some(&b"1"[..])),
            (&b"null"[..], None),
            (&b"empty"[..], Some(&b""[..])),
            (&b""[..], Some(&b"no name"[..])),
            (&b"a"[..], Some(&b"2"[..])),
        ]);
        assert_eq!(hs.len(), 5);
        let got: Vec<_> = hs.pairs().collect();
        assert_eq!(
            got,
            [
                (&b"a"[..], Some(&b"1"[..])),
                (&b"null"[..], None),
                (&b"empty"[..], Some(&b""[..])),
                (&b""[..], Some(&b"no name"[..])),
                (&b"a"[..], Some(&b"2"[..])),
            ]
        );
    }
}
