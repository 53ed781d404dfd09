//! How a run's input bytes become records: NDJSON (one record per line), CSV (one record per
//! data line, each carrying the header), or the whole input as one record.
//!
//! The splitter hands out one record at a time and is told how much room the caller has left
//! before it builds the next one: a record's size (a CSV header repeated in it included) is
//! charged against the run's in-flight budget *before* it is allocated, so a small input that
//! frames into large records (a 4 MiB header over thousands of two-byte lines) can never be
//! turned into more memory than the budget. Besides the records it hands out, it holds at most
//! the chunk it was fed, one partial line and the header, each capped.

/// How the input is cut into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The whole input is one record.
    Single,
    /// One record per line (`\n`, a trailing `\r` removed); empty lines are skipped.
    Lines,
    /// CSV: with `header`, the first line is the header and each later line becomes the record
    /// `header\nline\n`, a complete one-row CSV document; without, every line as [`Lines`].
    ///
    /// [`Lines`]: Framing::Lines
    Csv {
        /// Whether the first line is a header.
        header: bool,
    },
}

/// Input that cannot be framed within the record cap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A record (a CSV record with its header included) is longer than the cap.
    #[error("a record is longer than {0} bytes (the tenant's max_input_bytes)")]
    RecordTooLong(u64),
    /// The CSV header alone is longer than the cap: no record could carry it.
    #[error(
        "the CSV header line is longer than {0} bytes (the tenant's max_input_bytes), and \
         every record carries it"
    )]
    HeaderTooLong(u64),
}

/// What [`Splitter::next`] has.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// The next record.
    Record(Vec<u8>),
    /// The next record is larger than the room given: run what you hold, then ask again.
    Full,
    /// Feed the next chunk (or say the input ended).
    NeedInput,
    /// The input ended and every record was handed out.
    Done,
}

/// Cuts a stream of chunks into records, one at a time.
#[derive(Debug)]
pub struct Splitter {
    framing: Framing,
    max_record: usize,
    /// The chunk being cut, and how far it is cut.
    chunk: Vec<u8>,
    at: usize,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    header: Option<Vec<u8>>,
    /// A complete line (or, for [`Framing::Single`], the input) waiting to become a record.
    ready: Option<Vec<u8>>,
    ended: bool,
    done: bool,
}

impl Splitter {
    /// A splitter that refuses records longer than `max_record` bytes.
    pub fn new(framing: Framing, max_record: u64) -> Splitter {
        Splitter {
            framing,
            max_record: usize::try_from(max_record).unwrap_or(usize::MAX),
            chunk: Vec::new(),
            at: 0,
            partial: Vec::new(),
            header: None,
            ready: None,
            ended: false,
            done: false,
        }
    }

    /// Hands over the next chunk of input; call only after [`Next::NeedInput`].
    pub fn feed(&mut self, chunk: Vec<u8>) {
        debug_assert!(
            self.at >= self.chunk.len(),
            "fed before the last chunk was cut"
        );
        self.chunk = chunk;
        self.at = 0;
    }

    /// Says the input ended.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The next record, if its size (with its header) is at most `room` bytes.
    ///
    /// # Errors
    /// [`FramingError`] when a record or the header passes the cap.
    pub fn next(&mut self, room: u64) -> Result<Next, FramingError> {
        loop {
            if let Some(line) = &self.ready {
                let size = self.record_size(line);
                if size > self.max_record {
                    return Err(FramingError::RecordTooLong(self.max_record as u64));
                }
                if size as u64 > room {
                    return Ok(Next::Full);
                }
                let line = self.ready.take().unwrap_or_default();
                return Ok(Next::Record(self.record(line)));
            }
            if self.done {
                return Ok(Next::Done);
            }
            if !self.cut()? {
                return Ok(Next::NeedInput);
            }
        }
    }

