//! Image bytes from a local file (`--image FILE` or a `file://` URL).

use crate::io::ImageSource;
use std::fmt;
use std::fs::File;
use std::io::Read;

/// std's I/O error as an embedded-io error that prints readably.
#[derive(Debug)]
pub struct SourceError(pub std::io::Error);

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for SourceError {}

impl embedded_io::Error for SourceError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

pub struct FileImage {
    path: String,
    file: File,
    size: u64,
}

impl FileImage {
    pub fn open(path: &str) -> Result<FileImage, String> {
        let file = File::open(path).map_err(|e| format!("image {path}: {e}"))?;
        let meta = file.metadata().map_err(|e| format!("image {path}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("image {path}: not a regular file"));
        }
        Ok(FileImage {
            path: path.to_string(),
            file,
            size: meta.len(),
        })
    }
}

impl embedded_io::ErrorType for FileImage {
    type Error = SourceError;
}

impl embedded_io::Read for FileImage {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other.map_err(SourceError),
            }
        }
    }
}

impl ImageSource for FileImage {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }
    fn reads_cheaply(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        self.path.clone()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<Result<(), String>> {
        use std::os::unix::fs::FileExt;
        Some(self.file.read_exact_at(buf, offset).map_err(|e| {
            format!(
                "{}: reading {} bytes at {offset}: {e}",
                self.path,
                buf.len()
            )
        }))
    }
}
