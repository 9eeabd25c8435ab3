//! Writing to stdout and stderr without panicking when the reader goes away.
//!
//! Why this module exists: `println!` and `eprintln!` panic when the write fails,
//! and Rust ignores SIGPIPE, so `maildns records | head -1` used to end in a panic
//! (exit 101) once `head` closed the pipe. Like ripgrep, maildns treats a closed
//! pipe as the normal end of its output: the first `BrokenPipe` on stdout marks
//! stdout closed, later output is dropped, and the command finishes its work
//! (a `publish` is never cut half-way because its reader left) and exits with
//! its own code, quietly. Any other write error on stdout (a full disk) is
//! remembered and turns a successful exit into a failure naming the error.
//! Stderr (messages and the tracing log) never fails the command.
//!
//! Every print in `src/cli` goes through [`outln!`], [`eoutln!`] or [`eout!`]; clippy's `disallowed_macros` (clippy.toml) refuses `println!` and
//! friends so the kind does not come back.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout's reader has gone (EPIPE).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write error on stdout other than a closed pipe.
static STDOUT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// True once a write to stdout failed with `BrokenPipe`.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// The first write error on stdout that was not a closed pipe, in words.
pub fn stdout_error() -> Option<String> {
    STDOUT_ERROR.lock().ok().and_then(|e| e.clone())
}

fn note_stdout_error(e: &io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    } else if let Ok(mut slot) = STDOUT_ERROR.lock() {
        slot.get_or_insert_with(|| e.to_string());
        // Nothing more can be written usefully either.
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Stdout as an [`io::Write`] that never fails: a closed pipe (or another write
/// error, remembered for the exit code) drops the output. For writers that take
/// a `Write` (JSON, shell completions, progress bars).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !stdout_closed()
            && let Err(e) = io::stdout().lock().write_all(buf)
        {
            note_stdout_error(&e);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !stdout_closed()
            && let Err(e) = io::stdout().lock().flush()
        {
            note_stdout_error(&e);
        }
        Ok(())
    }
}

/// Stderr as an [`io::Write`] that never fails (messages to a closed stderr are
/// dropped). Also the tracing log's writer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().lock().flush();
        Ok(())
    }
}

/// `text` safe for a terminal: every control character but line feed and
/// tab (C0, DEL, C1: ESC, CR, BEL, CSI, ...) as `\DDD` escapes of its bytes,
/// the form [`maildns_providers::txt::escape_for_display`] gives every byte it
/// escapes; all else as it is. Every line of text maildns prints (through
/// [`outln!`], [`eoutln!`], [`eout!`]) and its log lines pass through this,
/// so a value read from DNS, a host's answer or error body, a key file or the
/// state store can never move the cursor, recolour or retitle the terminal,
/// whichever command shows it. (`--json` needs no such step: JSON escapes
/// control characters itself.)
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            crate::quote::push_byte_escapes(c, &mut out);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Writes formatted text to stdout (see [`outln!`]), terminal-safe ([`terminal_safe`]).
pub fn write_stdout(args: fmt::Arguments<'_>) {
    if stdout_closed() {
        return;
    }
    let text = args.to_string();
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(terminal_safe(&text).as_bytes()) {
        note_stdout_error(&e);
    }
}

/// Writes formatted text to stderr (see [`eoutln!`]), terminal-safe
/// ([`terminal_safe`]); errors are dropped.
pub fn write_stderr(args: fmt::Arguments<'_>) {
    let text = args.to_string();
    let _ = io::stderr()
        .lock()
        .write_all(terminal_safe(&text).as_bytes());
}

/// Stderr for the tracing log: as [`Stderr`], with every line made
/// terminal-safe ([`terminal_safe`]; a log line may quote a host's answer).
/// The log is therefore written without colours.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogStderr;

impl Write for LogStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let _ = io::stderr()
            .lock()
            .write_all(terminal_safe(&text).as_bytes());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().lock().flush();
        Ok(())
    }
}

/// `println!` that ends quietly on a closed pipe.
macro_rules! outln {
    () => {
        $crate::cli::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that never panics.
macro_rules! eoutln {
    () => {
        $crate::cli::output::write_stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics.
macro_rules! eout {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stderr(format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(
            terminal_safe("v=spf1 \x1b[31mred\x1b[0m -all\r\x07"),
            "v=spf1 \\027[31mred\\027[0m -all\\013\\007"
        );
        // C1 (CSI as one character) and DEL: each byte of the character.
        assert_eq!(terminal_safe("a\u{9b}2Jb\x7f"), "a\\194\\1552Jb\\127");
        // Line feeds, tabs, backslashes and other text pass as they are.
        let plain = "line 1\n\tcafé \\027 \"quoted\"\n";
        assert!(matches!(terminal_safe(plain), std::borrow::Cow::Borrowed(p) if p == plain));
    }
}
