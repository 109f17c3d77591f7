//! Money as integer fen (分): what a hospital charges is exact, so amounts are never
//! floats. Read from and written as yuan with at most two decimals (`12.50`).

use std::fmt;

/// An amount in fen (1 yuan = 100 fen).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fen(pub i64);

/// Why a text is not an amount of money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("an amount in yuan, such as 12.50 (digits, at most two decimals)")]
    Format,
    #[error("an amount of 0 or more")]
    Negative,
    #[error("an amount below 100,000,000 yuan")]
    TooLarge,
}

/// The largest amount the price list takes: 100 million yuan.
const MAX_FEN: i64 = 10_000_000_000;

impl Fen {
    /// Parses yuan (`12`, `12.5`, `12.50`, `0.05`; a leading `¥` and spaces are
    /// allowed). Negative amounts, more than two decimals and anything else are refused.
    pub fn parse_yuan(text: &str) -> Result<Fen, MoneyError> {
        let t = text.trim().trim_start_matches(['¥', '￥']).trim();
        if t.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (t.contains('.') && !digits(frac)) || frac.len() > 2 {
            return Err(MoneyError::Format);
        }
        if whole.len() > 9 {
            return Err(MoneyError::TooLarge);
        }
        let yuan: i64 = whole.parse().map_err(|_| MoneyError::Format)?;
        let fen: i64 = format!("{frac:0<2}").parse().map_err(|_| MoneyError::Format)?;
        let total = yuan * 100 + fen;
        if total >= MAX_FEN {
            return Err(MoneyError::TooLarge);
        }
        Ok(Fen(total))
    }
}

impl fmt::Display for Fen {
    /// Yuan with two decimals (`12.50`, `-3.00`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_in_and_out_exactly() {
        assert_eq!(Fen::parse_yuan("12.5"), Ok(Fen(1250)));
        assert_eq!(Fen::parse_yuan(" ¥0.05 "), Ok(Fen(5)));
        assert_eq!(Fen::parse_yuan("7"), Ok(Fen(700)));
        assert_eq!(Fen::parse_yuan("0.1").unwrap().0 + Fen::parse_yuan("0.2").unwrap().0, 30, "no float drift");
        assert_eq!(Fen::parse_yuan("1.234"), Err(MoneyError::Format));
        assert_eq!(Fen::parse_yuan("-1"), Err(MoneyError::Negative));
        assert_eq!(Fen::parse_yuan("1e3"), Err(MoneyError::Format));
        assert_eq!(Fen::parse_yuan(""), Err(MoneyError::Format));
        assert_eq!(Fen::parse_yuan("12."), Err(MoneyError::Format));
        assert_eq!(Fen::parse_yuan("100000000"), Err(MoneyError::TooLarge));
        assert_eq!(Fen(1250).to_string(), "12.50");
        assert_eq!(Fen(-300).to_string(), "-3.00");
        assert_eq!(Fen(5).to_string(), "0.05");
    }
}
