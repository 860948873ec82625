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

/// One header as it is on the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// The name's bytes (Kafka does not require UTF-8).
    pub name: Vec<u8>,
    /// The value's bytes; `None` for a null value.
    pub value: Option<Vec<u8>>,
}

impl RawHeader {
    /// The name, if it is UTF-8.
    pub fn name_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.name).ok()
    }

    /// The name for messages: UTF-8 as is, anything else as `\xNN` escapes.
    pub fn name_escaped(&self) -> String {
        self.name.escape_ascii().to_string()
    }
}

/// The headers of `m`, in order; empty when it has none.
pub fn raw_headers(m: &BorrowedMessage<'_>) -> Vec<RawHeader> {
    let mut hdrs: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `m.ptr()` points to the message `m` borrows, alive for this call. librdkafka
    // sets `hdrs` to the message's own header list (freed with the message, not by us), or
    // returns an error and leaves it null.
    let err = unsafe { rdsys::rd_kafka_message_headers(m.ptr(), &mut hdrs) };
    if err != RD_KAFKA_RESP_ERR_NO_ERROR || hdrs.is_null() {
        return Vec::new();
    }
    // SAFETY: `hdrs` is the valid, non-null list returned above.
    let count = unsafe { rdsys::rd_kafka_header_cnt(hdrs) };
    let mut out = Vec::with_capacity(count);
    for idx in 0..count {
        let mut name: *const std::os::raw::c_char = std::ptr::null();
        let mut value: *const std::os::raw::c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: `hdrs` is valid and `idx < count`; the out-pointers are ours. librdkafka
        // points `name` at a NUL-terminated copy and `value` at `size` bytes (or null), both
        // owned by the list, which outlives this loop.
        let err =
            unsafe { rdsys::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size) };
        if err != RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            break;
        }
        // SAFETY: see above: `name` is a valid NUL-terminated string while `hdrs` lives.
        let name = unsafe { CStr::from_ptr(name) }.to_bytes().to_vec();
        let value = (!value.is_null()).then(|| {
            // SAFETY: see above: `value` points to `size` readable bytes.
            unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }.to_vec()
        });
        out.push(RawHeader { name, value });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_utf8_are_escaped_not_trusted() {
        let h = RawHeader {
            name: b"cam\xff\xfe".to_vec(),
            value: None,
        };
        assert_eq!(h.name_str(), None);
        assert_eq!(h.name_escaped(), "cam\\xff\\xfe");
        let ok = RawHeader {
            name: b"content-type".to_vec(),
            value: Some(b"image/jpeg".to_vec()),
        };
        assert_eq!(ok.name_str(), Some("content-type"));
    }
}
