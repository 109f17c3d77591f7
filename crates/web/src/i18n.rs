//! The two languages of every page, zh-CN (default) and en. Texts live in
//! `locales/*.txt` (`key = text`), compiled in; a unit test keeps the two files
//! key-for-key identical. Deliberately small: the pages need lookups, not plurals.

use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    ZhCn,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        if s.starts_with("zh") {
            Some(Lang::ZhCn)
        } else if s.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The first supported language of an `Accept-Language` header.
    pub fn from_accept(header: &str) -> Option<Lang> {
        header.split(',').find_map(|part| Lang::parse(part.split(';').next().unwrap_or_default()))
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::ZhCn => Lang::En,
            Lang::En => Lang::ZhCn,
        }
    }
}

fn parse(text: &'static str) -> HashMap<&'static str, &'static str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(" = ").map(|(k, v)| (k.trim(), v.trim())))
        .collect()
}

static ZH: LazyLock<HashMap<&'static str, &'static str>> =
    LazyLock::new(|| parse(include_str!("../locales/zh-CN.txt")));
static EN: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| parse(include_str!("../locales/en.txt")));

/// Texts of one language, handed to templates as `t`.
#[derive(Clone, Copy, Debug)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    pub fn new(lang: Lang) -> Tr {
        Tr { lang }
    }

    /// The text for `key`; the key itself if missing (a test prevents that).
    pub fn get<'a>(&self, key: &'a str) -> &'a str {
        let table: &HashMap<&'static str, &'static str> = match self.lang {
            Lang::ZhCn => &ZH,
            Lang::En => &EN,
        };
        table.get(key).copied().unwrap_or(key)
    }

    /// The text for `key` with `{0}` replaced by `arg`.
    pub fn fmt(&self, key: &str, arg: &str) -> String {
        self.get(key).replace("{0}", arg)
    }

    pub fn code(&self) -> &'static str {
        self.lang.code()
    }

    /// The other language's code and name, for the switch link.
    pub fn switch_code(&self) -> &'static str {
        self.lang.other().code()
    }

    pub fn switch_name(&self) -> &'static str {
        Tr::new(self.lang.other()).get("lang-name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_the_same_keys() {
        let mut zh: Vec<&str> = ZH.keys().copied().collect();
        let mut en: Vec<&str> = EN.keys().copied().collect();
        zh.sort_unstable();
        en.sort_unstable();
        assert_eq!(zh, en);
        assert!(zh.len() > 40);
    }

    #[test]
    fn lookups_and_negotiation() {
        assert_eq!(Tr::new(Lang::ZhCn).get("login-title"), "登录");
        assert_eq!(Tr::new(Lang::En).get("login-title"), "Log in");
        assert_eq!(Lang::from_accept("en-GB,en;q=0.9,zh;q=0.5"), Some(Lang::En));
        assert_eq!(Lang::from_accept("fr-FR, zh-TW;q=0.8"), Some(Lang::ZhCn));
        assert_eq!(Lang::from_accept("fr"), None);
    }
}
