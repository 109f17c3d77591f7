//! Hash functions for the audit chain: SHA-256 (default) or SM3 (GB/T 32905), chosen
//! by configuration. Each record names its algorithm, so a chain that switched
//! algorithm part-way still verifies.

use lianyi_store::audit::ChainHasher;
use sha2::Digest;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChainAlg {
    #[default]
    Sha256,
    Sm3,
}

static SHA256: ChainAlg = ChainAlg::Sha256;
static SM3: ChainAlg = ChainAlg::Sm3;

impl ChainAlg {
    /// The hasher as a `'static` reference (for work queued to other tasks).
    pub fn as_static(self) -> &'static dyn ChainHasher {
        match self {
            ChainAlg::Sha256 => &SHA256,
            ChainAlg::Sm3 => &SM3,
        }
    }

    /// `sha256` or `sm3`.
    pub fn parse(name: &str) -> Option<ChainAlg> {
        match name.to_ascii_lowercase().as_str() {
            "sha256" | "sha-256" => Some(ChainAlg::Sha256),
            "sm3" => Some(ChainAlg::Sm3),
            _ => None,
        }
    }
}

impl ChainHasher for ChainAlg {
    fn name(&self) -> &'static str {
        match self {
            ChainAlg::Sha256 => "sha256",
            ChainAlg::Sm3 => "sm3",
        }
    }

    fn hex_digest(&self, data: &[u8]) -> String {
        match self {
            ChainAlg::Sha256 => hex::encode(sha2::Sha256::digest(data)),
            ChainAlg::Sm3 => hex::encode(sm3::Sm3::digest(data)),
        }
    }

    fn for_name(&self, name: &str) -> Option<&dyn ChainHasher> {
        match name {
            "sha256" => Some(&SHA256),
            "sm3" => Some(&SM3),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // FIPS 180-2 and GB/T 32905-2016 example "abc".
        assert_eq!(
            ChainAlg::Sha256.hex_digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            ChainAlg::Sm3.hex_digest(b"abc"),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }
}
