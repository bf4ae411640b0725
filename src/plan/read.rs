//! Reading a plan or profiles file from disk, bounded: at most [`MAX_FILE_BYTES`], UTF-8 text without NUL
//! bytes. A UTF-8 byte order mark is dropped. Anything else is one diagnostic, located where possible, and the
//! file is never parsed, so no hostile file reaches the parsers unbounded.

use super::diag::{Code, Diag, SourceFile};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// The largest plan or profiles file read (10 MiB). Real plans are a few KiB.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads `path` as the source of a `what` ("plan", "profiles file"). `Err` is the one diagnostic saying why
/// the file cannot be used.
pub fn read_source(path: &Path, what: &str) -> Result<Arc<SourceFile>, Box<Diag>> {
    let name = path.display().to_string();
    let unreadable = |e: std::io::Error| {
        Box::new(
            Diag {
                source: Some(SourceFile::new(name.clone(), "")),
                ..Diag::error(Code::Io, format!("cannot read {what} {name}: {e}"))
            }
            .help("check the path and its permissions"),
        )
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    // Read one byte past the limit rather than trusting the size in the metadata: a FIFO or a growing file
    // has none that holds.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Box::new(
            Diag {
                source: Some(SourceFile::new(name.clone(), "")),
                ..Diag::error(
                    Code::TooLarge,
                    format!("{what} {name} is larger than 10 MiB and is not read"),
                )
            }
            .help("a plan is a few KiB of YAML or TOML; check that this is the file you meant"),
        ));
    }
    source_from_bytes(name, bytes, what)
}

/// The checks of [`read_source`] on bytes already in memory.
pub fn source_from_bytes(
    name: String,
    mut bytes: Vec<u8>,
    what: &str,
) -> Result<Arc<SourceFile>, Box<Diag>> {
    if bytes.starts_with(BOM) {
        bytes.drain(..BOM.len());
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let utf16 = bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF");
            // The valid prefix locates the bad byte; the rest is not needed for the diagnostic.
            let prefix = String::from_utf8_lossy(&bytes[..valid]).into_owned();
            let source = SourceFile::new(name.clone(), prefix);
            return Err(Box::new(
                Diag::error(
                    Code::Encoding,
                    format!(
                        "{what} {name} is not UTF-8 text (invalid byte 0x{:02X})",
                        bytes[valid]
                    ),
                )
                .at(&source, valid..valid, "not UTF-8")
                .help(if utf16 {
                    "the file looks like UTF-16; save it as UTF-8"
                } else {
                    "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
                }),
            ));
        }
    };
    if let Some(nul) = text.find('\0') {
        let source = SourceFile::new(name.clone(), text);
        return Err(Box::new(
            Diag::error(
                Code::Encoding,
                format!("{what} {name} contains a NUL byte, so it is not a text file"),
            )
            .at(&source, nul..nul + 1, "NUL byte")
            .help("remove the NUL byte; plans are YAML or TOML text"),
        ));
    }
    Ok(SourceFile::new(name, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8]) -> Result<Arc<SourceFile>, Box<Diag>> {
        source_from_bytes("p.yaml".into(), bytes.to_vec(), "plan")
    }

    #[test]
    fn a_bom_is_dropped() {
        assert_eq!(check(b"\xEF\xBB\xBFname: a\n").unwrap().text, "name: a\n");
    }

    #[test]
    fn invalid_utf8_is_located_at_the_bad_byte() {
        let d = check(b"a: 1\nb: caf\xE9\n").unwrap_err();
        assert_eq!(d.code, Code::Encoding);
        assert_eq!((d.location().1, d.location().2), (2, 7));
    }

    #[test]
    fn utf16_gets_its_own_help() {
        let d = check(b"\xFF\xFEn\0a\0").unwrap_err();
        assert!(d.help.unwrap().contains("UTF-16"));
    }

    #[test]
    fn a_nul_byte_is_located() {
        let d = check(b"a: 1\nb: x\0y\n").unwrap_err();
        assert_eq!(d.code, Code::Encoding);
        assert_eq!((d.location().1, d.location().2), (2, 5));
    }

    #[test]
    fn a_file_over_the_limit_is_refused_without_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        let d = read_source(&path, "plan").unwrap_err();
        assert_eq!(d.code, Code::TooLarge);
        assert!(d.message.contains("10 MiB"));
    }
}