    /// Moves the next complete line into `ready` (skipping empty lines and taking the header);
    /// `false` when the chunk is used up and the input has not ended.
    fn cut(&mut self) -> Result<bool, FramingError> {
        loop {
            let rest = &self.chunk[self.at.min(self.chunk.len())..];
            let newline = match self.framing {
                Framing::Single => None,
                _ => rest.iter().position(|&b| b == b'\n'),
            };
            let Some(end) = newline else {
                let rest_len = rest.len();
                self.extend_partial(self.at, rest_len)?;
                self.at = self.chunk.len();
                if !self.ended {
                    return Ok(false);
                }
                self.done = true;
                let last = std::mem::take(&mut self.partial);
                match self.framing {
                    Framing::Single => self.ready = Some(last),
                    _ => self.line(last),
                }
                return Ok(true);
            };
            self.extend_partial(self.at, end)?;
            self.at += end + 1;
            let line = std::mem::take(&mut self.partial);
            self.line(line);
            if self.ready.is_some() {
                return Ok(true);
            }
        }
    }

    /// Appends `len` bytes of the chunk from `from` to the partial line, within the cap.
    fn extend_partial(&mut self, from: usize, len: usize) -> Result<(), FramingError> {
        if self.partial.len() + len > self.max_record {
            return Err(self.too_long());
        }
        self.partial
            .extend_from_slice(&self.chunk[from..from + len]);
        Ok(())
    }

    /// The cap error for what is being read now: the header while it is read, else a record.
    fn too_long(&self) -> FramingError {
        match (self.framing, &self.header) {
            (Framing::Csv { header: true }, None) => {
                FramingError::HeaderTooLong(self.max_record as u64)
            }
            _ => FramingError::RecordTooLong(self.max_record as u64),
        }
    }

