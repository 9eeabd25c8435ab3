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

/// Writes formatted text to stdout (see [`outln!`]).
pub fn write_stdout(args: fmt::Arguments<'_>) {
    if stdout_closed() {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        note_stdout_error(&e);
    }
}

/// Writes formatted text to stderr (see [`eoutln!`]); errors are dropped.
pub fn write_stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
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
