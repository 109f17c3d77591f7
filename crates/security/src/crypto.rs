//! Field encryption at rest: AES-256-GCM or SM4-GCM (RFC 8998), a fresh 96-bit
//! nonce per value, the field's place as associated data (a ciphertext moved to
//! another field does not decrypt), and a keyed blind index (HMAC-SHA256) so exact
//! searches keep working on encrypted values.
//!
//! Keys come from a [`KeyProvider`]; [`FileKeys`] reads a key file (or the
//! `LIANYI_KEYS` variable) and re-reads it when it meets a key id it does not know,
//! so a running server follows `lianyi keys rotate` without a restart. A certified
//! module or an HSM can stand behind the same trait.
//!
//! Stored form of an encrypted value: `enc:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, AesGcm};
use base64::Engine;
use hmac::Mac;
use zeroize::Zeroizing;

use crate::secrets::random_hex;

type Sm4Gcm = AesGcm<sm4::Sm4, U12>;

pub const PREFIX: &str = "enc:";
pub const BLIND_PREFIX: &str = "bi:";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CipherAlg {
    Aes256Gcm,
    Sm4Gcm,
}

impl CipherAlg {
    pub fn name(self) -> &'static str {
        match self {
            CipherAlg::Aes256Gcm => "aes-256-gcm",
            CipherAlg::Sm4Gcm => "sm4-gcm",
        }
    }

    pub fn parse(s: &str) -> Option<CipherAlg> {
        match s.to_ascii_lowercase().as_str() {
            "aes-256-gcm" | "aes256gcm" | "aes" => Some(CipherAlg::Aes256Gcm),
            "sm4-gcm" | "sm4gcm" | "sm4" => Some(CipherAlg::Sm4Gcm),
            _ => None,
        }
    }

    pub(crate) fn key_len(self) -> usize {
        match self {
            CipherAlg::Aes256Gcm => 32,
            CipherAlg::Sm4Gcm => 16,
        }
    }
}

/// One data-encryption key.
pub struct DataKey {
    pub id: String,
    pub alg: CipherAlg,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({}, {})", self.id, self.alg.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("no data-encryption key with id '{0}'")]
    UnknownKey(String),
    #[error("a stored value could not be decrypted (tampered, or encrypted for another field)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error(transparent)]
    Random(#[from] crate::secrets::RandomError),
}

/// Where keys come from.
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// The key new values are encrypted with.
    fn current(&self) -> Result<(String, CipherAlg, Zeroizing<Vec<u8>>), CryptoError>;
    /// Any key by id (old ones stay readable after a rotation).
    fn by_id(&self, id: &str) -> Result<(CipherAlg, Zeroizing<Vec<u8>>), CryptoError>;
    /// The blind-index key (HMAC-SHA256); it does not rotate with the data keys.
    fn blind_index_key(&self) -> Zeroizing<Vec<u8>>;
}

/// Keys in a text file, one per line: `data <id> <alg> <hex>` (the last data line is
/// current) and `blind-index <hex>`. `#` starts a comment.
#[derive(Debug)]
pub struct FileKeys {
    path: Option<PathBuf>,
    keys: RwLock<(Vec<DataKey>, Zeroizing<Vec<u8>>)>,
}

fn parse_keys(text: &str, origin: &str) -> Result<(Vec<DataKey>, Zeroizing<Vec<u8>>), CryptoError> {
    let err = |m: String| CryptoError::KeyFile { path: origin.to_string(), message: m };
    let mut data = Vec::new();
    let mut blind = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["data", id, alg, hexkey] => {
                let alg =
                    CipherAlg::parse(alg).ok_or_else(|| err(format!("line {}: unknown cipher '{alg}'", n + 1)))?;
                let key = hex::decode(hexkey).map_err(|_| err(format!("line {}: key is not hex", n + 1)))?;
                if key.len() != alg.key_len() {
                    return Err(err(format!("line {}: {} needs a {}-byte key", n + 1, alg.name(), alg.key_len())));
                }
                data.push(DataKey { id: (*id).to_string(), alg, key: Zeroizing::new(key) });
            }
            ["blind-index", hexkey] => {
                let key = hex::decode(hexkey).map_err(|_| err(format!("line {}: key is not hex", n + 1)))?;
                if key.len() < 32 {
                    return Err(err(format!("line {}: the blind-index key needs 32 bytes", n + 1)));
                }
                blind = Some(Zeroizing::new(key));
            }
            _ => return Err(err(format!("line {}: expected 'data ID ALG HEX' or 'blind-index HEX'", n + 1))),
        }
    }
    let blind = blind.ok_or_else(|| err("no blind-index key".into()))?;
    if data.is_empty() {
        return Err(err("no data key".into()));
    }
    Ok((data, blind))
}

/// A new key line for `alg`.
pub fn new_data_key_line(alg: CipherAlg) -> Result<String, CryptoError> {
    let id = random_hex(4)?;
    Ok(format!("data k{id} {} {}", alg.name(), random_hex(alg.key_len())?))
}

