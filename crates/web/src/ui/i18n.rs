//! The two languages of every page, zh-CN (default) and en. Texts live with their
//! area in `locales/<area>/{zh-CN,en}.txt` (`key = text`), compiled in; unit tests
//! keep each area's two files key-for-key identical and every key in one area only.
//! Texts that come with clinical data in both languages (a catalogue's drug name, a
//! safety finding) are chosen here too ([`Tr::pick`]), so no page compares language
//! codes. Deliberately small: the pages need lookups, not plurals.

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

/// Each area's texts: (area, zh-CN, en).
const AREAS: &[(&str, &str, &str)] = &[
    ("ui", include_str!("../../locales/ui/zh-CN.txt"), include_str!("../../locales/ui/en.txt")),
    ("account", include_str!("../../locales/account/zh-CN.txt"), include_str!("../../locales/account/en.txt")),
    ("audit", include_str!("../../locales/audit/zh-CN.txt"), include_str!("../../locales/audit/en.txt")),
    ("accounts", include_str!("../../locales/accounts/zh-CN.txt"), include_str!("../../locales/accounts/en.txt")),
    ("clinic", include_str!("../../locales/clinic/zh-CN.txt"), include_str!("../../locales/clinic/en.txt")),
    ("pharmacy", include_str!("../../locales/pharmacy/zh-CN.txt"), include_str!("../../locales/pharmacy/en.txt")),
    (
        "integration",
        include_str!("../../locales/integration/zh-CN.txt"),
        include_str!("../../locales/integration/en.txt"),
    ),
    ("billing", include_str!("../../locales/billing/zh-CN.txt"), include_str!("../../locales/billing/en.txt")),
    ("ops", include_str!("../../locales/ops/zh-CN.txt"), include_str!("../../locales/ops/en.txt")),
    ("imaging", include_str!("../../locales/imaging/zh-CN.txt"), include_str!("../../locales/imaging/en.txt")),
    ("manage", include_str!("../../locales/manage/zh-CN.txt"), include_str!("../../locales/manage/en.txt")),
    ("portal", include_str!("../../locales/portal/zh-CN.txt"), include_str!("../../locales/portal/en.txt")),
    ("ward", include_str!("../../locales/ward/zh-CN.txt"), include_str!("../../locales/ward/en.txt")),
];

fn entries(text: &'static str) -> impl Iterator<Item = (&'static str, &'static str)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(" = ").map(|(k, v)| (k.trim(), v.trim())))
}

fn table(pick: fn(&(&'static str, &'static str, &'static str)) -> &'static str) -> HashMap<&'static str, &'static str> {
    AREAS.iter().flat_map(|a| entries(pick(a))).collect()
}

static ZH: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| table(|a| a.1));
static EN: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| table(|a| a.2));

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
        self.try_get(key).unwrap_or(key)
    }

    /// The name of code `code` of an enumeration (`named("encounter-status",
    /// "finished")` reads `encounter-status-finished`); the code itself when the
    /// enumeration has no text for it (a code added later, another system's code).
    pub fn named(&self, enumeration: &str, code: &str) -> String {
        self.try_get(&format!("{enumeration}-{code}")).map_or_else(|| code.to_string(), str::to_string)
    }

    /// The text for `key` if there is one (codes that may have no text: an audit
    /// action added later shows as its code).
    pub fn try_get(&self, key: &str) -> Option<&'static str> {
        let table: &HashMap<&'static str, &'static str> = match self.lang {
            Lang::ZhCn => &ZH,
            Lang::En => &EN,
        };
        table.get(key).copied()
    }

    /// The text for `key` with `{0}` replaced by `arg`.
    pub fn fmt(&self, key: &str, arg: &str) -> String {
        self.get(key).replace("{0}", arg)
    }

    pub fn code(&self) -> &'static str {
        self.lang.code()
    }

    /// The platform's version, for the footer.
    pub fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    /// Of a text that comes in both languages with its data, the page's.
    pub fn pick<T>(&self, zh: T, en: T) -> T {
        match self.lang {
            Lang::ZhCn => zh,
            Lang::En => en,
        }
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
    fn each_area_has_the_same_keys_in_both_languages_and_owns_them() {
        let mut owner: HashMap<&str, &str> = HashMap::new();
        for (area, zh, en) in AREAS {
            let mut zh: Vec<&str> = entries(zh).map(|(k, _)| k).collect();
            let mut en: Vec<&str> = entries(en).map(|(k, _)| k).collect();
            zh.sort_unstable();
            en.sort_unstable();
            assert_eq!(zh, en, "locales/{area}: the two languages differ");
            assert!(!zh.is_empty(), "locales/{area} is empty");
            for k in zh {
                if let Some(other) = owner.insert(k, area) {
                    panic!("key {k} is in locales/{other} and locales/{area}");
                }
            }
        }
        assert_eq!(ZH.len(), EN.len());
        assert!(ZH.len() > 40);
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
