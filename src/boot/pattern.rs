//! The regular expressions `clean_uefi_nvram`'s `match_patterns` are
//! written in: ironic-python-agent compiles them with Python's `re`
//! (IGNORECASE) and searches each entry's device path as `efibootmgr -v`
//! prints it. rivet takes the subset such patterns use and refuses the
//! rest by name: literals (ASCII case ignored), `.`, classes `[a-z]`
//! `[^…]`, `\d` `\w` `\s` and escaped punctuation (`\(` `\.` `\\`), the
//! quantifiers `*` `+` `?` (greedy), the anchors `^` `$`, and `|` between
//! whole alternatives. Groups, lazy quantifiers, `{m,n}` and
//! backreferences are refused. Matching backtracks within a step budget.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

const MAX_PATTERN: usize = 512;
/// Backtracking steps one search may take.
const MAX_STEPS: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Any,
    Byte(u8),
    /// Ranges (inclusive, lowercase folded); negated.
    Class(Vec<(u8, u8)>, bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    atom: Atom,
    min: usize,
    max: usize, // usize::MAX: unbounded
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Branch {
    start: bool,
    end: bool,
    pieces: Vec<Piece>,
}

/// A compiled pattern: its alternatives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    branches: Vec<Branch>,
}

fn lower(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

fn class_escape(c: u8) -> Option<(Vec<(u8, u8)>, bool)> {
    let digits = alloc::vec![(b'0', b'9')];
    let word = alloc::vec![(b'0', b'9'), (b'a', b'z'), (b'_', b'_')];
    let space = alloc::vec![(b' ', b' '), (b'\t', b'\r')];
    Some(match c {
        b'd' => (digits, false),
        b'D' => (digits, true),
        b'w' => (word, false),
        b'W' => (word, true),
        b's' => (space, false),
        b'S' => (space, true),
        _ => return None,
    })
}

impl Pattern {
    pub fn compile(text: &str) -> Result<Pattern, String> {
        if text.len() > MAX_PATTERN {
            return Err(format!(
                "a pattern of {} bytes (at most {MAX_PATTERN})",
                text.len()
            ));
        }
        let bad = |what: &str| {
            Err(format!(
                "'{text}': {what} is not supported by rivet's pattern subset"
            ))
        };
        let mut branches = Vec::new();
        for alt in text.split('|') {
            let b = alt.as_bytes();
            let mut i = 0;
            let mut branch = Branch {
                start: false,
                end: false,
                pieces: Vec::new(),
            };
            if b.first() == Some(&b'^') {
                branch.start = true;
                i = 1;
            }
            while i < b.len() {
                let c = b[i];
                let atom = match c {
                    b'$' if i + 1 == b.len() => {
                        branch.end = true;
                        i += 1;
                        continue;
                    }
                    b'.' => Atom::Any,
                    b'\\' => {
                        let Some(&e) = b.get(i + 1) else {
                            return bad("a trailing backslash");
                        };
                        i += 1;
                        match class_escape(e) {
                            Some((r, neg)) => Atom::Class(r, neg),
                            None if e.is_ascii_punctuation() => Atom::Byte(lower(e)),
                            None => return bad(&format!("the escape \\{}", e as char)),
                        }
                    }
                    b'[' => {
                        let Some((atom, next)) = parse_class(b, i) else {
                            return bad("an unclosed or empty [class]");
                        };
                        i = next - 1;
                        atom
                    }
                    b'(' | b')' => return bad("a group"),
                    b'{' => return bad("a {m,n} quantifier"),
                    b'*' | b'+' | b'?' => return bad("a quantifier with nothing before it"),
                    b'^' | b'$' => return bad("an anchor inside a pattern"),
                    _ => Atom::Byte(lower(c)),
                };
                i += 1;
                let (min, max) = match b.get(i) {
                    Some(b'*') => (0, usize::MAX),
                    Some(b'+') => (1, usize::MAX),
                    Some(b'?') => (0, 1),
                    _ => (1, 1),
                };
                if min != 1 || max != 1 {
                    i += 1;
                    if matches!(b.get(i), Some(b'?' | b'*' | b'+')) {
                        return bad("a lazy or stacked quantifier");
                    }
                }
                branch.pieces.push(Piece { atom, min, max });
            }
            branches.push(branch);
        }
        Ok(Pattern { branches })
    }

    /// Whether the pattern matches anywhere in `text` (Python's
    /// `re.search` with IGNORECASE); `Err` when the search would take more
    /// than its step budget.
    pub fn search(&self, text: &str) -> Result<bool, String> {
        let t = text.as_bytes();
        let mut steps = 0usize;
        for br in &self.branches {
            let starts: Vec<usize> = if br.start {
                alloc::vec![0]
            } else {
                (0..=t.len()).collect()
            };
            for s in starts {
                if matches_at(br, 0, t, s, &mut steps)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

fn parse_class(b: &[u8], open: usize) -> Option<(Atom, usize)> {
    let mut i = open + 1;
    let neg = b.get(i) == Some(&b'^');
    if neg {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < b.len() && (b[i] != b']' || first) {
        first = false;
        let mut c = b[i];
        if c == b'\\' {
            i += 1;
            let e = *b.get(i)?;
            if let Some((r, false)) = class_escape(e) {
                ranges.extend(r);
                i += 1;
                continue;
            }
            c = e;
        }
        if b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_some_and(|&n| n != b']') {
            let hi = b[i + 2];
            ranges.push((lower(c).min(lower(hi)), lower(c).max(lower(hi))));
            i += 3;
        } else {
            ranges.push((lower(c), lower(c)));
            i += 1;
        }
    }
    (i < b.len() && !ranges.is_empty()).then_some((Atom::Class(ranges, neg), i + 1))
}

fn atom_matches(a: &Atom, c: u8) -> bool {
    let c = lower(c);
    match a {
        Atom::Any => c != b'\n',
        Atom::Byte(b) => *b == c,
        Atom::Class(ranges, neg) => ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) != *neg,
    }
}

fn matches_at(
    br: &Branch,
    p: usize,
    t: &[u8],
    at: usize,
    steps: &mut usize,
) -> Result<bool, String> {
    *steps += 1;
    if *steps > MAX_STEPS {
        return Err(format!("the search took more than {MAX_STEPS} steps"));
    }
    let Some(piece) = br.pieces.get(p) else {
        return Ok(!br.end || at == t.len());
    };
    // Greedy: take as many as match, then give back one at a time.
    let mut n = 0;
    while n < piece.max && at + n < t.len() && atom_matches(&piece.atom, t[at + n]) {
        n += 1;
    }
    loop {
        if n < piece.min {
            return Ok(false);
        }
        if matches_at(br, p + 1, t, at + n, steps)? {
            return Ok(true);
        }
        if n == 0 {
            return Ok(false);
        }
        n -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(p: &str, t: &str) -> bool {
        Pattern::compile(p).unwrap().search(t).unwrap()
    }

    #[test]
    fn ironic_python_agents_default_patterns_as_python_re_matches_them() {
        let hd = "HD(1,GPT,2f0c6b8e-1a2b-4c3d-9e8f-0a1b2c3d4e5f,0x800,0x100000)/File(\\EFI\\debian\\shimx64.efi)";
        let net = "PciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)";
        let cd = "PciRoot(0x0)/Pci(0x1,0x1)/Ata(1,0,0)";
        assert!(search(r"^HD\(", hd));
        assert!(search(r"shim.*\.efi", hd));
        assert!(search(
            r"grub.*\.efi",
            "HD(1,MBR,0x5a,0x800,0x1000)/File(\\EFI\\BOOT\\GRUBX64.EFI)"
        ));
        for p in [r"^HD\(", r"shim.*\.efi", r"grub.*\.efi"] {
            assert!(!search(p, net) && !search(p, cd), "{p}");
        }
        assert!(
            !search(r"^HD\(", "VenHw(…)/HD(1,GPT,…)"),
            "anchored at the start"
        );
        assert!(search(r"mac\([0-9a-f]+,1\)$", net));
        assert!(search(r"ata|scsi", cd));
        assert!(search(r"file\(\\efi\\\w+\\shimx64\.efi\)", hd));
        assert!(search(r"[^a-z]0x800", hd));
        assert!(search("", net));
    }

    #[test]
    fn what_the_subset_lacks_is_refused_by_name() {
        for (p, what) in [
            (r"(shim|grub)\.efi", "a group"),
            (r"a{2,3}", "{m,n}"),
            (r"shim.*?\.efi", "lazy"),
            (r"*x", "nothing before it"),
            (r"[abc", "unclosed"),
            (r"a\q", "\\q"),
        ] {
            let e = Pattern::compile(p).unwrap_err();
            assert!(e.contains(what), "{p}: {e}");
        }
        // A pathological search ends on the budget, not in a hang.
        let p = Pattern::compile("a*a*a*a*a*a*a*a*b").unwrap();
        let e = p.search(&"a".repeat(200)).unwrap_err();
        assert!(e.contains("steps"), "{e}");
    }
}