impl FileKeys {
    /// Reads `LIANYI_KEYS` if set, else the key file at `path`, creating it (mode
    /// 0600, a new data key of `alg` and a blind-index key) when missing.
    pub fn open(path: &Path, alg: CipherAlg) -> Result<FileKeys, CryptoError> {
        if let Ok(text) = std::env::var("LIANYI_KEYS")
            && !text.trim().is_empty()
        {
            return Ok(FileKeys { path: None, keys: RwLock::new(parse_keys(&text, "LIANYI_KEYS")?) });
        }
        let origin = path.display().to_string();
        if !path.exists() {
            let text = format!(
                "# Lianyi field-encryption keys. Keep this file secret and backed up apart from the data:\n\
                 # without it encrypted fields cannot be read.\n{}\nblind-index {}\n",
                new_data_key_line(alg)?,
                random_hex(32)?
            );
            write_private(path, &text)
                .map_err(|e| CryptoError::KeyFile { path: origin.clone(), message: e.to_string() })?;
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| CryptoError::KeyFile { path: origin.clone(), message: e.to_string() })?;
        Ok(FileKeys { path: Some(path.to_path_buf()), keys: RwLock::new(parse_keys(&text, &origin)?) })
    }

    /// Appends a new current data key to the file; returns its id.
    pub fn add_key(&self, alg: CipherAlg) -> Result<String, CryptoError> {
        let Some(path) = &self.path else {
            return Err(CryptoError::KeyFile {
                path: "LIANYI_KEYS".into(),
                message: "keys from the environment cannot be rotated here; add a data line and restart".into(),
            });
        };
        let line = new_data_key_line(alg)?;
        let id = line.split_whitespace().nth(1).unwrap_or_default().to_string();
        let origin = path.display().to_string();
        let mut text = std::fs::read_to_string(path)
            .map_err(|e| CryptoError::KeyFile { path: origin.clone(), message: e.to_string() })?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        text.push('\n');
        write_private(path, &text)
            .map_err(|e| CryptoError::KeyFile { path: origin.clone(), message: e.to_string() })?;
        self.reload()?;
        Ok(id)
    }

    fn reload(&self) -> Result<(), CryptoError> {
        let Some(path) = &self.path else { return Ok(()) };
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| CryptoError::KeyFile { path: origin.clone(), message: e.to_string() })?;
        let parsed = parse_keys(&text, &origin)?;
        if let Ok(mut k) = self.keys.write() {
            *k = parsed;
        }
        Ok(())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

impl KeyProvider for FileKeys {
    fn current(&self) -> Result<(String, CipherAlg, Zeroizing<Vec<u8>>), CryptoError> {
        let k = self.keys.read().map_err(|_| CryptoError::UnknownKey("current".into()))?;
        let d = k.0.last().ok_or_else(|| CryptoError::UnknownKey("current".into()))?;
        Ok((d.id.clone(), d.alg, d.key.clone()))
    }

    fn by_id(&self, id: &str) -> Result<(CipherAlg, Zeroizing<Vec<u8>>), CryptoError> {
        let find = |keys: &RwLock<(Vec<DataKey>, Zeroizing<Vec<u8>>)>| {
            keys.read().ok().and_then(|k| k.0.iter().find(|d| d.id == id).map(|d| (d.alg, d.key.clone())))
        };
        if let Some(found) = find(&self.keys) {
            return Ok(found);
        }
        // A key added by `lianyi keys rotate` in another process.
        self.reload()?;
        find(&self.keys).ok_or_else(|| CryptoError::UnknownKey(id.to_string()))
    }

    fn blind_index_key(&self) -> Zeroizing<Vec<u8>> {
        self.keys.read().map(|k| k.1.clone()).unwrap_or_default()
    }
}

/// Encrypts and decrypts field values with a key provider.
#[derive(Debug)]
pub struct FieldCipher<K: KeyProvider + ?Sized> {
    keys: Box<K>,
}

pub(crate) fn seal(alg: CipherAlg, key: &[u8], nonce: &[u8], msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let payload = Payload { msg, aad };
    let n = nonce.try_into().map_err(|_| CryptoError::Encrypt)?;
    match alg {
        CipherAlg::Aes256Gcm => Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::Encrypt)?.encrypt(n, payload),
        CipherAlg::Sm4Gcm => Sm4Gcm::new_from_slice(key).map_err(|_| CryptoError::Encrypt)?.encrypt(n, payload),
    }
    .map_err(|_| CryptoError::Encrypt)
}

pub(crate) fn open(alg: CipherAlg, key: &[u8], nonce: &[u8], ct: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let payload = Payload { msg: ct, aad };
    let n = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
    match alg {
        CipherAlg::Aes256Gcm => Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::Decrypt)?.decrypt(n, payload),
        CipherAlg::Sm4Gcm => Sm4Gcm::new_from_slice(key).map_err(|_| CryptoError::Decrypt)?.decrypt(n, payload),
    }
    .map_err(|_| CryptoError::Decrypt)
}

