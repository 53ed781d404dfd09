//! How a run's input bytes become records: NDJSON (one record per line), CSV (one record per
//! data line, each carrying the header), or the whole input as one record. Every record is
//! capped; the splitter holds at most one partial record beyond the chunk it is given.

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

/// A record longer than the cap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a record is longer than {0} bytes (the tenant's max_input_bytes)")]
pub struct RecordTooLong(pub u64);

/// Cuts a stream of chunks into records.
#[derive(Debug)]
pub struct Splitter {
    framing: Framing,
    max_record: usize,
    partial: Vec<u8>,
    header: Option<Vec<u8>>,
}

impl Splitter {
    /// A splitter that refuses records longer than `max_record` bytes.
    pub fn new(framing: Framing, max_record: u64) -> Splitter {
        Splitter {
            framing,
            max_record: usize::try_from(max_record).unwrap_or(usize::MAX),
            partial: Vec::new(),
            header: None,
        }
    }

    /// Adds a chunk; complete records are appended to `out`.
    ///
    /// # Errors
    /// [`RecordTooLong`] when a record passes the cap.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), RecordTooLong> {
        if self.framing == Framing::Single {
            return self.extend(chunk);
        }
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.extend(&rest[..end])?;
            let line = std::mem::take(&mut self.partial);
            self.line(line, out)?;
            rest = &rest[end + 1..];
        }
        self.extend(rest)
    }

    /// Ends the input: the last record (or, for [`Framing::Single`], the only one).
    ///
    /// # Errors
    /// [`RecordTooLong`] as [`Splitter::push`].
    pub fn finish(&mut self, out: &mut Vec<Vec<u8>>) -> Result<(), RecordTooLong> {
        let last = std::mem::take(&mut self.partial);
        match self.framing {
            Framing::Single => {
                out.push(last);
                Ok(())
            }
            _ => self.line(last, out),
        }
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), RecordTooLong> {
        if self.partial.len() + bytes.len() > self.max_record {
            return Err(RecordTooLong(self.max_record as u64));
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }

    fn line(&mut self, mut line: Vec<u8>, out: &mut Vec<Vec<u8>>) -> Result<(), RecordTooLong> {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            return Ok(());
        }
        match (self.framing, &self.header) {
            (Framing::Csv { header: true }, None) => {
                self.header = Some(line);
                Ok(())
            }
            (Framing::Csv { header: true }, Some(header)) => {
                if header.len() + line.len() + 2 > self.max_record {
                    return Err(RecordTooLong(self.max_record as u64));
                }
                let mut record = Vec::with_capacity(header.len() + line.len() + 2);
                record.extend_from_slice(header);
                record.push(b'\n');
                record.extend_from_slice(&line);
                record.push(b'\n');
                out.push(record);
                Ok(())
            }
            _ => {
                out.push(line);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(framing: Framing, chunks: &[&str], max: u64) -> Result<Vec<String>, RecordTooLong> {
        let mut splitter = Splitter::new(framing, max);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk.as_bytes(), &mut out)?;
        }
        splitter.finish(&mut out)?;
        Ok(out
            .into_iter()
            .map(|r| String::from_utf8(r).expect("UTF-8"))
            .collect())
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
}
