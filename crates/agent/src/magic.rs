//! Magic numbers: the formats a file's first bytes announce, and the ones
//! its extension promises. A pharmacy's documents are PDFs, office files
//! (ZIP containers), images, spreadsheets exported as CSV, and SQLite
//! databases; encryption destroys their headers (or, header-only, destroys
//! only the headers).

use serde::Serialize;

/// A known file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Magic {
    /// `%PDF-`
    Pdf,
    /// PNG signature.
    Png,
    /// JPEG SOI marker.
    Jpeg,
    /// `GIF87a` / `GIF89a`.
    Gif,
    /// ZIP local header (also docx, xlsx, pptx, odt, jar).
    Zip,
    /// gzip.
    Gzip,
    /// Zstandard frame.
    Zstd,
    /// xz.
    Xz,
    /// bzip2.
    Bzip2,
    /// 7-Zip.
    SevenZip,
    /// `SQLite format 3`.
    Sqlite,
    /// Legacy Office (OLE compound file: doc, xls).
    Ole,
    /// TIFF (either byte order).
    Tiff,
    /// BMP.
    Bmp,
    /// RIFF (WAV, AVI, WebP).
    Riff,
    /// ELF executable.
    Elf,
    /// An age-encrypted file (`age-encryption.org/v1`).
    Age,
    /// `openssl enc` with salt (`Salted__`).
    OpensslSalted,
}

const TABLE: &[(&[u8], Magic)] = &[
    (b"%PDF-", Magic::Pdf),
    (b"\x89PNG\r\n\x1a\n", Magic::Png),
    (b"\xff\xd8\xff", Magic::Jpeg),
    (b"GIF87a", Magic::Gif),
    (b"GIF89a", Magic::Gif),
    (b"PK\x03\x04", Magic::Zip),
    (b"PK\x05\x06", Magic::Zip),
    (b"\x1f\x8b", Magic::Gzip),
    (b"\x28\xb5\x2f\xfd", Magic::Zstd),
    (b"\xfd7zXZ\x00", Magic::Xz),
    (b"BZh", Magic::Bzip2),
    (b"7z\xbc\xaf\x27\x1c", Magic::SevenZip),
    (b"SQLite format 3\x00", Magic::Sqlite),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", Magic::Ole),
    (b"II*\x00", Magic::Tiff),
    (b"MM\x00*", Magic::Tiff),
    (b"BM", Magic::Bmp),
    (b"RIFF", Magic::Riff),
    (b"\x7fELF", Magic::Elf),
    (b"age-encryption.org/v1", Magic::Age),
    (b"Salted__", Magic::OpensslSalted),
];

/// The format `head` (a file's first bytes) announces.
pub fn sniff(head: &[u8]) -> Option<Magic> {
    TABLE
        .iter()
        .find(|(sig, _)| head.starts_with(sig))
        .map(|&(_, m)| m)
}

/// The format a file extension (lower case, without the dot) promises, for
/// the extensions whose files always start with a magic number.
pub fn expected(ext: &str) -> Option<Magic> {
    Some(match ext {
        "pdf" => Magic::Pdf,
        "png" => Magic::Png,
        "jpg" | "jpeg" => Magic::Jpeg,
        "gif" => Magic::Gif,
        "zip" | "docx" | "xlsx" | "pptx" | "odt" | "ods" | "odp" | "jar" | "epub" => Magic::Zip,
        "gz" | "tgz" => Magic::Gzip,
        "zst" => Magic::Zstd,
        "xz" => Magic::Xz,
        "bz2" => Magic::Bzip2,
        "7z" => Magic::SevenZip,
        "sqlite" | "sqlite3" | "db3" => Magic::Sqlite,
        "doc" | "xls" | "ppt" | "msg" => Magic::Ole,
        "tif" | "tiff" => Magic::Tiff,
        "bmp" => Magic::Bmp,
        "wav" | "avi" | "webp" => Magic::Riff,
        "age" => Magic::Age,
        _ => return None,
    })
}

impl Magic {
    /// Formats whose body is compressed: high entropy is their normal state,
    /// and their header proves a tool wrote them deliberately. (Encrypted
    /// containers — age, openssl — are not in this list: that an encryption
    /// tool wrote them is the point, and only the allow-list exempts it.)
    pub fn is_compressed_container(self) -> bool {
        matches!(
            self,
            Magic::Png
                | Magic::Jpeg
                | Magic::Gif
                | Magic::Zip
                | Magic::Gzip
                | Magic::Zstd
                | Magic::Xz
                | Magic::Bzip2
                | Magic::SevenZip
                | Magic::Riff
        )
    }
}

/// Lower-cased extension of a file name (`None` without one).
pub fn extension(name: &std::path::Path) -> Option<String> {
    name.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_table_and_nothing_else() {
        assert_eq!(sniff(b"%PDF-1.7\n"), Some(Magic::Pdf));
        assert_eq!(sniff(b"PK\x03\x04\x14\x00"), Some(Magic::Zip));
        assert_eq!(sniff(b"SQLite format 3\x00...."), Some(Magic::Sqlite));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), Some(Magic::Jpeg));
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(sniff(b""), None);
        for (sig, m) in TABLE {
            assert_eq!(sniff(sig), Some(*m));
        }
    }

    #[test]
    fn extensions_promise_formats() {
        assert_eq!(expected("docx"), Some(Magic::Zip));
        assert_eq!(expected("csv"), None);
        assert_eq!(
            extension(std::path::Path::new("/a/B.PDF")).as_deref(),
            Some("pdf")
        );
        assert_eq!(extension(std::path::Path::new("/a/README")), None);
    }
}
