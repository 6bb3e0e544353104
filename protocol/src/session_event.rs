//! Seed 004's session events: typed `data` for well-known event names on `sessions/{id}` (and
//! `config_changed` on `global`). The relay checks the shape of these when they are published
//! (`INVALID_PAYLOAD` otherwise); other event names carry any JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `text_delta {delta, turnId?}`: a piece of streamed assistant text. The relay coalesces consecutive deltas
/// of one session (see `Config::text_delta_window`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TextDelta {
    pub delta: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
}

/// `text_complete {text, isIntermediate?, turnId?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TextComplete {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_intermediate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
}

/// `tool_start {toolName, toolUseId, toolInput, toolIntent?, toolDisplayName?, turnId?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolStart {
    pub tool_name: String,
    pub tool_use_id: String,
    pub tool_input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_intent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
}

/// `tool_result {toolUseId, toolName, result, turnId?, isError?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    pub tool_use_id: String,
    pub tool_name: String,
    pub result: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
}

/// `complete {}`: the turn is over.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Complete {}

/// `error {error}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionError {
    pub error: String,
}

/// `permission_request {requestId, toolName, command, description, timeoutMs?}`: the agent waits for a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionRequest {
    pub request_id: String,
    pub tool_name: String,
    pub command: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `config_changed {changeType}` on `global`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChanged {
    pub change_type: ChangeType,
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeType {
    Config,
    Theme,
}

/// Event names with a typed payload.
pub mod names {
    pub const TEXT_DELTA: &str = "text_delta";
    pub const TEXT_COMPLETE: &str = "text_complete";
    pub const TOOL_START: &str = "tool_start";
    pub const TOOL_RESULT: &str = "tool_result";
    pub const COMPLETE: &str = "complete";
    pub const ERROR: &str = "error";
    pub const PERMISSION_REQUEST: &str = "permission_request";
    pub const CONFIG_CHANGED: &str = "config_changed";
    /// A seed-000 SDK's `state_snapshot` (data: the SDK's whole message), on `sessions/{id}`.
    pub const STATE_SNAPSHOT: &str = "state_snapshot";
    /// A seed-000 SDK's `stream_event` (data: the SDK's whole message), on `sessions/{id}`.
    pub const STREAM_EVENT: &str = "stream_event";
}

/// Checks `data` (raw JSON text, `None` for absent / null) against the typed payload of `event`, if it has
/// one. `Err` carries a message naming what is wrong.
pub fn check_payload(event: &str, data: Option<&str>) -> Result<(), String> {
    fn parse<'a, T: Deserialize<'a>>(event: &str, data: Option<&'a str>) -> Result<(), String> {
        serde_json::from_str::<T>(data.unwrap_or("null"))
            .map(drop)
            .map_err(|e| format!("invalid {event} data: {e}"))
    }
    match event {
        names::TEXT_DELTA => parse::<TextDelta>(event, data),
        names::TEXT_COMPLETE => parse::<TextComplete>(event, data),
        names::TOOL_START => parse::<ToolStart>(event, data),
        names::TOOL_RESULT => parse::<ToolResult>(event, data),
        // `complete` may come without data.
        names::COMPLETE => match data {
            None => Ok(()),
            Some(_) => parse::<Complete>(event, data),
        },
        names::ERROR => parse::<SessionError>(event, data),
        names::PERMISSION_REQUEST => parse::<PermissionRequest>(event, data),
        names::CONFIG_CHANGED => parse::<ConfigChanged>(event, data),
        names::STATE_SNAPSHOT => crate::view::check_snapshot(data.unwrap_or("null")).map(drop),
        names::STREAM_EVENT => crate::view::check_stream_event(data.unwrap_or("null")).map(drop),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_payloads_are_checked_and_others_pass() {
        assert!(check_payload("text_delta", Some(r#"{"delta":"hi","turnId":"t1"}"#)).is_ok());
        assert!(check_payload("text_delta", Some(r#"{"delta":5}"#)).is_err());
        assert!(check_payload("text_delta", None).is_err());
        assert!(check_payload(
            "tool_start",
            Some(r#"{"toolName":"ls","toolUseId":"u1","toolInput":{"path":"."}}"#)
        )
        .is_ok());
        assert!(check_payload("tool_result", Some(r#"{"toolName":"ls"}"#)).is_err());
        assert!(check_payload("complete", None).is_ok());
        assert!(check_payload("complete", Some("{}")).is_ok());
        assert!(check_payload("config_changed", Some(r#"{"changeType":"theme"}"#)).is_ok());
        assert!(check_payload("config_changed", Some(r#"{"changeType":"x"}"#)).is_err());
        assert!(check_payload("my.custom", Some("[1,2]")).is_ok());
        assert!(check_payload("my.custom", None).is_ok());
    }
}
