//! The recipe format of template builds: one instruction per line, Dockerfile-like.
//!
//! ```text
//! # comments and blank lines are ignored; a trailing `\` continues a line
//! FROM minimal-debian
//! ENV APP_HOME=/srv/app MODE="production"
//! WORKDIR /srv/app
//! COPY app.py ./app.py
//! RUN apt-get install -y python3-flask
//! USER user
//! START python3 app.py
//! HEALTHCHECK --interval=1s --timeout=5s --retries=30 CMD curl -fs localhost:8000/
//! ```
//!
//! `FROM` must come first and only once; `HEALTHCHECK` at most once (it runs after every other
//! step, whatever its place). Instruction names are case-insensitive. Every refusal names the
//! line it is about.

use std::collections::BTreeMap;
use std::time::Duration;

/// Largest recipe accepted, in bytes.
pub const MAX_RECIPE_BYTES: usize = 64 * 1024;
/// Most instructions in one recipe.
pub const MAX_STEPS: usize = 256;

/// A parsed recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The template the build starts from.
    pub from: String,
    /// The line of `FROM`.
    pub from_line: usize,
    /// Every instruction after `FROM`, in order (the healthcheck excluded).
    pub steps: Vec<Step>,
    pub healthcheck: Option<Healthcheck>,
}

/// One instruction and the line (1-based) it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `/bin/sh -c <command>`, which must exit 0.
    Run(String),
    /// `/bin/sh -c <command>` left running in the template (memory kept: a snapshot template).
    Start(String),
    Env(Vec<(String, String)>),
    Workdir(String),
    User(String),
    /// An uploaded file (`src`, a path the build's files name) written to `dest`.
    Copy {
        src: String,
        dest: String,
    },
}

impl Op {
    /// The instruction's keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Op::Run(_) => "RUN",
            Op::Start(_) => "START",
            Op::Env(_) => "ENV",
            Op::Workdir(_) => "WORKDIR",
            Op::User(_) => "USER",
            Op::Copy { .. } => "COPY",
        }
    }
}

/// `HEALTHCHECK [--interval=D] [--timeout=D] [--retries=N] CMD <command>`: the command must
/// exit 0 within `timeout`, tried up to `retries` times `interval` apart, before the template
/// is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    pub line: usize,
    pub command: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
}

/// A refusal: the line (1-based; 0 for the recipe as a whole) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for RecipeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for RecipeError {}

fn err(line: usize, message: impl Into<String>) -> RecipeError {
    RecipeError {
        line,
        message: message.into(),
    }
}

/// Parses a recipe.
pub fn parse(text: &str) -> Result<Recipe, RecipeError> {
    if text.len() > MAX_RECIPE_BYTES {
        return Err(err(
            0,
            format!("the recipe is larger than {MAX_RECIPE_BYTES} bytes"),
        ));
    }
    let mut from: Option<(String, usize)> = None;
    let mut steps = Vec::new();
    let mut healthcheck = None;
    for (line, content) in logical_lines(text)? {
        let (word, rest) = match content.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (content.as_str(), ""),
        };
        let keyword = word.to_ascii_uppercase();
        if from.is_none() && keyword != "FROM" {
            if !is_keyword(&keyword) {
                return Err(err(line, format!("unknown instruction '{word}'")));
            }
            return Err(err(line, "the recipe must start with FROM <template>"));
        }
        let need = |what: &str| -> Result<String, RecipeError> {
            if rest.is_empty() {
                Err(err(line, format!("{keyword} needs {what}")))
            } else {
                Ok(rest.to_string())
            }
        };
        let op = match keyword.as_str() {
            "FROM" => {
                if from.is_some() {
                    return Err(err(line, "only one FROM is allowed"));
                }
                let name = need("a template name")?;
                if name.split_whitespace().count() != 1 {
                    return Err(err(line, "FROM takes one template name"));
                }
                from = Some((name, line));
                continue;
            }
            "RUN" => Op::Run(need("a command")?),
            "START" => Op::Start(need("a command")?),
            "ENV" => Op::Env(parse_env(line, &need("NAME=value")?)?),
            "WORKDIR" => {
                let dir = need("a directory")?;
                if dir.contains('\0') {
                    return Err(err(line, "WORKDIR has a NUL byte"));
                }
                Op::Workdir(dir)
            }
            "USER" => {
                let user = need("a user name")?;
                if !valid_user(&user) {
                    return Err(err(line, format!("'{user}' is not a valid user name")));
                }
                Op::User(user)
            }
            "COPY" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let [src, dest] = words[..] else {
                    return Err(err(line, "COPY takes a source file and a destination"));
                };
                if !valid_source(src) {
                    return Err(err(
                        line,
                        format!("COPY source '{src}' must be a relative path without '..'"),
                    ));
                }
                Op::Copy {
                    src: src.to_string(),
                    dest: dest.to_string(),
                }
            }
            "HEALTHCHECK" => {
                if healthcheck.is_some() {
                    return Err(err(line, "only one HEALTHCHECK is allowed"));
                }
                healthcheck = Some(parse_healthcheck(line, rest)?);
                continue;
            }
            _ => return Err(err(line, format!("unknown instruction '{word}'"))),
        };
        steps.push(Step { line, op });
        if steps.len() > MAX_STEPS {
            return Err(err(line, format!("a recipe has at most {MAX_STEPS} steps")));
        }
    }
    let Some((from, from_line)) = from else {
        return Err(err(
            0,
            "the recipe is empty: it must start with FROM <template>",
        ));
    };
    Ok(Recipe {
        from,
        from_line,
        steps,
        healthcheck,
    })
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "FROM" | "RUN" | "START" | "ENV" | "WORKDIR" | "USER" | "COPY" | "HEALTHCHECK"
    )
}