impl<K: KeyProvider + ?Sized> FieldCipher<K> {
    pub fn new(keys: Box<K>) -> Self {
        FieldCipher { keys }
    }

    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// `enc:<key id>:<base64>`; `aad` names the field (`Patient.identifier`).
    pub fn encrypt(&self, plain: &str, aad: &str) -> Result<String, CryptoError> {
        let (id, alg, key) = self.keys.current()?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Encrypt)?;
        let ct = seal(alg, &key, &nonce, plain.as_bytes(), aad.as_bytes())?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{id}:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(blob)))
    }

    /// The plaintext of an `enc:` value; other values are returned as they are.
    pub fn decrypt(&self, stored: &str, aad: &str) -> Result<String, CryptoError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_string()) };
        let (id, b64) = rest.split_once(':').ok_or(CryptoError::Decrypt)?;
        let blob = base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64).map_err(|_| CryptoError::Decrypt)?;
        if blob.len() < 12 + 16 {
            return Err(CryptoError::Decrypt);
        }
        let (alg, key) = self.keys.by_id(id)?;
        let plain = open(alg, &key, &blob[..12], &blob[12..], aad.as_bytes())?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }

    /// The key id an `enc:` value was made with.
    pub fn key_id_of(stored: &str) -> Option<&str> {
        stored.strip_prefix(PREFIX)?.split_once(':').map(|(id, _)| id)
    }

    /// `bi:<hex HMAC-SHA256(blind key, value)>`: equal values give equal indexes.
    pub fn blind_index(&self, value: &str) -> String {
        let key = self.keys.blind_index_key();
        match <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key) {
            Ok(mut mac) => {
                mac.update(value.as_bytes());
                format!("{BLIND_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
            }
            Err(_) => format!("{BLIND_PREFIX}unavailable"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path, alg: CipherAlg) -> FieldCipher<FileKeys> {
        FieldCipher::new(Box::new(FileKeys::open(&dir.join("keys"), alg).unwrap()))
    }

    #[test]
    fn round_trip_with_both_ciphers_and_fresh_nonces() {
        let dir = std::env::temp_dir().join(format!("lianyi-keys-{}", random_hex(6).unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        for alg in [CipherAlg::Aes256Gcm, CipherAlg::Sm4Gcm] {
            let _ = std::fs::remove_file(dir.join("keys"));
            let c = keys(&dir, alg);
            let a = c.encrypt("11010519491231002X", "Patient.identifier").unwrap();
            let b = c.encrypt("11010519491231002X", "Patient.identifier").unwrap();
            assert_ne!(a, b, "a fresh nonce per value");
            assert!(!a.contains("11010519491231002X"));
            assert_eq!(c.decrypt(&a, "Patient.identifier").unwrap(), "11010519491231002X");
            assert!(matches!(c.decrypt(&a, "Patient.telecom"), Err(CryptoError::Decrypt)), "bound to its field");
            let mut tampered = a.clone();
            tampered.pop();
            tampered.push(if a.ends_with('A') { 'B' } else { 'A' });
            assert!(c.decrypt(&tampered, "Patient.identifier").is_err());
            assert_eq!(c.decrypt("plain", "x").unwrap(), "plain");
            assert_eq!(c.blind_index("13800000000"), c.blind_index("13800000000"));
            assert_ne!(c.blind_index("13800000000"), c.blind_index("13800000001"));
        }
    }

    #[test]
    fn rotation_keeps_old_values_readable_across_processes() {
        let dir = std::env::temp_dir().join(format!("lianyi-keys-{}", random_hex(6).unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = keys(&dir, CipherAlg::Aes256Gcm);
        let old = server.encrypt("13900000000", "Patient.telecom").unwrap();
        // Another process (the CLI) adds a key; the server learns it on first sight.
        let cli = FileKeys::open(&dir.join("keys"), CipherAlg::Sm4Gcm).unwrap();
        let new_id = cli.add_key(CipherAlg::Sm4Gcm).unwrap();
        let cli = FieldCipher::new(Box::new(cli));
        let new = cli.encrypt("13900000000", "Patient.telecom").unwrap();
        assert_eq!(FieldCipher::<FileKeys>::key_id_of(&new), Some(new_id.as_str()));
        assert_eq!(server.decrypt(&new, "Patient.telecom").unwrap(), "13900000000");
        assert_eq!(cli.decrypt(&old, "Patient.telecom").unwrap(), "13900000000");
        assert_eq!(server.blind_index("x"), cli.blind_index("x"), "blind index key is stable");
    }

    #[test]
    fn sm4_gcm_matches_rfc8998() {
        // RFC 8998 Appendix A.1 (SM4-GCM) test vector.
        let key = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let iv = hex::decode("00001234567800000000ABCD").unwrap();
        let aad = hex::decode("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2").unwrap();
        let pt = hex::decode(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDDEEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        )
        .unwrap();
        let out = seal(CipherAlg::Sm4Gcm, &key, &iv, &pt, &aad).unwrap();
        let (ct, tag) = out.split_at(pt.len());
        assert_eq!(
            hex::encode_upper(ct),
            "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        );
        assert_eq!(hex::encode_upper(tag), "83DE3541E4C2B58177E065A9BF7B62EC");
    }
}
