//! `Assets`: the dashboard's static files as the relay serves them on its own port — the Next.js export embedded
//! at build time (`build.rs`), a directory chosen at run time (`--dashboard-dir`), or none (then a page saying how
//! to build it). Each file carries its content type, a strong ETag, its cache policy and the brotli / gzip
//! variants `www/precompress.mjs` made at build time; [`Assets::respond`] negotiates among them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// `www/out` when it was built before the relay, else an empty directory (see `build.rs`).
static EMBEDDED: include_dir::Dir<'static> = include_dir::include_dir!("$DEVRELAY_EMBED_DIR");

/// Served for page requests when there is no dashboard: says how to get one.
const NOT_BUILT_PAGE: &str = include_str!("not_built.html");

/// Hashed build output: its name changes whenever its content does, so browsers may keep it for good.
const IMMUTABLE_PREFIX: &str = "_next/static/";
const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Pages and unhashed files: cached, but revalidated (cheaply, by ETag) on every use, so a rebuilt relay shows
/// its new dashboard on the next reload.
const CACHE_REVALIDATE: &str = "no-cache";

/// The dashboard's files, cheap to clone (shared). `Default` is [`Assets::embedded`].
#[derive(Clone)]
pub struct Assets(Arc<Index>);

struct Index {
    /// Path relative to the site root (`index.html`, `_next/static/chunks/x.js`) → file.
    files: HashMap<String, Asset>,
    source: String,
}

struct Asset {
    content_type: &'static str,
    /// Content hash of the identity bytes; every encoding's ETag derives from it.
    tag: String,
    identity: Bytes,
    br: Option<Bytes>,
    gzip: Option<Bytes>,
    immutable: bool,
}

/// Why a dashboard directory could not be served.
#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    #[error("reading the dashboard directory {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} has no index.html: not a dashboard export (scripts/build-dashboard.sh makes one in www/out)")]
    NoIndex(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Br,
}

impl Assets {
    /// The dashboard built into this binary (empty when `www/out` did not exist at build time).
    pub fn embedded() -> Assets {
        static INDEX: OnceLock<Arc<Index>> = OnceLock::new();
        let index = INDEX.get_or_init(|| {
            let mut files = Vec::new();
            collect_embedded(&EMBEDDED, &mut files);
            Arc::new(Index::new(files, "embedded".into()))
        });
        Assets(index.clone())
    }

    /// A dashboard export read from `dir` now (all of it, into memory); it must contain `index.html`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Assets, AssetsError> {
        let dir = dir.as_ref();
        let mut files = Vec::new();
        read_dir_into(dir, "", &mut files)?;
        let index = Index::new(files, format!("directory {}", dir.display()));
        if !index.files.contains_key("index.html") {
            return Err(AssetsError::NoIndex(dir.to_path_buf()));
        }
        Ok(Assets(Arc::new(index)))
    }

    /// No dashboard: page requests get the page that says how to build it.
    pub fn none() -> Assets {
        Assets(Arc::new(Index::new(Vec::new(), "none".into())))
    }

    /// Whether there is a dashboard to serve (an `index.html`).
    pub fn has_dashboard(&self) -> bool {
        self.0.files.contains_key("index.html")
    }

    /// Answers a GET for `path` (the request's percent-encoded path; for HEAD, hyper sends the same headers
    /// without the body). A path that names no file gets the dashboard page (client-side routes) unless it
    /// looks like a file (`/x.js`, anything under `/_next/`): that is a 404.
    pub(crate) fn respond(&self, path: &str, request: &HeaderMap) -> Response {
        let Ok(decoded) = percent_encoding::percent_decode_str(path).decode_utf8() else {
            return text(
                StatusCode::BAD_REQUEST,
                "bad request: the path is not UTF-8\n",
            );
        };
        let rel = decoded.trim_start_matches('/');
        let candidates = if rel.is_empty() {
            vec!["index.html".to_string()]
        } else if rel.ends_with('/') {
            vec![format!("{rel}index.html")]
        } else {
            // Next.js exports a route `/about` as `about.html` (or `about/index.html` with trailing slashes).
            vec![
                rel.to_string(),
                format!("{rel}.html"),
                format!("{rel}/index.html"),
            ]
        };
        if let Some(asset) = candidates.iter().find_map(|c| self.0.files.get(c)) {
            return asset.respond(request);
        }
        if !is_page_route(rel) {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        match self.0.files.get("index.html") {
            Some(page) => page.respond(request),
            None => not_built(),
        }
    }
}

impl Default for Assets {
    fn default() -> Self {
        Assets::embedded()
    }
}

impl fmt::Debug for Assets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assets")
            .field("source", &self.0.source)
            .field("files", &self.0.files.len())
            .field("has_dashboard", &self.has_dashboard())
            .finish()
    }
}

