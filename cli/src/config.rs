//! Where the control plane is and which API key to use.
//!
//! The config file is `--config`/`$WRENN_CONFIG`, else `$XDG_CONFIG_HOME/wrenn/config.toml`,
//! else `~/.config/wrenn/config.toml`. It holds two TOML strings, `url` and `api_key`, and is
//! written with mode 0600 by `wrenn login`. A file that other users can read is refused
//! (it holds a secret). `WRENN_URL` and `WRENN_API_KEY` override what the file says; when
//! both are set the file is not read at all.
//!
//! Only the flat `key = "string"` subset of TOML is read and written: that is all this file
//! needs, and it keeps the CLI free of a TOML library.

use crate::error::{CliError, Result};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const ENV_URL: &str = "WRENN_URL";
pub const ENV_API_KEY: &str = "WRENN_API_KEY";

/// What a command needs to talk to the control plane.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Base URL without a trailing slash, e.g. `https://wrenn.example.com`.
    pub url: String,
    pub api_key: String,
}

/// The config file's contents.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub url: Option<String>,
    pub api_key: Option<String>,
}

/// The config file's path: `explicit` (from `--config` or `WRENN_CONFIG`), else the XDG
/// location.
pub fn path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(p.to_path_buf());
    }
    // The XDG spec ignores relative values of XDG_CONFIG_HOME.
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Ok(xdg.join("wrenn/config.toml"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config/wrenn/config.toml")),
        None => Err(CliError::Config(
            "cannot find a config file location: set WRENN_CONFIG, XDG_CONFIG_HOME or HOME".into(),
        )),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The credentials from the environment and the config file at `path`.
pub fn credentials(path: &Path) -> Result<Credentials> {
    let (env_url, env_key) = (env(ENV_URL), env(ENV_API_KEY));
    let file = if env_url.is_some() && env_key.is_some() {
        ConfigFile::default()
    } else {
        load(path)?.unwrap_or_default()
    };
    let url = env_url.or(file.url).ok_or_else(|| {
        CliError::Config(format!(
            "no control-plane URL: run `wrenn login --url URL` or set {ENV_URL} (config file: {})",
            path.display()
        ))
    })?;
    let api_key = env_key.or(file.api_key).ok_or_else(|| {
        CliError::Config(format!(
            "no API key: run `wrenn login` or set {ENV_API_KEY} (config file: {})",
            path.display()
        ))
    })?;
    Ok(Credentials {
        url: normalise_url(&url)?,
        api_key,
    })
}

/// Checks that `url` is an absolute http(s) URL and drops its trailing slash.
pub fn normalise_url(url: &str) -> Result<String> {
    let url = url.trim();
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| CliError::Config(format!("invalid control-plane URL '{url}': {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(CliError::Config(format!(
            "invalid control-plane URL '{url}': expected http://HOST[:PORT] or https://HOST[:PORT]"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(CliError::Config(format!(
            "invalid control-plane URL '{url}': it must not have a query or fragment"
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Reads the config file; `None` when there is none. Refuses a file that group or others
/// can access.
pub fn load(path: &Path) -> Result<Option<ConfigFile>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::Config(format!(
                "cannot read config file {}: {e}",
                path.display()
            )))
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CliError::Config(format!(
            "config file {} is accessible to other users (mode {mode:04o}) and holds an API key; \
             refusing to use it. Fix it with: chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Config(format!("cannot read config file {}: {e}", path.display()))
    })?;
    parse(&text)
        .map(Some)
        .map_err(|e| CliError::Config(format!("config file {}: {e}", path.display())))
}

/// Writes the config file with mode 0600 (its directory 0700 when created), replacing any
/// previous one atomically.
pub fn save(path: &Path, config: &ConfigFile) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            CliError::Config(format!(
                "cannot create config directory {}: {e}",
                dir.display()
            ))
        })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(render(config).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::Config(format!("cannot write config file {}: {e}", path.display()))
    })
}

fn render(config: &ConfigFile) -> String {
    let mut out = String::from("# wrenn CLI configuration, written by `wrenn login`.\n");
    if let Some(url) = &config.url {
        out.push_str(&format!("url = {}\n", quote(url)));
    }
    if let Some(key) = &config.api_key {
        out.push_str(&format!("api_key = {}\n", quote(key)));
    }
    out
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads `key = "value"` lines (basic or literal strings), comments and blank lines. Keys
/// other than `url` and `api_key` are ignored; anything else is an error naming the line.
fn parse(text: &str) -> std::result::Result<ConfigFile, String> {
    let mut config = ConfigFile::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}", n + 1);
        let (key, rest) = line
            .split_once('=')
            .ok_or_else(|| bad("expected key = \"value\""))?;
        let key = key.trim();
        let (value, tail) = parse_string(rest.trim()).map_err(|e| bad(&e))?;
        let tail = tail.trim();
        if !(tail.is_empty() || tail.starts_with('#')) {
            return Err(bad("unexpected text after the value"));
        }
        match key {
            "url" => config.url = Some(value),
            "api_key" => config.api_key = Some(value),
            _ => {}
        }
    }
    Ok(config)
}

/// A TOML basic (`"..."`) or literal (`'...'`) string at the start of `s`, and what follows.
fn parse_string(s: &str) -> std::result::Result<(String, &str), String> {
    if let Some(rest) = s.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("unterminated string")?;
        return Ok((rest[..end].to_string(), &rest[end + 1..]));
    }
    let rest = s
        .strip_prefix('"')
        .ok_or("expected a quoted string value")?;
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &rest[i + 1..])),
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated string")?;
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' | 'U' => {
                        let len = if e == 'u' { 4 } else { 8 };
                        let hex: String = (0..len)
                            .filter_map(|_| chars.next())
                            .map(|(_, c)| c)
                            .collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or("invalid unicode escape")?;
                        out.push(c);
                    }
                    _ => return Err(format!("unknown escape \\{e}")),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_config_reads_back() {
        let config = ConfigFile {
            url: Some("http://127.0.0.1:8000".into()),
            api_key: Some("wrn_\"odd\\key\"\u{1}".into()),
        };
        assert_eq!(parse(&render(&config)).unwrap(), config);
    }

    #[test]
    fn reads_the_toml_subset() {
        let c =
            parse("# hi\n\nurl = 'https://x.example' # c\napi_key=\"k\\u0041\"\nother = \"x\"\n")
                .unwrap();
        assert_eq!(c.url.as_deref(), Some("https://x.example"));
        assert_eq!(c.api_key.as_deref(), Some("kA"));
        assert!(parse("[section]\n").unwrap_err().contains("line 1"));
        assert!(parse("url = http://x\n").unwrap_err().contains("quoted"));
        assert!(parse("url = \"x\" y\n").is_err());
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(normalise_url("http://h:1/").unwrap(), "http://h:1");
        assert_eq!(normalise_url(" https://h/p/ ").unwrap(), "https://h/p");
        assert!(normalise_url("h:1").is_err());
        assert!(normalise_url("ftp://h").is_err());
        assert!(normalise_url("not a url").is_err());
    }
}
