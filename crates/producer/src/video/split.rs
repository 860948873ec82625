//! Splits a byte stream of concatenated JPEGs (ffmpeg's `-f image2pipe -c:v mjpeg`) into
//! frames, whatever the chunk boundaries of the pipe.
//!
//! Not a search for the `FF D9` end marker: those two bytes may sit inside a segment (an
//! APP or comment payload, a thumbnail), so the splitter walks the JPEG structure. From the
//! start of image (`FF D8`) it skips marker segments by their length; after a start of
//! scan (`FF DA`) it scans the entropy-coded data, where an `FF` is followed by `00`
//! (stuffing), `D0`–`D7` (restart markers) or `FF` (fill), and any other marker ends the
//! scan (another table or scan of a progressive JPEG, or `FF D9`, the end of the frame).
//! Bytes outside a frame are skipped; a frame cut short by a new `FF D8` is dropped and
//! the new one read; a frame longer than the limit is dropped. Each case is counted in
//! [`JpegSplitter::discarded_bytes`].

/// Where the splitter is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for a start of image.
    Seek,
    /// At a marker between segments (`pos` points at its `FF`).
    Markers,
    /// In entropy-coded data after a start of scan.
    Entropy,
}

/// Incremental JPEG splitter: [`push`](Self::push) bytes as they come, then take frames
/// with [`next_frame`](Self::next_frame) until it returns `None`.
#[derive(Debug)]
pub struct JpegSplitter {
    /// Bytes from the start of the current frame (or unexamined bytes when seeking).
    buf: Vec<u8>,
    /// How far into `buf` the structure has been walked; may lie past its end while a
    /// segment is still arriving.
    pos: usize,
    state: State,
    max_frame_bytes: usize,
    discarded: u64,
}

impl JpegSplitter {
    /// A splitter dropping frames longer than `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> JpegSplitter {
        JpegSplitter {
            buf: Vec::new(),
            pos: 0,
            state: State::Seek,
            max_frame_bytes: max_frame_bytes.max(4),
            discarded: 0,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes skipped so far: outside frames, or of frames cut short, malformed or too long.
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }

    /// Bytes held: the part of a frame received so far.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Forgets the partial frame held (the stream restarts); it counts as discarded.
    pub fn reset(&mut self) {
        self.discarded += self.buf.len() as u64;
        self.buf.clear();
        self.pos = 0;
        self.state = State::Seek;
    }

