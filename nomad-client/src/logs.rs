//! Task log files with rotation, in Nomad's naming: `<task>.stdout.0`, `<task>.stdout.1`, ...

use std::io;
use std::path::{Path, PathBuf};

use nomad_core::driver::LogConfig;
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// One stream of a task's output written to numbered files that rotate by size.
///
/// Writes go to `<base>.<n>`; once that file holds `max_file_size` bytes the next byte goes to
/// `<base>.<n+1>`, and only the newest `max_files` files are kept. Opening a base that already
/// has files continues in the newest one, so an agent that restarts appends where it left off.
#[derive(Debug)]
pub struct RotatingLog {
    base: PathBuf,
    max_files: u32,
    max_file_size: u64,
    index: u64,
    size: u64,
    file: File,
}

impl RotatingLog {
    /// Opens the log at `base` with the task's `logs` limits (`max_file_size_mb` megabytes).
    pub async fn open(base: &Path, config: LogConfig) -> io::Result<Self> {
        let max_bytes = config.max_file_size_mb.saturating_mul(1024 * 1024);
        Self::with_limits(base, config.max_files, max_bytes).await
    }

    /// Opens the log at `base` keeping `max_files` files of at most `max_file_size` bytes
    /// (both at least 1).
    pub async fn with_limits(base: &Path, max_files: u32, max_file_size: u64) -> io::Result<Self> {
        let base = base.to_path_buf();
        let newest = existing_indices(&base).await?.into_iter().max();
        let index = newest.unwrap_or(0);
        let path = numbered(&base, index);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?;
        let size = file.metadata().await?.len();
        Ok(Self {
            base,
            max_files: max_files.max(1),
            max_file_size: max_file_size.max(1),
            index,
            size,
            file,
        })
    }

    /// The path of the file currently written.
    pub fn current_path(&self) -> PathBuf {
        numbered(&self.base, self.index)
    }

    /// Writes `data`, rotating as many times as the limits require.
    pub async fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.size >= self.max_file_size {
                self.rotate().await?;
            }
            let room = self.max_file_size - self.size;
            let take = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            self.file.write_all(&data[..take]).await?;
            self.size += take as u64;
            data = &data[take..];
        }
        self.file.flush().await
    }

    async fn rotate(&mut self) -> io::Result<()> {
        self.file.flush().await?;
        self.index += 1;
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(numbered(&self.base, self.index))
            .await?;
        self.size = 0;
        let keep_from = (self.index + 1).saturating_sub(u64::from(self.max_files));
        for old in existing_indices(&self.base).await? {
            if old < keep_from {
                match tokio::fs::remove_file(numbered(&self.base, old)).await {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(())
    }

    /// Copies everything `reader` yields into the log until it reports end of file.
    pub async fn copy_from(&mut self, mut reader: impl AsyncRead + Unpin) -> io::Result<()> {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let read = reader.read(&mut buf).await?;
            if read == 0 {
                return Ok(());
            }
            self.write(&buf[..read]).await?;
        }
    }
}

fn numbered(base: &Path, index: u64) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// The indices of the files `<base>.<n>` that exist.
async fn existing_indices(base: &Path) -> io::Result<Vec<u64>> {
    let (Some(dir), Some(stem)) = (base.parent(), base.file_name()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let stem = stem.to_string_lossy().into_owned();
    let mut found = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(err) => return Err(err),
    };
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(index) = name
            .strip_prefix(stem.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|digits| digits.parse::<u64>().ok())
        {
            found.push(index);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[tokio::test]
    async fn rotates_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("web.stdout");
        let mut log = RotatingLog::with_limits(&base, 2, 4).await.unwrap();
        log.write(b"abcdefghij").await.unwrap();
        // 10 bytes in files of 4: .0 "abcd", .1 "efgh", .2 "ij"; only two are kept.
        assert!(!dir.path().join("web.stdout.0").exists());
        assert_eq!(read(dir.path().join("web.stdout.1")), "efgh");
        assert_eq!(read(dir.path().join("web.stdout.2")), "ij");
        assert_eq!(log.current_path(), dir.path().join("web.stdout.2"));
    }

    #[tokio::test]
    async fn reopening_continues_in_the_newest_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("web.stderr");
        {
            let mut log = RotatingLog::with_limits(&base, 5, 4).await.unwrap();
            log.write(b"12345").await.unwrap();
        }
        let mut log = RotatingLog::with_limits(&base, 5, 4).await.unwrap();
        log.write(b"6789").await.unwrap();
        assert_eq!(read(dir.path().join("web.stderr.0")), "1234");
        assert_eq!(read(dir.path().join("web.stderr.1")), "5678");
        assert_eq!(read(dir.path().join("web.stderr.2")), "9");
        // A file whose name only starts like ours is not one of ours.
        assert!(!dir.path().join("web.stderr.x").exists());
    }

    #[tokio::test]
    async fn copies_a_reader_to_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("t.stdout");
        let mut log = RotatingLog::open(&base, LogConfig::default())
            .await
            .unwrap();
        log.copy_from(&b"hello\nworld\n"[..]).await.unwrap();
        assert_eq!(read(dir.path().join("t.stdout.0")), "hello\nworld\n");
    }
}
