//! Passwords: Argon2id hashes (PHC strings, self-salting) and the password policy:
//! at least 10 characters, not the user name, not a commonly used password.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

pub const MIN_LENGTH: usize = 10;

/// Widely used passwords of policy length, from public breach-frequency lists,
/// including the common Chinese patterns. Compared case-insensitively.
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789a",
    "a123456789",
    "qwertyuiop",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "password123",
    "password1234",
    "iloveyou123",
    "qwerty12345",
    "abcdefghij",
    "abc1234567",
    "0123456789",
    "9876543210",
    "1111111111",
    "0000000000",
    "woaini1314",
    "woaini520",
    "5201314520",
    "1314520520",
    "qq123456789",
    "zxcvbnm123",
    "asdfghjkl1",
    "asdfghjkl;",
    "qazwsxedcr",
    "1234qwerasdf",
    "admin12345",
    "administrator",
    "adminadmin",
    "passw0rd123",
    "p@ssw0rd123",
    "welcome123",
    "changeme123",
    "letmein123",
    "sunshine123",
    "football123",
    "baseball123",
    "monkey12345",
    "dragon12345",
    "princess123",
    "qwerty123456",
    "123456789abc",
    "abc123456789",
    "1234567890a",
    "aaaaaaaaaa",
    "123123123123",
    "1234512345",
    "a1b2c3d4e5",
    "huawei12345",
    "lianyi12345",
    "hospital123",
    "hospital2024",
    "hospital2025",
    "hospital2026",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("the password must have at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("the password must not contain the user name")]
    ContainsUsername,
    #[error("this password is too common; choose another")]
    Common,
}

impl PolicyError {
    /// Message key for the web pages (i18n).
    pub fn key(&self) -> &'static str {
        match self {
            PolicyError::TooShort => "password-too-short",
            PolicyError::ContainsUsername => "password-contains-username",
            PolicyError::Common => "password-too-common",
        }
    }
}

pub fn check_policy(username: &str, password: &str) -> Result<(), PolicyError> {
    if password.chars().count() < MIN_LENGTH {
        return Err(PolicyError::TooShort);
    }
    let lower = password.to_lowercase();
    if !username.is_empty() && lower.contains(&username.to_lowercase()) {
        return Err(PolicyError::ContainsUsername);
    }
    let first = lower.chars().next();
    if COMMON.iter().any(|c| *c == lower) || lower.chars().all(|c| Some(c) == first) {
        return Err(PolicyError::Common);
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// An Argon2id PHC string with a fresh random salt.
pub fn hash(password: &str) -> Result<String, HashError> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches a stored PHC string (false for a malformed one).
pub fn verify(password: &str, stored: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), stored).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_the_rule() {
        assert_eq!(check_policy("zhang", "short"), Err(PolicyError::TooShort));
        assert_eq!(check_policy("zhangwei", "ZhangWei2024!"), Err(PolicyError::ContainsUsername));
        assert_eq!(check_policy("li", "Woaini1314"), Err(PolicyError::Common));
        assert_eq!(check_policy("li", "zzzzzzzzzzzz"), Err(PolicyError::Common));
        assert_eq!(check_policy("li", "correct horse battery"), Ok(()));
    }

    #[test]
    fn argon2id_round_trip() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("x", "not a hash"));
        assert_ne!(h, hash("correct horse battery").unwrap(), "salted");
    }
}