/// Non-blank, non-comment lines with continuations joined, each with its first line number.
fn logical_lines(text: &str) -> Result<Vec<(usize, String)>, RecipeError> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim();
        if pending.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(b) => (b.trim_end(), true),
            None => (trimmed, false),
        };
        match &mut pending {
            Some((_, acc)) => {
                if !body.is_empty() {
                    acc.push(' ');
                    acc.push_str(body);
                }
            }
            None => pending = Some((n, body.to_string())),
        }
        if !continues {
            out.extend(pending.take());
        }
    }
    if let Some((line, _)) = pending {
        return Err(err(
            line,
            "the last line ends with '\\' and nothing follows",
        ));
    }
    Ok(out)
}

/// `A=1 B="two words"` (double quotes group; `\"` and `\\` escape inside them).
fn parse_env(line: usize, text: &str) -> Result<Vec<(String, String)>, RecipeError> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(err(line, format!("ENV expects NAME=value, got '{name}'")));
        }
        if !valid_env_name(&name) {
            return Err(err(
                line,
                format!("'{name}' is not a valid environment variable name"),
            ));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(err(line, format!("ENV {name}: unterminated quote")));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if value.contains('\0') {
            return Err(err(line, format!("ENV {name}: NUL byte in the value")));
        }
        pairs.push((name, value));
    }
    if pairs.is_empty() {
        return Err(err(line, "ENV needs NAME=value"));
    }
    Ok(pairs)
}

fn parse_healthcheck(line: usize, text: &str) -> Result<Healthcheck, RecipeError> {
    let mut check = Healthcheck {
        line,
        command: String::new(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(10),
        retries: 30,
    };
    let mut rest = text.trim();
    loop {
        let (word, after) = match rest.split_once(char::is_whitespace) {
            Some((w, a)) => (w, a.trim_start()),
            None => (rest, ""),
        };
        if word.eq_ignore_ascii_case("CMD") {
            if after.is_empty() {
                return Err(err(line, "HEALTHCHECK CMD needs a command"));
            }
            check.command = after.to_string();
            return Ok(check);
        }
        let Some((key, value)) = word.strip_prefix("--").and_then(|o| o.split_once('=')) else {
            return Err(err(
                line,
                "HEALTHCHECK takes [--interval=D] [--timeout=D] [--retries=N] CMD <command>",
            ));
        };
        match key {
            "interval" => check.interval = duration(line, key, value)?,
            "timeout" => check.timeout = duration(line, key, value)?,
            "retries" => {
                check.retries = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| err(line, "--retries must be a number from 1 to 1000"))?
            }
            other => return Err(err(line, format!("unknown HEALTHCHECK option --{other}"))),
        }
        rest = after;
    }
}

/// `500ms`, `2s`, `1m` (at most 10 minutes).
fn duration(line: usize, key: &str, value: &str) -> Result<Duration, RecipeError> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        err(
            line,
            format!("--{key}={value}: expected a duration like 500ms, 2s or 1m"),
        )
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => {
            return Err(err(
                line,
                format!("--{key}={value}: expected a duration like 500ms, 2s or 1m"),
            ))
        }
    };
    if d.is_zero() || d > Duration::from_secs(600) {
        return Err(err(
            line,
            format!("--{key} must be more than 0 and at most 10m"),
        ));
    }
    Ok(d)
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 32
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A relative path of normal components (what an uploaded file may be called).
pub fn valid_source(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.starts_with('/')
        && !path.contains('\0')
        && path.split('/').all(|c| !c.is_empty() && c != "..")
}

/// The effective environment, working directory and user after `steps` (what a capsule
/// created from the template starts with).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Defaults {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Defaults {
    /// `path` resolved against the current working directory (`/` when none was set).
    pub fn resolve(&self, path: &str) -> String {
        if path.starts_with('/') {
            normalize(path)
        } else {
            let base = self.workdir.as_deref().unwrap_or("/");
            normalize(&format!("{base}/{path}"))
        }
    }
}