impl Index {
    fn new(files: Vec<(String, Bytes)>, source: String) -> Index {
        let all: BTreeMap<String, Bytes> = files.into_iter().collect();
        let sibling_of = |path: &str| {
            [".br", ".gz"]
                .iter()
                .find_map(|ext| path.strip_suffix(ext))
                .filter(|base| all.contains_key(*base))
                .is_some()
        };
        let files = all
            .iter()
            // `x.br` / `x.gz` next to `x` are x's encodings, not files of their own.
            .filter(|(path, _)| !sibling_of(path))
            .map(|(path, data)| {
                let asset = Asset {
                    content_type: content_type(path),
                    tag: content_tag(data),
                    identity: data.clone(),
                    br: all.get(&format!("{path}.br")).cloned(),
                    gzip: all.get(&format!("{path}.gz")).cloned(),
                    immutable: path.starts_with(IMMUTABLE_PREFIX),
                };
                (path.clone(), asset)
            })
            .collect();
        Index { files, source }
    }
}

impl Asset {
    fn respond(&self, request: &HeaderMap) -> Response {
        let accept = request
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        let accept = request
            .contains_key(header::ACCEPT_ENCODING)
            .then_some(accept.as_str());
        let encoding = negotiate(accept, self.br.is_some(), self.gzip.is_some());
        let (body, etag) = match encoding {
            Encoding::Br => (self.br.clone(), format!("\"{}-br\"", self.tag)),
            Encoding::Gzip => (self.gzip.clone(), format!("\"{}-gz\"", self.tag)),
            Encoding::Identity => (None, format!("\"{}\"", self.tag)),
        };
        let body = body.unwrap_or_else(|| self.identity.clone());

        let mut res = Response::new(Body::empty());
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if self.immutable {
                CACHE_IMMUTABLE
            } else {
                CACHE_REVALIDATE
            }),
        );
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        if self.br.is_some() || self.gzip.is_some() {
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if self.content_type.starts_with("text/html") {
            // The dashboard has buttons that act on connected apps: no framing by other sites.
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        if if_none_match(request, &self.tag) {
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            return res;
        }
        match encoding {
            Encoding::Br => {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            }
            Encoding::Gzip => {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            Encoding::Identity => {}
        }
        *res.body_mut() = Body::from(body);
        res
    }
}

fn not_built() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE_REVALIDATE),
        ],
        NOT_BUILT_PAGE,
    )
        .into_response()
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A path the dashboard's client-side router may own: not under `_next/` and without a file extension.
fn is_page_route(rel: &str) -> bool {
    let last = rel.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    !rel.starts_with("_next/") && !last.contains('.')
}

fn collect_embedded(dir: &'static include_dir::Dir<'static>, out: &mut Vec<(String, Bytes)>) {
    for file in dir.files() {
        if let Some(path) = file.path().to_str() {
            out.push((path.replace('\\', "/"), Bytes::from_static(file.contents())));
        }
    }
    for sub in dir.dirs() {
        collect_embedded(sub, out);
    }
}

fn read_dir_into(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, Bytes)>,
) -> Result<(), AssetsError> {
    let read = |path: &Path, e| AssetsError::Read {
        path: path.to_path_buf(),
        source: e,
    };
    for entry in std::fs::read_dir(dir).map_err(|e| read(dir, e))? {
        let entry = entry.map_err(|e| read(dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue; // not a URL path anyway
        };
        let rel = format!("{prefix}{name}");
        // Follows symlinks, like a static file server would.
        let meta = std::fs::metadata(&path).map_err(|e| read(&path, e))?;
        if meta.is_dir() {
            read_dir_into(&path, &format!("{rel}/"), out)?;
        } else if meta.is_file() {
            let data = std::fs::read(&path).map_err(|e| read(&path, e))?;
            out.push((rel, Bytes::from(data)));
        }
    }
    Ok(())
}

fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        // Next.js's exported RSC payloads (`index.txt`): a static export's router expects text/plain.
        Some("txt") => "text/plain; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("xml") => "application/xml",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("avif") => "image/avif",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("ttf") => "font/ttf",
        Some("otf") => "font/otf",
        _ => "application/octet-stream",
    }
}

/// A content hash for ETags. (`DefaultHasher` may change between Rust releases; that only costs one re-download
/// after an upgrade, since a new binary is a new relay anyway.)
fn content_tag(data: &[u8]) -> String {
    let mut h = std::hash::DefaultHasher::new();
    h.write(data);
    format!("{:016x}{:x}", h.finish(), data.len())
}

