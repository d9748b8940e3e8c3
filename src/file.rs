//! Reading the files a check names (maps, main.cf, `domain` lists, CA files and directories, client
//! certificates and keys, the textfile it replaces) without trusting them. Each is opened without blocking (a
//! FIFO or a device never holds the check), must be a regular file (or a directory where one is expected), is
//! read up to [`MAX_BYTES`], and within the deadline: a read still waiting then (a hung network file system)
//! is given up, and the error says so. Anything else is a [`FileError`] naming what the path is.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

/// The largest file the check reads: far more than any map, CA bundle or domain list (Debian's whole CA
/// bundle is 0.2 MB), far less than what would strain memory.
pub const MAX_BYTES: u64 = 8 << 20;

/// Why a file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileError {
    NotFound,
    PermissionDenied,
    /// Not a regular file: what it is instead (`a FIFO`, `a character device`...).
    NotRegular(&'static str),
    /// Not a directory, where one is expected: what it is instead.
    NotDirectory(&'static str),
    TooLarge,
    /// Still not read at the deadline.
    TimedOut,
    Io(String),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::NotFound => f.write_str("no such file"),
            FileError::PermissionDenied => f.write_str("permission denied"),
            FileError::NotRegular(what) => write!(f, "{what}, not a regular file: not read"),
            FileError::NotDirectory(what) => write!(f, "{what}, not a directory: not read"),
            FileError::TooLarge => write!(f, "larger than {} MiB: not read", MAX_BYTES >> 20),
            FileError::TimedOut => f.write_str("not read within the deadline (a hung file system?)"),
            FileError::Io(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for FileError {}

impl From<std::io::Error> for FileError {
    fn from(e: std::io::Error) -> FileError {
        match e.kind() {
            std::io::ErrorKind::NotFound => FileError::NotFound,
            std::io::ErrorKind::PermissionDenied => FileError::PermissionDenied,
            _ => {
                // Rust's " (os error N)" suffix says nothing to an admin.
                let s = e.to_string();
                FileError::Io(s.find(" (os error").map_or(s.clone(), |i| s[..i].to_lowercase()))
            }
        }
    }
}

/// What a path is, in words, for a file that is not what was expected.
fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a file"
    }
}

/// Read the regular file at `path` (symbolic links followed), by `until`.
pub fn read(path: &Path, until: Instant) -> Result<Vec<u8>, FileError> {
    let path = path.to_path_buf();
    within(until, move || read_now(&path))
}

/// The regular files in the directory at `path` (symbolic links followed; other entries skipped), by `until`.
pub fn list_dir(path: &Path, until: Instant) -> Result<Vec<PathBuf>, FileError> {
    let path = path.to_path_buf();
    within(until, move || {
        let meta = std::fs::metadata(&path)?;
        if !meta.is_dir() {
            return Err(FileError::NotDirectory(kind(&meta)));
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?.path();
            if std::fs::metadata(&entry).is_ok_and(|m| m.is_file()) {
                files.push(entry);
            }
        }
        files.sort();
        Ok(files)
    })
}

/// Run `work` on a thread of its own and wait for it until `until`; a file system that hangs keeps only that
/// thread, which the process does not wait for.
fn within<T: Send + 'static>(
    until: Instant,
    work: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("file".to_string())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| FileError::Io(format!("cannot start a reader thread: {e}")))?;
    match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        Ok(result) => result,
        Err(_) => Err(FileError::TimedOut),
    }
}

fn read_now(path: &Path) -> Result<Vec<u8>, FileError> {
    // Refuse what is not a regular file before opening it (opening a device can have effects of its own),
    // then check again what was opened (the path may have changed in between).
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular(kind(&meta)));
    }
    let file: File = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(FileError::NotRegular(kind(&meta)));
    }
    if meta.len() > MAX_BYTES {
        return Err(FileError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(FileError::TooLarge);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lhc-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn regular_files_are_read_and_others_are_named() {
        let dir = temp_dir("kinds");
        let file = dir.join("map.cf");
        std::fs::write(&file, b"timeout = 3\n").unwrap();
        assert_eq!(read(&file, soon()).unwrap(), b"timeout = 3\n");
        assert_eq!(read(&dir, soon()), Err(FileError::NotRegular("a directory")));
        assert_eq!(read(Path::new("/dev/null"), soon()), Err(FileError::NotRegular("a character device")));
        assert_eq!(read(&dir.join("missing"), soon()), Err(FileError::NotFound));
        let fifo = dir.join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert_eq!(read(&fifo, soon()), Err(FileError::NotRegular("a FIFO (named pipe)")));
        assert_eq!(list_dir(&file, soon()), Err(FileError::NotDirectory("a regular file")));
        assert_eq!(list_dir(&dir, soon()).unwrap(), vec![file]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_over_the_cap_are_refused() {
        let dir = temp_dir("big");
        let file = dir.join("big");
        std::fs::File::create(&file).unwrap().set_len(MAX_BYTES + 1).unwrap();
        assert_eq!(read(&file, soon()), Err(FileError::TooLarge));
        std::fs::File::create(&file).unwrap().set_len(MAX_BYTES).unwrap();
        assert_eq!(read(&file, soon()).map(|b| b.len() as u64), Ok(MAX_BYTES));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_passed_deadline_gives_up_waiting() {
        let slow = within(Instant::now(), || {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        });
        assert_eq!(slow, Err(FileError::TimedOut));
    }
}
