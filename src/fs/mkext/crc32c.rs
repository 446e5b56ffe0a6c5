//! CRC-32C as ext4 and jbd2 chain it: the raw register, no final
//! inversion, so one checksum's result seeds the next (`ext4_chksum`).

const POLY: u32 = 0x82f6_3b78;

const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Continues the register `crc` over `data`.
pub fn update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_check_value() {
        // CRC-32C("123456789") = 0xe3069283 with init and xorout ~0.
        assert_eq!(!update(!0, b"123456789"), 0xe306_9283);
    }

    #[test]
    fn chains() {
        let whole = update(!0, b"hello world");
        assert_eq!(update(update(!0, b"hello "), b"world"), whole);
    }
}
