//! What an agent publishes on its channel `agents/{id}`: terminal output as ordered, sequenced chunks, the
//! status of its program and of each command a dashboard sent it, and the relay's record of how a permission
//! request was resolved. The relay checks these payloads on `agents/` channels (`INVALID_PAYLOAD`).
//!
//! Output bytes travel intact. A chunk is sent as a JSON string (`encoding: "utf8"`) when its bytes are valid
//! UTF-8 — the usual case for terminal output, ANSI escapes included, readable in any JSON tool and written to
//! xterm.js as is — and as base64 (`encoding: "base64"`) when they are not (binary output, a legacy 8-bit
//! encoding). A multi-byte character split across two reads is not "invalid": [`ChunkEncoder`] holds its first
//! bytes back (at most 3) and sends them with the next chunk, so a split character never forces base64.
//! Why not always base64: for coloured text it costs 4/3 of the bytes plus a decode in the browser, while JSON
//! escaping costs 6 bytes per control character (ESC is `\u001b`) and nothing for the rest — BENCHMARKS.md
//! has the measured sizes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::v2::Origin;
use crate::Millis;

/// Event names on `agents/{id}`.
pub mod names {
    /// [`super::Output`]: a chunk of terminal (PTY) or command output.
    pub const OUTPUT: &str = "output";
    /// [`super::AgentStatus`]: the agent's program started, exited; or the agent is idle.
    pub const STATUS: &str = "status";
    /// [`super::CommandStatus`]: a command's lifecycle step.
    pub const COMMAND_STATUS: &str = "command.status";
    /// [`super::PermissionResolved`]: published by the relay only, on the requester's channel.
    pub const PERMISSION_RESOLVED: &str = "permission_resolved";
}

/// How `Output.data` holds its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `data` is the bytes as a string (they were valid UTF-8).
    Utf8,
    /// `data` is the bytes in standard base64 (with padding).
    Base64,
}

/// Which stream a chunk comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    /// The agent's program terminal (stdout and stderr interleaved as the program wrote them).
    Pty,
    Stdout,
    Stderr,
}

/// `output {seq, stream, encoding, data, commandId?}`. `seq` counts the chunks of one stream of output from 1
/// without gaps: the program's terminal, or one command (stdout and stderr share its numbering).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub seq: u64,
    pub stream: OutputStream,
    pub encoding: Encoding,
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
}

impl Output {
    /// The chunk's bytes; `None` if `data` is not valid base64.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match self.encoding {
            Encoding::Utf8 => Some(self.data.as_bytes().to_vec()),
            Encoding::Base64 => BASE64.decode(&self.data).ok(),
        }
    }
}

/// Encodes one stream of output bytes into chunks (see the module docs for the policy).
#[derive(Debug, Default, Clone)]
pub struct ChunkEncoder {
    /// The first bytes of a character that the last chunk ended in the middle of.
    carry: Vec<u8>,
}

impl ChunkEncoder {
    /// Encodes the next bytes read. Returns `None` when everything was held back (a lone partial character).
    pub fn push(&mut self, bytes: &[u8]) -> Option<(Encoding, String)> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(bytes);
        match std::str::from_utf8(&buf) {
            Ok(_) => {}
            // Only an incomplete sequence at the very end (`error_len() == None`) is held back.
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                self.carry = buf.split_off(valid);
            }
            Err(_) => return Some((Encoding::Base64, BASE64.encode(&buf))),
        }
        if buf.is_empty() {
            return None;
        }
        // Valid by construction (checked above, up to `valid`).
        match String::from_utf8(buf) {
            Ok(text) => Some((Encoding::Utf8, text)),
            Err(e) => Some((Encoding::Base64, BASE64.encode(e.as_bytes()))),
        }
    }

    /// The end of the stream: whatever was held back (an incomplete character) goes out as base64.
    pub fn finish(&mut self) -> Option<(Encoding, String)> {
        let rest = std::mem::take(&mut self.carry);
        (!rest.is_empty()).then(|| (Encoding::Base64, BASE64.encode(&rest)))
    }
}

/// The state of an agent's program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgramState {
    /// The program runs.
    Running,
    /// The program ended (`exitCode` / `signal`); the agent is about to leave.
    Exited,
    /// No program: the agent only runs commands.
    Idle,
}

/// `status {state, program?, args, pid?, startedAt?, endedAt?, exitCode?, signal?, cols?, rows?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub state: ProgramState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended the program (Unix), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
}

/// A command's lifecycle: `queued → running → completed | failed | cancelled`, or `rejected` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandState {
    /// Accepted; waiting for a free slot (`maxConcurrent`).
    Queued,
    Running,
    /// It ran to its end: `exitCode` (or `signal`) says how.
    Completed,
    /// It could not be run or watched (`error`: e.g. no such program, a bad `cwd`).
    Failed,
    /// Cancelled by a dashboard (before it started, or stopped with SIGTERM / SIGKILL).
    Cancelled,
    /// Not run: no `--allow` pattern matches, commands are off, the queue is full, a duplicate id (`reason`).
    Rejected,
}

