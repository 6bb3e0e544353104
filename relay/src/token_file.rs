//! The token file: where a running relay leaves its dashboard token for local tools (`devrelay demo`,
//! `devrelay run`, scripts, `curl -H "Authorization: Bearer $(cat …)"`): `$XDG_RUNTIME_DIR/devrelay/token-PORT`,
//! or `~/.devrelay/token-PORT` without a runtime directory. Readable by the user only (the directory 0700, the
//! file 0600), replaced at each start, removed at exit. One file per port, so relays on different ports do not
//! take each other's.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The directory token files go to: `$XDG_RUNTIME_DIR/devrelay` (a per-user tmpfs, cleared at logout), else
/// `$HOME/.devrelay`. `None` when neither variable is set.
pub fn dir() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from("XDG_RUNTIME_DIR")
        .map(|d| d.join("devrelay"))
        .or_else(|| from("HOME").map(|h| h.join(".devrelay")))
}

/// The token file of a relay listening on `port`.
pub fn path_for(port: u16) -> Option<PathBuf> {
    dir().map(|d| d.join(format!("token-{port}")))
}

/// The token written for the relay on `port` (of a `ws://host:port` URL), if that file exists: what a local
/// client uses when it was given no `--token`.
pub fn read_for(port: u16) -> Option<String> {
    let text = fs::read_to_string(path_for(port)?).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// The port of a `ws://` / `wss://` / `http(s)://` URL (its scheme's default when it names none).
pub fn port_of(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    // `[v6]:port` or `host:port`; no port: the scheme's default.
    let port = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.1.strip_prefix(':'),
        None => authority.split_once(':').map(|(_, p)| p),
    };
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    port.or(match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => Some(80),
        "wss" | "https" => Some(443),
        _ => None,
    })
}

/// A written token file; dropping it removes the file.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    /// Writes `token` for the relay on `port`, replacing any earlier file (a relay that did not exit cleanly).
    /// The new file is written under a temporary name with mode 0600 and renamed over the old one, so no
    /// reader ever sees a partial token and no other user can open it.
    pub fn write(port: u16, token: &str) -> io::Result<TokenFile> {
        let path = path_for(port).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "neither XDG_RUNTIME_DIR nor HOME is set",
            )
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let tmp = dir.join(format!(".token-{port}.{}", std::process::id()));
        let written = write_private(&tmp, token).and_then(|()| fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|()| TokenFile { path })
    }

    /// Removes a file left for `port` (by a relay that did not exit cleanly), when this relay writes none.
    pub fn remove_stale(port: u16) {
        if let Some(path) = path_for(port) {
            let _ = fs::remove_file(path);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // An existing directory keeps its mode; tighten it if others could list it.
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, token: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{token}")?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, token: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    writeln!(f, "{token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_urls() {
        for (url, port) in [
            ("ws://127.0.0.1:8265", Some(8265)),
            ("ws://127.0.0.1:8265/ws?token=x", Some(8265)),
            ("http://localhost:3000/#token=x", Some(3000)),
            ("ws://[::1]:9000/", Some(9000)),
            ("ws://[::1]/", Some(80)),
            ("wss://relay.example.com", Some(443)),
            ("ws://u:p@host:81", Some(81)),
            ("ws://host:notaport", None),
            ("nonsense", None),
        ] {
            assert_eq!(port_of(url), port, "{url}");
        }
    }
}
