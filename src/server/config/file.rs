//! Reading a configuration file the way Redis reads one: a directive a line, `#` comments,
//! arguments split on spaces with double-quoted (escapes allowed) and single-quoted strings,
//! case-insensitive names, and `include` of other files.

use std::path::{Path, PathBuf};

/// One directive of a configuration file: where it is, its name in lowercase and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The file the directive is in.
    pub file: PathBuf,
    /// Its line number, from 1.
    pub line: usize,
    /// The directive's name, in lowercase.
    pub name: String,
    /// Its arguments, quotes removed and escapes decoded.
    pub args: Vec<String>,
}

/// Why a configuration file could not be read or applied.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file named on the command line could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A line is wrong: its syntax, its name, its value, or the file it includes.
    #[error("{}:{line}: {reason}", file.display())]
    Line {
        /// The file holding the line (the configuration file or one it includes).
        file: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigFileError {
    fn at(file: &Path, line: usize, reason: impl Into<String>) -> Self {
        ConfigFileError::Line {
            file: file.to_path_buf(),
            line,
            reason: reason.into(),
        }
    }
}

/// Every directive of the file at `path`, in order, with the directives of the files it
/// includes in place of each `include` line. A relative `include` path is taken from the
/// directory of the file that holds the line.
pub fn read(path: &Path) -> Result<Vec<Directive>, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut directives = Vec::new();
    read_text(path, &text, &mut vec![identity(path)], &mut directives)?;
    Ok(directives)
}

/// The name a file is known by for include-loop detection: its canonical path when it has one.
fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn read_text(
    path: &Path,
    text: &str,
    including: &mut Vec<PathBuf>,
    directives: &mut Vec<Directive>,
) -> Result<(), ConfigFileError> {
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let args = split_args(raw).map_err(|reason| ConfigFileError::at(path, line, reason))?;
        let Some((name, args)) = args.split_first() else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if name == "include" {
            let [included] = args else {
                return Err(ConfigFileError::at(
                    path,
                    line,
                    "include takes one file name",
                ));
            };
            include(path, line, Path::new(included), including, directives)?;
        } else {
            directives.push(Directive {
                file: path.to_path_buf(),
                line,
                name,
                args: args.to_vec(),
            });
        }
    }
    Ok(())
}

fn include(
    from: &Path,
    line: usize,
    included: &Path,
    including: &mut Vec<PathBuf>,
    directives: &mut Vec<Directive>,
) -> Result<(), ConfigFileError> {
    let path = crate::fs::parent_dir(from).join(included);
    let text = std::fs::read_to_string(&path).map_err(|error| {
        ConfigFileError::at(
            from,
            line,
            format!("cannot read included file {}: {error}", path.display()),
        )
    })?;
    let id = identity(&path);
    if including.contains(&id) {
        return Err(ConfigFileError::at(
            from,
            line,
            format!(
                "include loop: {} is already being read; remove one of the include lines",
                path.display()
            ),
        ));
    }
    including.push(id);
    read_text(&path, &text, including, directives)?;
    including.pop();
    Ok(())
}

