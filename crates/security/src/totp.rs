//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits),
//! the otpauth:// URI authenticator apps scan, and base32 (RFC 4648).
//! Replay blocking is the caller's job: it must accept each step at most once.

use hmac::{KeyInit, Mac};

pub const STEP_SECONDS: i64 = 30;
pub const DIGITS: u32 = 6;

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(B32[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(B32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in s.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
        let v = B32.iter().position(|&b| b as char == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// HOTP (RFC 4226) value of `counter`.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> Option<u32> {
    let mut mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[digest.len() - 1] & 0x0f) as usize;
    let bin = (u32::from(digest[offset]) & 0x7f) << 24
        | u32::from(digest[offset + 1]) << 16
        | u32::from(digest[offset + 2]) << 8
        | u32::from(digest[offset + 3]);
    Some(bin % 10u32.pow(digits))
}

/// The time step of an instant (epoch ms).
pub fn step_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000) / STEP_SECONDS
}

/// The step (within ±1 of now, for clock drift) whose code equals `code`.
pub fn matching_step(secret: &[u8], code: &str, now_ms: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let wanted: u32 = code.parse().ok()?;
    let now = step_of(now_ms);
    [now, now - 1, now + 1].into_iter().find(|s| *s >= 0 && hotp(secret, *s as u64, DIGITS) == Some(wanted))
}

/// The current code (for tests and enrolment checks).
pub fn code_at(secret: &[u8], now_ms: i64) -> String {
    format!("{:0width$}", hotp(secret, step_of(now_ms) as u64, DIGITS).unwrap_or(0), width = DIGITS as usize)
}

/// `otpauth://totp/Issuer:account?secret=...&issuer=...` for authenticator apps.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| form_urlencoded_component(s);
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        base32_encode(secret),
        enc(issuer)
    )
}

fn form_urlencoded_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        let secret = b"12345678901234567890";
        for (t, want) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(hotp(secret, (t / 30) as u64, 8), Some(want), "t={t}");
        }
    }

    #[test]
    fn base32_round_trip_and_rfc4648() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        let secret = [7u8; 20];
        assert_eq!(base32_decode(&base32_encode(&secret)).unwrap(), secret);
    }

    #[test]
    fn accepts_adjacent_steps_only() {
        let secret = b"12345678901234567890";
        let now = 1_700_000_000_000;
        let code = code_at(secret, now);
        assert_eq!(matching_step(secret, &code, now), Some(step_of(now)));
        assert_eq!(matching_step(secret, &code, now + 30_000), Some(step_of(now)));
        assert_eq!(matching_step(secret, &code, now + 95_000), None);
        assert_eq!(matching_step(secret, "12345", now), None);
        assert!(
            otpauth_uri("Lianyi 联医", "dr.li", secret)
                .starts_with("otpauth://totp/Lianyi%20%E8%81%94%E5%8C%BB:dr.li?secret=")
        );
    }
}
