//! Output streams: bytes from a PTY or a pipe, published as ordered, sequenced `output` chunks with their bytes
//! intact (the encoding policy is `devrelay_protocol::agent_event`'s).

use devrelay_protocol::agent_event::{names, ChunkEncoder, Output, OutputStream};

use crate::{Client, Error};

/// One stream of output (the program's terminal, or one command): numbers its chunks from 1.
#[derive(Debug)]
pub struct OutputWriter {
    stream: OutputStream,
    command_id: Option<String>,
    seq: u64,
    encoder: ChunkEncoder,
}

impl OutputWriter {
    /// The writer of `stream`; `command_id` ties it to a command (its stdout and stderr share one numbering:
    /// use [`OutputWriter::write_to`] with the other stream).
    pub fn new(stream: OutputStream, command_id: Option<String>) -> Self {
        OutputWriter {
            stream,
            command_id,
            seq: 0,
            encoder: ChunkEncoder::default(),
        }
    }

    /// Publishes `bytes` as the next chunk (or holds back a split character for the next one).
    pub fn write(&mut self, client: &Client, bytes: &[u8]) -> Result<(), Error> {
        let stream = self.stream;
        self.write_to(client, stream, bytes)
    }

    /// Like [`OutputWriter::write`], for another stream sharing this numbering (a command's stderr).
    pub fn write_to(
        &mut self,
        client: &Client,
        stream: OutputStream,
        bytes: &[u8],
    ) -> Result<(), Error> {
        match self.encoder.push(bytes) {
            Some((encoding, data)) => self.send(client, stream, encoding, data),
            None => Ok(()),
        }
    }

    /// The end of the stream: publishes a held-back partial character, if any.
    pub fn finish(&mut self, client: &Client) -> Result<(), Error> {
        match self.encoder.finish() {
            Some((encoding, data)) => {
                let stream = self.stream;
                self.send(client, stream, encoding, data)
            }
            None => Ok(()),
        }
    }

    /// Chunks published so far.
    pub fn chunks(&self) -> u64 {
        self.seq
    }

    fn send(
        &mut self,
        client: &Client,
        stream: OutputStream,
        encoding: devrelay_protocol::agent_event::Encoding,
        data: String,
    ) -> Result<(), Error> {
        self.seq += 1;
        let chunk = Output {
            seq: self.seq,
            stream,
            encoding,
            data,
            command_id: self.command_id.clone(),
        };
        client.publish(names::OUTPUT, &chunk).map(drop)
    }
}