impl CommandState {
    /// Whether this is the command's last status.
    pub fn is_final(self) -> bool {
        !matches!(self, CommandState::Queued | CommandState::Running)
    }
}

/// `command.status {id, state, command, args, cwd?, from?, exitCode?, signal?, error?, reason?, queuedAt?,
/// startedAt?, endedAt?, durationMs?}`: every step of a command, on the agent's channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandStatus {
    pub id: String,
    pub state: CommandState,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The dashboard that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Origin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// `permission_resolved {requestId, allowed, alwaysAllow?, by?, reason?, timestamp}`: the relay's record, on the
/// requester's channel, that a `permission_request` was answered (`by` the first dashboard) or timed out
/// (`reason`, no `by`). Every subscriber sees it: a prompt shown on several dashboards disappears from all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionResolved {
    pub request_id: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_allow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Origin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub timestamp: Millis,
}

/// Checks `data` (raw JSON, `None` for absent) against the payload of an `agents/{id}` event name, if it has
/// one. `Err` names what is wrong.
pub fn check_payload(event: &str, data: Option<&str>) -> Result<(), String> {
    fn parse<'a, T: Deserialize<'a>>(event: &str, data: Option<&'a str>) -> Result<(), String> {
        serde_json::from_str::<T>(data.unwrap_or("null"))
            .map(drop)
            .map_err(|e| format!("invalid {event} data: {e}"))
    }
    match event {
        names::OUTPUT => {
            let text = data.unwrap_or("null");
            let out: Output =
                serde_json::from_str(text).map_err(|e| format!("invalid output data: {e}"))?;
            if out.bytes().is_none() {
                return Err("invalid output data: encoding is base64 but data is not".into());
            }
            Ok(())
        }
        names::STATUS => parse::<AgentStatus>(event, data),
        names::COMMAND_STATUS => parse::<CommandStatus>(event, data),
        names::PERMISSION_RESOLVED => parse::<PermissionResolved>(event, data),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[(Encoding, String)]) -> Vec<u8> {
        parts
            .iter()
            .flat_map(|(encoding, data)| {
                Output {
                    seq: 1,
                    stream: OutputStream::Pty,
                    encoding: *encoding,
                    data: data.clone(),
                    command_id: None,
                }
                .bytes()
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn text_with_escapes_stays_text_and_split_characters_are_carried() {
        let mut enc = ChunkEncoder::default();
        let text = "\x1b[31mrot\x1b[0m → ünïcødé ✓\r\n".as_bytes();
        // Cut inside the 3-byte arrow and inside the 3-byte check mark.
        let arrow = text.iter().position(|&b| b == 0xe2).unwrap();
        let cuts = [arrow + 1, text.len() - 3];
        let pieces = [&text[..cuts[0]], &text[cuts[0]..cuts[1]], &text[cuts[1]..]];
        let out: Vec<_> = pieces.iter().filter_map(|p| enc.push(p)).collect();
        assert!(out.iter().all(|(e, _)| *e == Encoding::Utf8), "{out:?}");
        assert!(enc.finish().is_none());
        assert_eq!(decode(&out), text);
        assert!(out[0].1.starts_with("\x1b[31mrot"));
    }

    #[test]
    fn invalid_bytes_go_as_base64_intact() {
        let mut enc = ChunkEncoder::default();
        let bytes = [b'a', 0xff, 0x00, b'b', 0xc3];
        let (e, data) = enc.push(&bytes).unwrap();
        assert_eq!(e, Encoding::Base64);
        assert_eq!(decode(&[(e, data)]), bytes);
        // A lone partial character at the end of the stream is flushed, as base64.
        assert!(enc.push(&[0xe2, 0x86]).is_none());
        let rest = enc.finish().unwrap();
        assert_eq!(decode(&[rest]), [0xe2, 0x86]);
    }

    #[test]
    fn payloads_are_checked() {
        assert!(check_payload(
            "output",
            Some(r#"{"seq":1,"stream":"pty","encoding":"utf8","data":"hi"}"#)
        )
        .is_ok());
        assert!(check_payload(
            "output",
            Some(r#"{"seq":1,"stream":"pty","encoding":"base64","data":"!!"}"#)
        )
        .is_err());
        assert!(check_payload("output", Some(r#"{"seq":1}"#)).is_err());
        assert!(check_payload(
            "command.status",
            Some(r#"{"id":"c1","state":"completed","command":"ls","args":[],"exitCode":0}"#)
        )
        .is_ok());
        assert!(check_payload(
            "command.status",
            Some(r#"{"id":"c1","state":"done","command":"ls"}"#)
        )
        .is_err());
        assert!(check_payload("status", Some(r#"{"state":"running"}"#)).is_ok());
        assert!(check_payload("anything.else", Some("[1]")).is_ok());
        assert!(CommandState::Rejected.is_final() && !CommandState::Queued.is_final());
    }
}
