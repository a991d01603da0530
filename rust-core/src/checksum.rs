//! CRC32C (Castagnoli), the checksum of every record, hint file and
//! segment header. Computed with `crc-fast`, which folds 64 bytes at a
//! time with carry-less multiplication (AVX-512 VPCLMULQDQ where the CPU
//! has it, SSE PCLMULQDQ otherwise, a table without either). The values
//! are the standard CRC-32C of the bytes, so files written with any
//! implementation read with any other.

use crc_fast::{CrcAlgorithm, Digest};

/// The standard CRC-32C of `data`.
#[inline]
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(data)
}

/// The CRC-32C of the bytes whose CRC-32C is `crc` followed by `data`:
/// `crc32c_append(crc32c(a), b) == crc32c(a ++ b)`.
#[inline]
pub(crate) fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    // The digest's state is the register before the final inversion, so
    // a finished CRC-32C continues from its inverse.
    let mut digest = Digest::new_with_init_state(CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
    digest.update(data);
    // A CRC-32's register never has bits above the 32nd.
    digest.finalize() as u32
}

#[cfg(test)]
mod tests {
    use super::{crc32c, crc32c_append};
    use proptest::prelude::*;

    #[test]
    fn check_values_of_the_standard() {
        // RFC 3720, appendix B.4, and the catalogue's check value.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46dd_794e);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c_append(0, b""), 0);
    }

    #[test]
    fn every_length_and_split_agrees_with_the_reference() {
        // Lengths around every folding width (16, 64, 128, 256 bytes) and
        // past a page, at every alignment of the first byte.
        let data: Vec<u8> = (0..9000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..64 {
            for len in (0..600).chain([1023, 1024, 1025, 4095, 4096, 4097, 8191]) {
                let bytes = &data[start..start + len];
                let want = ::crc32c::crc32c(bytes);
                assert_eq!(crc32c(bytes), want, "start {start} len {len}");
                let cut = len / 3;
                assert_eq!(
                    crc32c_append(crc32c(&bytes[..cut]), &bytes[cut..]),
                    want,
                    "start {start} len {len} cut {cut}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn appends_in_any_pieces_agree_with_the_reference(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            seed in any::<u32>(),
            cuts in proptest::collection::vec(any::<u16>(), 0..6),
        ) {
            let mut at: Vec<usize> = cuts.iter().map(|&c| usize::from(c) % (data.len() + 1)).collect();
            at.sort_unstable();
            let (mut ours, mut reference, mut from) = (seed, seed, 0);
            for &to in at.iter().chain(std::iter::once(&data.len())) {
                ours = crc32c_append(ours, &data[from..to]);
                reference = ::crc32c::crc32c_append(reference, &data[from..to]);
                from = to;
            }
            prop_assert_eq!(ours, reference);
        }
    }
}
