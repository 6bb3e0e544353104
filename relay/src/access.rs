//! Who may talk to the relay: `Host` (DNS-rebinding defence) and `Origin` (cross-site WebSocket) checks.

use crate::Config;

/// Why a request was refused; sent as the body of a 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("forbidden Host {0:?}: devrelay only answers to loopback names (add --host to allow another)")]
    Host(String),
    #[error("forbidden Origin {0:?}: allowed are no Origin, http(s) on localhost/127.0.0.1/[::1], the relay's own pages, and --allow-origin")]
    Origin(String),
}

/// Splits `host[:port]` (with `[v6]` literals) and returns the lower-cased host part.
fn host_part(authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, _)) => format!("[{h}]"),
            None => a,
        };
    }
    match a.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
        _ => a,
    }
}

fn is_loopback_name(host: &str) -> bool {
    matches!(host, "localhost" | "[::1]" | "::1")
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks the `Host` header. Missing Host (HTTP/1.0 tools) is allowed: DNS rebinding needs a browser, and
/// browsers always send one.
pub fn check_host(host: Option<&str>, config: &Config) -> Result<(), Refusal> {
    let Some(raw) = host else { return Ok(()) };
    let h = host_part(raw);
    if is_loopback_name(&h) || config.allowed_hosts.iter().any(|a| host_part(a) == h) {
        Ok(())
    } else {
        Err(Refusal::Host(raw.to_string()))
    }
}

/// Checks the `Origin` header of a WebSocket upgrade. `host` is the request's `Host`, already accepted by
/// [`check_host`]: a page whose origin is that same authority is one the relay served itself (the dashboard), so
/// it is admitted. That widens nothing: a rebound foreign name never passes `check_host` in the first place.
pub fn check_origin(
    origin: Option<&str>,
    host: Option<&str>,
    config: &Config,
) -> Result<(), Refusal> {
    let Some(raw) = origin else { return Ok(()) };
    let o = raw.trim().trim_end_matches('/').to_ascii_lowercase();
    if config
        .allowed_origins
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(&o))
    {
        return Ok(());
    }
    let authority = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"));
    let same_origin = |a: &str| host.is_some_and(|h| h.trim().eq_ignore_ascii_case(a));
    match authority {
        Some(a) if matches!(host_part(a).as_str(), "localhost" | "127.0.0.1" | "[::1]") => Ok(()),
        Some(a) if same_origin(a) => Ok(()),
        _ => Err(Refusal::Origin(raw.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let c = Config::default();
        for ok in [
            "localhost:8265",
            "127.0.0.1:8265",
            "127.0.0.2",
            "[::1]:8265",
            "LOCALHOST",
            "app.localhost:3000",
        ] {
            assert_eq!(check_host(Some(ok), &c), Ok(()), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:8265",
            "192.168.1.2:8265",
            "localhost.evil.com",
            "[::2]:1",
        ] {
            assert!(check_host(Some(bad), &c).is_err(), "{bad}");
        }
        let c = Config {
            allowed_hosts: vec!["devbox.lan".into()],
            ..Config::default()
        };
        assert_eq!(check_host(Some("devbox.lan:8265"), &c), Ok(()));
    }

    #[test]
    fn origins() {
        let c = Config::default();
        assert_eq!(check_origin(None, None, &c), Ok(()));
        for ok in [
            "http://localhost:3000",
            "https://127.0.0.1",
            "http://[::1]:5173",
            "HTTP://LocalHost:1",
        ] {
            assert_eq!(check_origin(Some(ok), None, &c), Ok(()), "{ok}");
        }
        for bad in [
            "https://evil.com",
            "http://localhost.evil.com",
            "null",
            "file://",
            "http://127.0.0.2:3000",
            "chrome-extension://abc",
            "ws://localhost:1",
        ] {
            assert!(check_origin(Some(bad), None, &c).is_err(), "{bad}");
        }
        let c = Config {
            allowed_origins: vec!["https://dash.example.com".into()],
            ..Config::default()
        };
        assert_eq!(
            check_origin(Some("https://dash.example.com"), None, &c),
            Ok(())
        );
        assert!(check_origin(Some("https://other.example.com"), None, &c).is_err());
    }

    #[test]
    fn the_relays_own_pages() {
        let c = Config {
            allowed_hosts: vec!["devbox.lan".into()],
            ..Config::default()
        };
        let host = Some("devbox.lan:8265");
        assert_eq!(check_host(host, &c), Ok(()));
        for ok in ["http://devbox.lan:8265", "HTTPS://DevBox.lan:8265/"] {
            assert_eq!(check_origin(Some(ok), host, &c), Ok(()), "{ok}");
        }
        // Another port of the same name is another origin; no Host, no same-origin.
        for (origin, host) in [
            ("http://devbox.lan:3000", host),
            ("http://devbox.lan", host),
            ("http://devbox.lan:8265", None),
            ("ws://devbox.lan:8265", host),
            ("null", host),
        ] {
            assert!(
                check_origin(Some(origin), host, &c).is_err(),
                "{origin} {host:?}"
            );
        }
        // Default port: neither header names it.
        assert_eq!(
            check_origin(Some("http://devbox.lan"), Some("devbox.lan"), &c),
            Ok(())
        );
    }
}
