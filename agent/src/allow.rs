//! `--allow` patterns: which commands from dashboards an agent runs. No pattern, no commands.
//!
//! A pattern is a program followed by argument patterns, split on whitespace (a word with spaces can be quoted
//! with `'…'` or `"…"`):
//!
//! - the **program** (first word) must equal the command's program exactly, byte for byte (`ls` does not allow
//!   `/bin/ls`, nor the other way round); it is then looked up in `PATH` as usual — never run through a shell;
//! - each further word matches the argument at its position as a **glob**: `*` matches any run of characters
//!   (`/` included, possibly none), `?` exactly one character, anything else itself;
//! - the argument count must be the pattern's, unless the pattern ends with `...`: then any further arguments
//!   (none included) are allowed — an **argument prefix**.
//!
//! | pattern | allows | does not allow |
//! |---|---|---|
//! | `git status` | `git status` | `git status -s`, `git push` |
//! | `git log ...` | `git log`, `git log --oneline -5` | `git push` |
//! | `cargo test ...` | `cargo test`, `cargo test -p x` | `cargo build` |
//! | `ls ...` | `ls`, `ls -la /etc` | `rm` |
//! | `echo *` | `echo hi` (one argument) | `echo`, `echo a b` |
//! | `sleep ?*` | `sleep 5`, `sleep 30` | `sleep` |

use std::fmt;
use std::str::FromStr;

/// One `--allow` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    program: String,
    args: Vec<String>,
    /// The pattern ended with `...`.
    prefix: bool,
}

/// Why a pattern could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty --allow pattern: give a program, e.g. --allow 'ls ...'")]
    Empty,
    #[error("unclosed quote in --allow pattern {0:?}")]
    Unclosed(String),
    #[error(
        "the program of --allow pattern {0:?} must be a plain name or path, not a glob or '...'"
    )]
    BadProgram(String),
    #[error("'...' may only end --allow pattern {0:?}")]
    MisplacedEllipsis(String),
}

fn words(s: &str) -> Result<Vec<String>, PatternError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(PatternError::Unclosed(s.to_string()));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut w = words(s)?;
        if w.is_empty() {
            return Err(PatternError::Empty);
        }
        let program = w.remove(0);
        if program.contains(['*', '?']) || program == "..." {
            return Err(PatternError::BadProgram(s.to_string()));
        }
        let prefix = w.last().is_some_and(|l| l == "...");
        if prefix {
            w.pop();
        }
        if w.iter().any(|a| a == "...") {
            return Err(PatternError::MisplacedEllipsis(s.to_string()));
        }
        Ok(Pattern {
            source: s.trim().to_string(),
            program,
            args: w,
            prefix,
        })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// `*` any run, `?` one character, else literal (iterative, with backtracking to the last `*`).
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl Pattern {
    /// Whether this pattern allows `program` with `args`.
    pub fn matches(&self, program: &str, args: &[String]) -> bool {
        if program != self.program {
            return false;
        }
        if args.len() < self.args.len() || (!self.prefix && args.len() != self.args.len()) {
            return false;
        }
        self.args.iter().zip(args).all(|(p, a)| glob(p, a))
    }
}

/// The patterns an agent was started with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Pattern>);

impl AllowList {
    pub fn new(patterns: Vec<Pattern>) -> Self {
        AllowList(patterns)
    }

    /// Reads every pattern (the first bad one is the error).
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        patterns
            .iter()
            .map(|p| p.as_ref().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(AllowList)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first pattern that allows the command, if any.
    pub fn find(&self, program: &str, args: &[String]) -> Option<&Pattern> {
        self.0.iter().find(|p| p.matches(program, args))
    }

    /// The patterns as written, for `capabilities.allow`.
    pub fn sources(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_documented_table_holds() {
        let table = [
            ("git status", "git status", true),
            ("git status", "git status -s", false),
            ("git status", "git push", false),
            ("git log ...", "git log", true),
            ("git log ...", "git log --oneline -5", true),
            ("git log ...", "git push", false),
            ("cargo test ...", "cargo test -p x", true),
            ("cargo test ...", "cargo build", false),
            ("ls ...", "ls -la /etc", true),
            ("ls ...", "ls", true),
            ("ls ...", "/bin/ls", false),
            ("echo *", "echo hi", true),
            ("echo *", "echo", false),
            ("echo *", "echo a b", false),
            ("sleep ?*", "sleep 5", true),
            ("sleep ?*", "sleep 30", true),
            ("sleep ?*", "sleep", false),
        ];
        for (pattern, command, want) in table {
            let p: Pattern = pattern.parse().unwrap();
            let mut a = args(command);
            let program = a.remove(0);
            assert_eq!(p.matches(&program, &a), want, "{pattern} vs {command}");
        }
    }

    #[test]
    fn globs_and_quotes() {
        assert!(glob("*.rs", "main.rs") && glob("a*b*c", "aXbYbZc") && glob("*", ""));
        assert!(!glob("*.rs", "main.rsx") && !glob("?", "") && !glob("a?c", "ac"));
        let p: Pattern = r#"grep -r "hello world" ..."#.parse().unwrap();
        assert!(p.matches("grep", &["-r".into(), "hello world".into(), "src".into()]));
        assert!(!p.matches("grep", &["-r".into(), "hello".into()]));
        // Metacharacters are just characters: nothing is interpreted by a shell.
        let p: Pattern = "echo *".parse().unwrap();
        assert!(p.matches("echo", &["$(rm -rf /); `x`".into()]));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!("".parse::<Pattern>(), Err(PatternError::Empty));
        assert!(matches!(
            "ls 'x".parse::<Pattern>(),
            Err(PatternError::Unclosed(_))
        ));
        assert!(matches!(
            "l* x".parse::<Pattern>(),
            Err(PatternError::BadProgram(_))
        ));
        assert!(matches!(
            "...".parse::<Pattern>(),
            Err(PatternError::BadProgram(_))
        ));
        assert!(matches!(
            "ls ... -l".parse::<Pattern>(),
            Err(PatternError::MisplacedEllipsis(_))
        ));
        let list = AllowList::parse(&["ls ...", "git status"]).unwrap();
        assert_eq!(list.sources(), ["ls ...", "git status"]);
        assert!(list.find("git", &args("status")).is_some());
        assert!(AllowList::default().find("ls", &[]).is_none());
    }
}