    /// The next complete frame, if the bytes pushed hold one.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.state {
                State::Seek => {
                    let Some(at) = find_soi(&self.buf) else {
                        // Keep a trailing FF: it may be the first half of the next FF D8.
                        let keep = usize::from(self.buf.last() == Some(&0xFF));
                        self.discard(self.buf.len() - keep);
                        return None;
                    };
                    self.discard(at);
                    self.pos = 2;
                    self.state = State::Markers;
                }
                State::Markers => {
                    let p = self.pos;
                    let (Some(&ff), Some(&m)) = (self.buf.get(p), self.buf.get(p + 1)) else {
                        return self.wait();
                    };
                    if ff != 0xFF {
                        self.resync();
                        continue;
                    }
                    match m {
                        0xFF => self.pos += 1, // fill byte before a marker
                        0xD9 => return Some(self.take(p + 2)),
                        0xD8 => {
                            // A new image before this one ended: this one was cut short.
                            self.discard(p);
                        }
                        0x01 | 0xD0..=0xD7 => self.pos += 2, // markers without a length
                        0x00 => self.resync(),
                        _ => {
                            let (Some(&hi), Some(&lo)) = (self.buf.get(p + 2), self.buf.get(p + 3))
                            else {
                                return self.wait();
                            };
                            let len = usize::from(u16::from_be_bytes([hi, lo]));
                            if len < 2 {
                                self.resync();
                                continue;
                            }
                            self.pos = p + 2 + len;
                            if m == 0xDA {
                                self.state = State::Entropy;
                            }
                        }
                    }
                }
                State::Entropy => {
                    let mut i = self.pos;
                    loop {
                        let Some(k) = self.buf.get(i..).and_then(memchr_ff) else {
                            // Scanned to the end (or the scan header is still arriving).
                            self.pos = i.max(self.buf.len());
                            return self.wait();
                        };
                        let at = i + k;
                        let Some(&next) = self.buf.get(at + 1) else {
                            self.pos = at;
                            return self.wait();
                        };
                        match next {
                            0x00 | 0xD0..=0xD7 => i = at + 2,
                            0xFF => i = at + 1,
                            _ => {
                                self.pos = at;
                                self.state = State::Markers;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }

    /// More bytes are needed; drops the frame if it is already over the limit.
    fn wait(&mut self) -> Option<Vec<u8>> {
        if self.buf.len() > self.max_frame_bytes {
            self.discard(self.buf.len());
        }
        None
    }

    /// The frame held is malformed: skip its first byte and look for the next image.
    fn resync(&mut self) {
        self.discard(1);
    }

    /// Drops the first `n` bytes and looks for the next image.
    fn discard(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.discarded += n as u64;
        self.buf.drain(..n);
        self.pos = 0;
        self.state = State::Seek;
    }

    /// Takes the first `end` bytes as a frame.
    fn take(&mut self, end: usize) -> Vec<u8> {
        let rest = self.buf.split_off(end);
        self.pos = 0;
        self.state = State::Seek;
        std::mem::replace(&mut self.buf, rest)
    }
}

fn memchr_ff(b: &[u8]) -> Option<usize> {
    b.iter().position(|&x| x == 0xFF)
}

fn find_soi(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == [0xFF, 0xD8])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// A JPEG-shaped frame: SOI, segments (whose payloads may hold FF D9 and FF D8), one
    /// or two scans of entropy data with stuffed FFs, restart markers and fill bytes, EOI.
    fn frame_strategy() -> impl Strategy<Value = Vec<u8>> {
        let segment = (
            prop::sample::select(vec![0xE0u8, 0xE1, 0xFE, 0xDB, 0xC4, 0xC0]),
            prop::collection::vec(any::<u8>(), 0..300),
            any::<bool>(),
        );
        let entropy = prop::collection::vec((any::<u8>(), 0u8..20), 0..2000);
        (
            prop::collection::vec(segment, 0..4),
            prop::collection::vec(entropy, 1..3),
        )
            .prop_map(|(segments, scans)| {
                let mut f = vec![0xFF, 0xD8];
                for (marker, payload, fill) in segments {
                    if fill {
                        f.push(0xFF);
                    }
                    f.extend([0xFF, marker]);
                    f.extend(u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
                    f.extend(payload);
                }
                for (n, scan) in scans.iter().enumerate() {
                    if n > 0 {
                        f.extend([0xFF, 0xC4, 0x00, 0x04, 0xFF, 0xD9]); // a DHT holding FF D9
                    }
                    f.extend([0xFF, 0xDA, 0x00, 0x08, 1, 2, 3, 0xFF, 0xD9, 6]);
                    for (b, r) in scan {
                        match r {
                            0 => f.extend([0xFF, 0xD0 + b % 8]),       // restart marker
                            1 => f.extend([0xFF, 0xFF, 0xD0 + b % 8]), // fill, then RST
                            _ if *b == 0xFF => f.extend([0xFF, 0x00]),
                            _ => f.push(*b),
                        }
                    }
                }
                f.extend([0xFF, 0xD9]);
                f
            })
    }

    /// Junk between frames that cannot be taken for a start of image.
    fn junk() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(0u8..0xFF, 0..20)
    }

    fn split_all(stream: &[u8], cuts: &[usize], max: usize) -> (Vec<Vec<u8>>, JpegSplitter) {
        let mut s = JpegSplitter::new(max);
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain([stream.len()].iter()) {
            let c = c.clamp(at, stream.len());
            s.push(&stream[at..c]);
            at = c;
            while let Some(f) = s.next_frame() {
                out.push(f);
            }
        }
        (out, s)
    }

    proptest! {
        #[test]
        fn frames_come_out_whole_whatever_the_chunks(
            frames in prop::collection::vec((junk(), frame_strategy()), 1..6),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
            tail in junk(),
        ) {
            let mut stream = Vec::new();
            for (j, f) in &frames {
                stream.extend(j);
                stream.extend(f);
            }
            stream.extend(&tail);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            cuts.sort_unstable();
            let (out, s) = split_all(&stream, &cuts, 1 << 20);
            let want: Vec<Vec<u8>> = frames.into_iter().map(|(_, f)| f).collect();
            prop_assert_eq!(out, want);
            prop_assert_eq!(s.pending_bytes(), 0);
        }

        #[test]
        fn real_jpegs_split_at_any_byte(
            sizes in prop::collection::vec((8u32..64, 8u32..64, 1u8..=100), 1..4),
            chunk in 1usize..700,
        ) {
            let frames: Vec<Vec<u8>> = sizes
                .iter()
                .map(|&(w, h, q)| {
                    let img = image::RgbImage::from_fn(w, h, |x, y| {
                        image::Rgb([(x * 37) as u8, (y * 11) as u8, (x ^ y) as u8])
                    });
                    crate::source::encode_jpeg(&img, q).unwrap()
                })
                .collect();
            let stream = frames.concat();
            let cuts: Vec<usize> = (chunk..stream.len()).step_by(chunk).collect();
            let (out, _) = split_all(&stream, &cuts, 1 << 20);
            prop_assert_eq!(out, frames);
        }
    }

    #[test]
    fn a_frame_cut_short_is_dropped_and_the_next_one_read() {
        let whole = [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 1, 2, 3, 0xFF, 0xD9].to_vec();
        let mut stream = whole[..8].to_vec(); // cut inside the entropy data
        stream.extend(&whole);
        let (out, s) = split_all(&stream, &[3, 9], 1 << 20);
        assert_eq!(out, vec![whole]);
        assert_eq!(s.discarded_bytes(), 8);
    }

    #[test]
    fn a_frame_over_the_limit_is_dropped() {
        let mut big = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
        big.extend(vec![7u8; 100]);
        big.extend([0xFF, 0xD9]);
        let small = [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 1, 0xFF, 0xD9].to_vec();
        let mut stream = big.clone();
        stream.extend(&small);
        let cuts: Vec<usize> = (10..stream.len()).step_by(10).collect();
        let (out, s) = split_all(&stream, &cuts, 50);
        assert_eq!(out, vec![small]);
        assert_eq!(s.discarded_bytes(), big.len() as u64);
    }

    #[test]
    fn reset_forgets_the_partial_frame() {
        let mut s = JpegSplitter::new(1000);
        s.push(&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 9]);
        assert_eq!(s.next_frame(), None);
        s.reset();
        s.push(&[0xFF, 0xD9, 0xFF, 0xD8, 0xFF, 0xD9]);
        assert_eq!(s.next_frame(), Some(vec![0xFF, 0xD8, 0xFF, 0xD9]));
        assert_eq!(s.discarded_bytes(), 7 + 2);
    }
}
