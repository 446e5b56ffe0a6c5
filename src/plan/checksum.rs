//! Checksum files: what a `checksum` URL in `image_info` points at (a bare
//! digest, `sha256sum` lines or BSD `ALGO (name) = digest` lines), read as
//! ironic-python-agent reads them.

use super::{algo_of_digest_len, err, hex_digest, Checksum, Error, HashAlgo};
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

/// Reads a checksum file the way ironic-python-agent does: a single bare
/// hash, or lines `<hash> [*]<name>` / `<ALGO> (<name>) = <hash>` matched by
/// the basename of the image URL; `#` lines are ignored. The algorithm is
/// `algo` if given, else inferred from the digest's length.
pub fn parse_checksum_file(
    text: &str,
    image_url: &str,
    algo: Option<HashAlgo>,
) -> Result<Checksum, Error> {
    let basename = image_url
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let digest = if lines.len() == 1 && !lines[0].contains(char::is_whitespace) {
        lines[0].to_string()
    } else {
        lines
            .iter()
            .find_map(|l| {
                if let Some((lhs, hash)) = l.split_once(") = ") {
                    let name = lhs.split_once(" (")?.1;
                    return (name == basename).then(|| hash.trim().to_string());
                }
                let (hash, name) = l.split_once(char::is_whitespace)?;
                (name.trim().trim_start_matches('*') == basename).then(|| hash.to_string())
            })
            .ok_or_else(|| {
                err(
                    "checksum",
                    format!("the checksum file has no line for '{basename}'"),
                )
            })?
    };
    let n = digest.len();
    let algo = algo.or_else(|| algo_of_digest_len(n)).ok_or_else(|| {
        err(
            "checksum",
            format!("a {n}-character value in the checksum file is not a digest"),
        )
    })?;
    hex_digest("checksum", algo, &digest)
}

#[cfg(test)]
mod checksum_file_tests {
    use super::*;

    const SUM: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn forms_ironic_reads() {
        let url = "http://h/images/root.img?x=1";
        let want = Checksum::Value(HashAlgo::Sha256, SUM.into());
        assert_eq!(
            parse_checksum_file(&format!("{SUM}\n"), url, None),
            Ok(want.clone())
        );
        let listing = format!("# sums\n{} other.img\n{SUM} *root.img\n", "0".repeat(64));
        assert_eq!(parse_checksum_file(&listing, url, None), Ok(want.clone()));
        let bsd = format!(
            "SHA256 (other.img) = {}\nSHA256 (root.img) = {SUM}\n",
            "1".repeat(64)
        );
        assert_eq!(
            parse_checksum_file(&bsd, url, Some(HashAlgo::Sha256)),
            Ok(want)
        );
        assert!(parse_checksum_file(&listing, "http://h/missing.img", None)
            .unwrap_err()
            .to_string()
            .contains("no line for 'missing.img'"));
        assert!(parse_checksum_file("abc", url, None).is_err());
    }
}