/// Collapses `.`, `..` and repeated slashes of an absolute path (never above `/`).
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if path.ends_with('/') && out.len() > 1 {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_recipe_parses() {
        let r = parse(
            "# a web app\n\
             FROM minimal-debian\n\
             \n\
             ENV APP=/srv/app MODE=\"two words\" Q=\"a\\\"b\"\n\
             WORKDIR /srv/app\n\
             COPY app.py ./app.py\n\
             RUN apt-get update && \\\n    apt-get install -y curl\n\
             user user\n\
             START python3 -m http.server 8000\n\
             HEALTHCHECK --interval=500ms --timeout=2s --retries=5 CMD curl -fs localhost:8000\n",
        )
        .unwrap();
        assert_eq!(r.from, "minimal-debian");
        assert_eq!(r.from_line, 2);
        let ops: Vec<(usize, &str)> = r.steps.iter().map(|s| (s.line, s.op.keyword())).collect();
        assert_eq!(
            ops,
            [
                (4, "ENV"),
                (5, "WORKDIR"),
                (6, "COPY"),
                (7, "RUN"),
                (9, "USER"),
                (10, "START")
            ]
        );
        assert_eq!(
            r.steps[0].op,
            Op::Env(vec![
                ("APP".into(), "/srv/app".into()),
                ("MODE".into(), "two words".into()),
                ("Q".into(), "a\"b".into()),
            ])
        );
        assert_eq!(
            r.steps[3].op,
            Op::Run("apt-get update && apt-get install -y curl".into())
        );
        let hc = r.healthcheck.unwrap();
        assert_eq!(hc.line, 11);
        assert_eq!(hc.command, "curl -fs localhost:8000");
        assert_eq!(hc.interval, Duration::from_millis(500));
        assert_eq!(hc.timeout, Duration::from_secs(2));
        assert_eq!(hc.retries, 5);
    }

    #[test]
    fn refusals_name_the_line() {
        let cases = [
            ("FROM a\nFETCH x\n", "line 2: unknown instruction 'FETCH'"),
            (
                "# c\nRUN echo\nFROM a\n",
                "line 2: the recipe must start with FROM <template>",
            ),
            ("\n\nBOGUS\n", "line 3: unknown instruction 'BOGUS'"),
            (
                "",
                "the recipe is empty: it must start with FROM <template>",
            ),
            (
                "# only\n",
                "the recipe is empty: it must start with FROM <template>",
            ),
            ("FROM a\nFROM b\n", "line 2: only one FROM is allowed"),
            ("FROM a b\n", "line 1: FROM takes one template name"),
            ("FROM a\nRUN\n", "line 2: RUN needs a command"),
            (
                "FROM a\nENV 1X=2\n",
                "line 2: '1X' is not a valid environment variable name",
            ),
            ("FROM a\nENV X\n", "line 2: ENV expects NAME=value, got 'X'"),
            (
                "FROM a\nENV X=\"open\n",
                "line 2: ENV X: unterminated quote",
            ),
            (
                "FROM a\nCOPY a\n",
                "line 2: COPY takes a source file and a destination",
            ),
            (
                "FROM a\nCOPY ../etc/passwd /x\n",
                "line 2: COPY source '../etc/passwd' must be a relative path without '..'",
            ),
            (
                "FROM a\nUSER a;b\n",
                "line 2: 'a;b' is not a valid user name",
            ),
            (
                "FROM a\nHEALTHCHECK CMD\n",
                "line 2: HEALTHCHECK CMD needs a command",
            ),
            (
                "FROM a\nHEALTHCHECK --retries=0 CMD true\n",
                "line 2: --retries must be a number from 1 to 1000",
            ),
            (
                "FROM a\nHEALTHCHECK --interval=5h CMD true\n",
                "line 2: --interval=5h: expected a duration like 500ms, 2s or 1m",
            ),
            (
                "FROM a\nHEALTHCHECK --every=1s CMD true\n",
                "line 2: unknown HEALTHCHECK option --every",
            ),
            (
                "FROM a\nHEALTHCHECK CMD a\nHEALTHCHECK CMD b\n",
                "line 3: only one HEALTHCHECK is allowed",
            ),
            (
                "FROM a\nRUN x \\\n",
                "line 2: the last line ends with '\\' and nothing follows",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).expect_err(text).to_string();
            assert_eq!(got, want, "{text:?}");
        }
        let big = format!("FROM a\n{}", "RUN true\n".repeat(MAX_STEPS + 1));
        assert!(parse(&big).unwrap_err().message.contains("at most"));
    }

    #[test]
    fn paths_resolve_against_the_workdir() {
        let mut d = Defaults::default();
        assert_eq!(d.resolve("a/b"), "/a/b");
        d.workdir = Some("/srv/app".into());
        assert_eq!(d.resolve("./x.py"), "/srv/app/x.py");
        assert_eq!(d.resolve("../../../etc/x"), "/etc/x");
        assert_eq!(d.resolve("/abs//y/"), "/abs/y/");
        assert!(valid_source("dir/file.txt"));
        assert!(!valid_source("/etc/passwd") && !valid_source("a/../b") && !valid_source("a//b"));
    }
}