/// Picks the encoding to send from `Accept-Encoding` (q-values honoured; on a tie brotli, then gzip, then
/// identity). `None` (no header): identity, as RFC 9110 advises.
fn negotiate(accept: Option<&str>, has_br: bool, has_gzip: bool) -> Encoding {
    let Some(accept) = accept else {
        return Encoding::Identity;
    };
    let (mut br, mut gzip, mut identity, mut any) = (None, None, None, None);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| v.trim().parse::<f32>().ok())?
            })
            .unwrap_or(1.0);
        match coding.as_str() {
            "br" => br = Some(q),
            "gzip" | "x-gzip" => gzip = Some(q),
            "identity" => identity = Some(q),
            "*" => any = Some(q),
            _ => {}
        }
    }
    let br = if has_br {
        br.or(any).unwrap_or(0.0)
    } else {
        0.0
    };
    let gzip = if has_gzip {
        gzip.or(any).unwrap_or(0.0)
    } else {
        0.0
    };
    // Identity is always the fallback (even when refused: nothing better exists); it wins over an acceptable
    // compressed variant only when preferred by name (or by `*`) with a higher q.
    let identity = identity.or(any).unwrap_or(0.0);
    if br > 0.0 && br >= gzip && br >= identity {
        Encoding::Br
    } else if gzip > 0.0 && gzip >= identity {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// Whether `If-None-Match` names this file's current content, in any of its encodings (weak comparison, as
/// RFC 9110 requires for this header).
fn if_none_match(request: &HeaderMap, tag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| {
            let t = t.strip_prefix("W/").unwrap_or(t).trim_matches('"');
            t == "*"
                || t.strip_suffix("-br")
                    .or_else(|| t.strip_suffix("-gz"))
                    .unwrap_or(t)
                    == tag
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding() {
        use Encoding::*;
        let pick = |a: Option<&str>| negotiate(a, true, true);
        assert_eq!(pick(None), Identity);
        assert_eq!(pick(Some("")), Identity);
        assert_eq!(pick(Some("gzip, deflate, br, zstd")), Br);
        assert_eq!(pick(Some("gzip")), Gzip);
        assert_eq!(pick(Some("br;q=0, gzip")), Gzip);
        assert_eq!(pick(Some("gzip;q=1.0, br;q=0.5")), Gzip);
        assert_eq!(pick(Some("*")), Br);
        assert_eq!(pick(Some("*;q=0, gzip")), Gzip);
        assert_eq!(pick(Some("identity")), Identity);
        assert_eq!(pick(Some("br;q=0.5, identity")), Identity);
        assert_eq!(pick(Some("deflate")), Identity);
        assert_eq!(pick(Some("BR ; Q=0.9")), Br);
        assert_eq!(negotiate(Some("br, gzip"), false, true), Gzip);
        assert_eq!(negotiate(Some("br"), false, true), Identity);
        assert_eq!(negotiate(Some("br, gzip"), false, false), Identity);
    }

    #[test]
    fn page_routes_and_content_types() {
        assert!(is_page_route(""));
        assert!(is_page_route("sessions/abc"));
        assert!(is_page_route("sessions/abc/"));
        assert!(is_page_route("v1.2/x"));
        assert!(!is_page_route("missing.js"));
        assert!(!is_page_route("_next/static/chunks/nothing"));
        assert!(!is_page_route("a/favicon.ico"));
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("_next/static/chunks/a.JS"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("x.wasm"), "application/wasm");
        assert_eq!(content_type("no-extension"), "application/octet-stream");
        assert_eq!(content_type("dir.d/file"), "application/octet-stream");
    }

    #[test]
    fn etags_match_in_any_encoding() {
        let mut h = HeaderMap::new();
        let check = |h: &HeaderMap| if_none_match(h, "abc1");
        assert!(!check(&h));
        for ok in [
            "\"abc1\"",
            "W/\"abc1\"",
            "\"x\", \"abc1-br\"",
            "\"abc1-gz\"",
            "*",
        ] {
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(ok));
            assert!(check(&h), "{ok}");
        }
        for bad in ["\"abc\"", "\"abc1-zz\"", "\"abc12\""] {
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(bad));
            assert!(!check(&h), "{bad}");
        }
    }

    #[test]
    fn siblings_become_encodings() {
        let files = vec![
            ("index.html".to_string(), Bytes::from_static(b"<html>")),
            ("a.js".to_string(), Bytes::from_static(b"js")),
            ("a.js.br".to_string(), Bytes::from_static(b"BR")),
            ("a.js.gz".to_string(), Bytes::from_static(b"GZ")),
            ("lonely.gz".to_string(), Bytes::from_static(b"GZ")),
        ];
        let index = Index::new(files, "test".into());
        let mut keys: Vec<_> = index.files.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["a.js", "index.html", "lonely.gz"]);
        let a = &index.files["a.js"];
        assert_eq!(
            (a.br.as_deref(), a.gzip.as_deref()),
            (Some(&b"BR"[..]), Some(&b"GZ"[..]))
        );
        assert!(index.files["index.html"].br.is_none());
    }
}