/// Splits a line into arguments as Redis does. A line whose first non-blank character is `#`
/// is a comment (no arguments). Inside double quotes `\n`, `\r`, `\t`, `\b`, `\a`, `\xHH` and
/// `\` before any other character are escapes; inside single quotes only `\'` is. A closing
/// quote must end the argument.
pub fn split_args(line: &str) -> Result<Vec<String>, String> {
    let line = line.trim_start_matches(is_space);
    if line.starts_with('#') {
        return Ok(Vec::new());
    }
    let mut args = Vec::new();
    let mut rest = line.as_bytes();
    loop {
        while let [first, tail @ ..] = rest
            && is_space(char::from(*first))
        {
            rest = tail;
        }
        if rest.is_empty() {
            return Ok(args);
        }
        let (arg, tail) = split_arg(rest)?;
        let arg = String::from_utf8(arg)
            .map_err(|_| "an argument is not valid UTF-8 (check its \\x escapes)".to_string())?;
        args.push(arg);
        rest = tail;
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

#[derive(Clone, Copy)]
enum Quote {
    None,
    Double,
    Single,
}

/// One argument from the start of `text` (which is not blank), and what follows it.
fn split_arg(mut text: &[u8]) -> Result<(Vec<u8>, &[u8]), String> {
    let mut arg = Vec::new();
    let mut quote = Quote::None;
    loop {
        let Some((&byte, tail)) = text.split_first() else {
            return match quote {
                Quote::None => Ok((arg, text)),
                _ => Err("unbalanced quotes in configuration line".into()),
            };
        };
        text = tail;
        match (quote, byte) {
            (Quote::None, b'"') => quote = Quote::Double,
            (Quote::None, b'\'') => quote = Quote::Single,
            (Quote::None, byte) if is_space(char::from(byte)) => return Ok((arg, text)),
            (Quote::Double, b'"') | (Quote::Single, b'\'') => {
                return match text.first() {
                    Some(&next) if !is_space(char::from(next)) => {
                        Err("a closing quote must be followed by a space".into())
                    }
                    _ => Ok((arg, text)),
                };
            }
            (Quote::Double, b'\\') if !text.is_empty() => {
                let (decoded, tail) = unescape(text);
                arg.push(decoded);
                text = tail;
            }
            (Quote::Single, b'\\') if text.first() == Some(&b'\'') => {
                arg.push(b'\'');
                text = &text[1..];
            }
            (_, byte) => arg.push(byte),
        }
    }
}

/// The byte a double-quoted escape stands for (`text` follows the backslash), and the rest.
fn unescape(text: &[u8]) -> (u8, &[u8]) {
    if let [b'x', high, low, tail @ ..] = text
        && let (Some(high), Some(low)) = (hex(*high), hex(*low))
    {
        return (high << 4 | low, tail);
    }
    let decoded = match text[0] {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    };
    (decoded, &text[1..])
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// A value written so that [`split_args`] reads it back: in double quotes, with `\`, `"` and
/// bytes that are not printable ASCII escaped.
pub fn quote(value: &str) -> String {
    let mut quoted = String::from("\"");
    for byte in value.bytes() {
        match byte {
            b'\\' => quoted.push_str("\\\\"),
            b'"' => quoted.push_str("\\\""),
            b'\n' => quoted.push_str("\\n"),
            b'\r' => quoted.push_str("\\r"),
            b'\t' => quoted.push_str("\\t"),
            0x07 => quoted.push_str("\\a"),
            0x08 => quoted.push_str("\\b"),
            b' '..=b'~' => quoted.push(char::from(byte)),
            other => quoted.push_str(&format!("\\x{other:02x}")),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        split_args(line).unwrap()
    }

    #[test]
    fn lines_split_as_redis_splits_them() {
        assert_eq!(args("  port   6380  "), ["port", "6380"]);
        assert_eq!(args("# port 6380"), Vec::<String>::new());
        assert_eq!(args("   "), Vec::<String>::new());
        assert_eq!(args(r#"requirepass "a b""#), ["requirepass", "a b"]);
        assert_eq!(args(r#"x "\x41\n\"\\" ''"#), ["x", "A\n\"\\", ""]);
        assert_eq!(args(r"x 'it\'s' '\n'"), ["x", "it's", "\\n"]);
        assert_eq!(args(r#"x a"b c""#), ["x", "ab c"]);
        assert_eq!(args("x \"caf\\xc3\\xa9\""), ["x", "café"]);
        for bad in [
            r#"x "open"#,
            "x 'open",
            r#"x "a"b"#,
            r"x 'a'b",
            "x \"\\xff\"",
        ] {
            assert!(split_args(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn quoted_values_read_back_unchanged() {
        for value in [
            "",
            "plain",
            "a b",
            "quote\" and \\ and \n\t",
            "caf\u{e9}",
            "\x01",
        ] {
            let line = format!("x {}", quote(value));
            assert_eq!(args(&line), ["x", value], "{line}");
        }
    }

    #[test]
    fn includes_are_read_in_place_relative_to_their_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        std::fs::write(dir.path().join("conf.d/extra.conf"), "PORT 7000\n").unwrap();
        let main = dir.path().join("main.conf");
        std::fs::write(&main, "port 1\ninclude conf.d/extra.conf\nmaxclients 5\n").unwrap();
        let read: Vec<(String, Vec<String>, usize)> = read(&main)
            .unwrap()
            .into_iter()
            .map(|d| (d.name, d.args, d.line))
            .collect();
        assert_eq!(
            read,
            [
                ("port".into(), vec!["1".into()], 1),
                ("port".into(), vec!["7000".into()], 1),
                ("maxclients".into(), vec!["5".into()], 3),
            ]
        );
    }

    #[test]
    fn include_loops_and_missing_includes_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.conf");
        let b = dir.path().join("b.conf");
        std::fs::write(&a, "port 1\ninclude b.conf\n").unwrap();
        std::fs::write(&b, "\n\ninclude a.conf\n").unwrap();
        let error = read(&a).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}:3: include loop", b.display())),
            "{error}"
        );
        std::fs::write(&a, "include missing.conf\n").unwrap();
        let error = read(&a).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}:1: cannot read included file", a.display())),
            "{error}"
        );
        std::fs::write(&a, "include\n").unwrap();
        assert!(
            read(&a)
                .unwrap_err()
                .to_string()
                .contains(":1: include takes one file name")
        );
        std::fs::write(&a, "port \"6379\n").unwrap();
        assert!(
            read(&a)
                .unwrap_err()
                .to_string()
                .contains(":1: unbalanced quotes")
        );
    }
}
