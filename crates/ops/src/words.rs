//! Words for full-text search in Chinese and English, cut the same way for what is
//! stored and for what is asked. Chinese has no spaces, so jieba (with its default
//! dictionary, in search mode) cuts it into dictionary words and the shorter words
//! inside them — 打印机 gives 打印 and 打印机, 高血压 gives 血压 and 高血压 — so a
//! two-character word is a whole token the databases' own word indexes find (a
//! trigram index cannot find a word shorter than three characters). HMM guessing of
//! unknown words is off: a word the dictionary lacks becomes single characters on
//! both sides, which still match, where a guess could differ between a sentence and
//! the same word typed alone. Latin words are lowercased, not stemmed.

use std::sync::LazyLock;

use jieba_rs::Jieba;

/// Loading the dictionary takes a moment: once per process, on first use (or
/// [`warm_up`]).
static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Common words that say nothing about an article, left out of questions.
const STOP: &[&str] = &[
    "的", "了", "是", "在", "和", "与", "及", "或", "也", "都", "就", "有", "我", "被", "把", "a", "an", "the", "of",
    "to", "in", "on", "at", "and", "or", "for", "is", "are", "be", "it", "with", "not", "no",
];

/// At most this many words of a question are searched for.
const MAX_QUERY_WORDS: usize = 16;

/// Loads the dictionary now (on a thread of its own), so the first search does not wait.
pub fn warm_up() {
    std::thread::spawn(|| LazyLock::force(&JIEBA));
}

/// The words of `text`, in order with repeats: each jieba token split at anything
/// but a letter or a digit, lowercased.
fn cut(text: &str) -> impl Iterator<Item = String> + '_ {
    JIEBA
        .cut_for_search(text, false)
        .into_iter()
        .flat_map(|t| t.word.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect::<Vec<_>>())
        .map(str::to_lowercase)
}

/// What the store indexes for `text`: its words joined by spaces.
pub fn index_text(text: &str) -> String {
    cut(text).collect::<Vec<_>>().join(" ")
}

/// The words of a question: no repeats, no stop words, at most 16.
pub fn query_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in cut(text) {
        if !STOP.contains(&w.as_str()) && !out.contains(&w) {
            out.push(w);
        }
        if out.len() == MAX_QUERY_WORDS {
            break;
        }
    }
    out
}

/// The words of a question worth matching one at a time (when no article has them
/// all): single characters and digits alone match too much.
pub fn strong_words(words: &[String]) -> Vec<String> {
    words.iter().filter(|w| w.chars().count() >= 2 && !w.chars().all(|c| c.is_ascii_digit())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::{index_text, query_words, strong_words};

    fn indexed(text: &str) -> Vec<String> {
        index_text(text).split(' ').map(str::to_string).collect()
    }

    #[test]
    fn a_two_character_word_asked_alone_is_a_word_of_the_sentence_it_is_in() {
        let doc = indexed("打印机无法打印");
        assert_eq!(query_words("打印"), ["打印"]);
        assert!(doc.contains(&"打印".to_string()), "{doc:?}");
        assert!(doc.contains(&"打印机".to_string()), "{doc:?}");
        let doc = indexed("高血压患者的血压记录");
        for w in query_words("高血压") {
            assert!(doc.contains(&w), "{w} of 高血压 in {doc:?}");
        }
        assert!(doc.contains(&"高血压".to_string()), "{doc:?}");
        assert!(!indexed("打针").contains(&"打印".to_string()), "no false word");
    }

    #[test]
    fn latin_words_are_lowercased_split_at_punctuation_and_not_stemmed() {
        let doc = indexed("The Printer won't print: HIS-5.2 on 10.0.0.1");
        for w in ["printer", "print", "his", "5", "2", "10", "0", "1"] {
            assert!(doc.contains(&w.to_string()), "{w} in {doc:?}");
        }
        assert!(!doc.contains(&"printers".to_string()));
        assert!(doc.iter().all(|w| w.chars().all(char::is_alphanumeric)), "{doc:?}");
        assert_eq!(query_words("the Printer, the printer"), ["printer"], "no stop words, no repeats");
        assert_eq!(query_words("打印机 Printer 卡纸"), ["打印", "印机", "打印机", "printer", "卡纸"]);
    }

    #[test]
    fn a_question_keeps_at_most_sixteen_words_and_single_characters_are_weak() {
        let long = (0..40).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(query_words(&long).len(), 16);
        assert_eq!(query_words("  ,.!?  "), Vec::<String>::new());
        let w = query_words("HIS 登录 慢 2024");
        assert_eq!(strong_words(&w), ["his", "登录"]);
    }
}
