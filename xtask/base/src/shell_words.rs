//! Command lines as a POSIX shell reads them back, so that every `$ …` line
//! the tool shows and every command it suggests can be pasted and re-run.
use std::ffi::OsStr;

/// A word as it is when it holds nothing the shell would interpret, else in
/// single quotes.
pub fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A program and its arguments, each word quoted.
pub fn line<'a>(program: &'a OsStr, args: impl IntoIterator<Item = &'a OsStr>) -> String {
    std::iter::once(program)
        .chain(args)
        .map(|word| quote(&word.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(quote("a=b"), "a=b");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's here"), "'it'\\''s here'");
        let args = [OsStr::new("-c"), OsStr::new("print(1)")];
        assert_eq!(line(OsStr::new("python"), args), "python -c 'print(1)'");
    }
}