    /// A complete line: dropped when empty, kept as the header, else made ready.
    fn line(&mut self, mut line: Vec<u8>) {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            return;
        }
        match (self.framing, &self.header) {
            (Framing::Csv { header: true }, None) => self.header = Some(line),
            _ => self.ready = Some(line),
        }
    }

    /// The size of the record `line` makes.
    fn record_size(&self, line: &[u8]) -> usize {
        match &self.header {
            Some(header) => header.len() + line.len() + 2,
            None => line.len(),
        }
    }

    fn record(&self, line: Vec<u8>) -> Vec<u8> {
        let Some(header) = &self.header else {
            return line;
        };
        let mut record = Vec::with_capacity(header.len() + line.len() + 2);
        record.extend_from_slice(header);
        record.push(b'\n');
        record.extend_from_slice(&line);
        record.push(b'\n');
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record of `chunks`, with unlimited room.
    fn split(framing: Framing, chunks: &[&str], max: u64) -> Result<Vec<String>, FramingError> {
        let mut splitter = Splitter::new(framing, max);
        let mut chunks = chunks.iter();
        let mut out = Vec::new();
        loop {
            match splitter.next(u64::MAX)? {
                Next::Record(record) => out.push(String::from_utf8(record).expect("UTF-8")),
                Next::NeedInput => match chunks.next() {
                    Some(chunk) => splitter.feed(chunk.as_bytes().to_vec()),
                    None => splitter.end(),
                },
                Next::Full => unreachable!("unlimited room"),
                Next::Done => return Ok(out),
            }
        }
    }

    #[test]
    fn lines_across_chunks_skip_blanks_and_strip_cr() {
        let records = split(
            Framing::Lines,
            &["{\"a\":1}\r\n{\"a", "\":2}\n\n", "{\"a\":3}"],
            100,
        );
        assert_eq!(
            records.expect("split"),
            ["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"]
        );
    }

    #[test]
    fn csv_records_carry_the_header() {
        let records = split(
            Framing::Csv { header: true },
            &["id,amount\n1,5\n", "2,7\n"],
            100,
        );
        assert_eq!(
            records.expect("split"),
            ["id,amount\n1,5\n", "id,amount\n2,7\n"]
        );
    }

    #[test]
    fn single_is_the_whole_input_and_records_are_capped() {
        assert_eq!(
            split(Framing::Single, &["a\nb", "c"], 10).expect("split"),
            ["a\nbc"]
        );
        assert!(split(Framing::Single, &["abcdef"], 5).is_err());
        assert!(split(Framing::Lines, &["ok\n", "far too long"], 5).is_err());
    }

    #[test]
    fn a_header_over_the_cap_is_named_and_a_record_with_its_header_is_capped() {
        assert_eq!(
            split(Framing::Csv { header: true }, &["abcdefghijk\n1\n"], 10),
            Err(FramingError::HeaderTooLong(10))
        );
        // An 8-byte header fits, but no record can carry it: 8 + 1 + 2 > 10.
        assert_eq!(
            split(Framing::Csv { header: true }, &["abcdefgh\n1\n"], 10),
            Err(FramingError::RecordTooLong(10))
        );
    }

    #[test]
    fn no_record_is_built_before_there_is_room_for_it() {
        let header = "h".repeat(1000);
        let mut splitter = Splitter::new(Framing::Csv { header: true }, 4096);
        assert_eq!(splitter.next(u64::MAX), Ok(Next::NeedInput));
        splitter.feed(format!("{header}\na\nb\n").into_bytes());
        // Each record is the header, the line and two newlines: 1003 bytes.
        assert_eq!(splitter.next(1002), Ok(Next::Full));
        let Ok(Next::Record(first)) = splitter.next(1003) else {
            panic!("room for one record");
        };
        assert_eq!(first.len(), 1003);
        assert_eq!(splitter.next(10), Ok(Next::Full));
        assert!(matches!(splitter.next(1003), Ok(Next::Record(_))));
        assert_eq!(splitter.next(u64::MAX), Ok(Next::NeedInput));
        splitter.end();
        assert_eq!(splitter.next(u64::MAX), Ok(Next::Done));
    }

    /// What splitting `input` whole must give: `None` when some line (or the header, or a
    /// record with its header) passes `cap`.
    fn reference(framing: Framing, input: &[u8], cap: usize) -> Option<Vec<Vec<u8>>> {
        if framing == Framing::Single {
            return (input.len() <= cap).then(|| vec![input.to_vec()]);
        }
        let mut header: Option<Vec<u8>> = None;
        let mut out = Vec::new();
        for line in input.split(|&b| b == b'\n') {
            if line.len() > cap {
                return None;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            match (framing, &header) {
                (Framing::Csv { header: true }, None) => header = Some(line.to_vec()),
                (Framing::Csv { header: true }, Some(h)) => {
                    let record = [h.as_slice(), b"\n", line, b"\n"].concat();
                    if record.len() > cap {
                        return None;
                    }
                    out.push(record);
                }
                _ => out.push(line.to_vec()),
            }
        }
        Some(out)
    }

    /// Random inputs, cut into random chunks and read with random room: the splitter gives the
    /// records splitting the whole input gives (or fails where it fails), never a record over
    /// the cap, and never one larger than the room it was given.
    #[test]
    fn any_chunking_and_room_give_the_records_of_the_whole_input() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below.max(1)
        };
        for _ in 0..3000 {
            let framing = match next(4) {
                0 => Framing::Single,
                1 => Framing::Lines,
                2 => Framing::Csv { header: true },
                _ => Framing::Csv { header: false },
            };
            let len = next(200) as usize;
            let input: Vec<u8> = (0..len).map(|_| b"ab,\n\r"[next(5) as usize]).collect();
            let cap = 1 + next(40) as usize;
            let expected = reference(framing, &input, cap);
            let mut splitter = Splitter::new(framing, cap as u64);
            let mut rest = input.as_slice();
            let mut got = Vec::new();
            let failed = loop {
                let room = match next(3) {
                    0 => u64::MAX,
                    _ => next(50),
                };
                match splitter.next(room) {
                    Err(_) => break true,
                    Ok(Next::Record(record)) => {
                        assert!(record.len() <= cap, "{framing:?}: a record over the cap");
                        assert!(record.len() as u64 <= room, "{framing:?}: over the room");
                        got.push(record);
                    }
                    Ok(Next::Full) => assert_ne!(room, u64::MAX, "full with unlimited room"),
                    Ok(Next::NeedInput) if rest.is_empty() => splitter.end(),
                    Ok(Next::NeedInput) => {
                        let take = (1 + next(30) as usize).min(rest.len());
                        splitter.feed(rest[..take].to_vec());
                        rest = &rest[take..];
                    }
                    Ok(Next::Done) => break false,
                }
            };
            match expected {
                Some(records) => {
                    assert!(!failed, "{framing:?} cap {cap}: {input:?} failed");
                    assert_eq!(got, records, "{framing:?} cap {cap}: {input:?}");
                }
                None => assert!(failed, "{framing:?} cap {cap}: {input:?} should fail"),
            }
        }
    }
}
