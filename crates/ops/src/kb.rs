//! The IT knowledge base: articles of symptom, cause and solution, each for a CI
//! class or for any, written by the IT team — from scratch, or in one step from a
//! resolved incident (its title and description give the symptom, its resolution the
//! solution, its CI the class) or from a problem (`problem:N`, which the problem
//! records will fill in the same way). Every edit keeps the earlier text as a
//! version; two engineers editing at once cannot overwrite each other. Full-text
//! search in Chinese and English runs over the current versions ([`crate::words`]
//! cuts the text): the desk searches while working a ticket, and any member of the
//! staff reporting a fault is shown matching published articles as they type. An
//! article is improved from a resolved incident too ([`Kb::improvement`]): the new
//! version keeps the incident as its source, so the history says what taught it.
//!
//! Who may: the IT team ([`Capability::OperateIt`], or an API client with the
//! `lianyi:ops` scope) reads everything and writes; signed-in staff read published
//! articles (their titles and solutions help them help themselves). Articles are not
//! health data; every change is audited (`kb-create`, `kb-edit`, `kb-retire`,
//! `kb-publish`).

use lianyi_security::roles::Capability;
use lianyi_security::{ActorKind, Caller};
use lianyi_services::FhirService;
use lianyi_store::StoreError;
use lianyi_store::kb::{Article, KbQuery, Text};

use crate::cmdb::FieldError;
use crate::words;

/// Longest title, in characters.
pub const TITLE_MAX: usize = 200;
/// Longest symptom or cause, in characters.
pub const TEXT_MAX: usize = 4000;
/// Longest solution, in characters.
pub const SOLUTION_MAX: usize = 8000;

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{}", crate::cmdb::joined(.0))]
    Invalid(Vec<FieldError>),
    #[error("no such article")]
    NotFound,
    #[error("the article was changed by someone else meanwhile")]
    Changed,
    #[error("the audit record could not be written: {0}")]
    Audit(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for KbError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { .. } => KbError::Changed,
            other => KbError::Store(other),
        }
    }
}

fn invalid(field: &str, rule: &'static str, detail: impl Into<String>) -> FieldError {
    FieldError { row: None, field: field.into(), rule, detail: detail.into() }
}

/// What an article was written from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A service desk ticket.
    Incident(i64),
    /// A problem record.
    Problem(i64),
}

impl Source {
    /// `incident:12` or `problem:3`.
    pub fn parse(s: &str) -> Option<Source> {
        let (kind, id) = s.trim().split_once(':')?;
        let id: i64 = id.parse().ok().filter(|n| *n > 0)?;
        match kind {
            "incident" => Some(Source::Incident(id)),
            "problem" => Some(Source::Problem(id)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Incident(id) => write!(f, "incident:{id}"),
            Source::Problem(id) => write!(f, "problem:{id}"),
        }
    }
}

/// An article as a form or the API gives it (text, checked by [`Kb::create`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArticleForm {
    pub title: String,
    pub symptom: String,
    pub cause: String,
    pub solution: String,
    /// A CI class code, or empty: any.
    pub ci_class: String,
    /// `incident:N`, `problem:N`, or empty.
    pub source: String,
    /// Why this version (optional).
    pub note: String,
}

/// An article with the text shown and every version's number, time and author.
#[derive(Clone, Debug)]
pub struct Page {
    pub article: Article,
    pub text: Text,
    /// Oldest first.
    pub versions: Vec<Text>,
}

/// One article found.
#[derive(Clone, Debug)]
pub struct Hit {
    pub article: Article,
    /// Its current text.
    pub text: Text,
}

/// What a search found.
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub hits: Vec<Hit>,
    /// No article had every word: these have some of them.
    pub partial: bool,
}

/// Indexes the articles missing from the search (after a copy to another database,
/// which rebuilds the index rather than copying it), a page at a time; returns how
/// many.
pub async fn index_missing(tables: &lianyi_store::kb::Kb) -> Result<usize, StoreError> {
    let mut done = 0;
    loop {
        let page = tables.unindexed(500).await?;
        if page.is_empty() {
            return Ok(done);
        }
        let words: Vec<_> = page.into_iter().map(|(a, t)| (a, Kb::tokens(&t))).collect();
        tables.index_many(&words).await?;
        done += words.len();
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Kb {
    fhir: FhirService,
}

impl Kb {
    pub fn new(fhir: FhirService) -> Kb {
        Kb { fhir }
    }

    fn tables(&self) -> lianyi_store::kb::Kb {
        self.fhir.operations().kb()
    }

    /// The IT team, who write articles and see retired ones.
    pub fn may_write(caller: &Caller) -> bool {
        caller.can(Capability::OperateIt)
    }

    /// The IT team, and signed-in staff (people, not API clients or patients).
    pub fn may_read(caller: &Caller) -> bool {
        Self::may_write(caller) || (caller.kind() == ActorKind::User && caller.access().patient().is_none())
    }

    fn read_check(caller: &Caller) -> Result<(), KbError> {
        if Self::may_read(caller) { Ok(()) } else { Err(KbError::Forbidden("the knowledge base is the staff's")) }
    }

    fn write_check(caller: &Caller) -> Result<(), KbError> {
        if Self::may_write(caller) { Ok(()) } else { Err(KbError::Forbidden("articles are written by the IT team")) }
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), KbError> {
        let mut e = caller.entry(self.fhir.now_ms(), action, "success");
        e.detail = Some(detail);
        self.fhir.audit_log().record(vec![e]).await.map_err(|e| KbError::Audit(e.to_string()))
    }

    /// The form's text, trimmed and checked: every broken rule named.
    fn checked(form: &ArticleForm) -> Result<ArticleForm, KbError> {
        let mut errors = Vec::new();
        let f = ArticleForm {
            title: form.title.trim().to_string(),
            symptom: form.symptom.trim().to_string(),
            cause: form.cause.trim().to_string(),
            solution: form.solution.trim().to_string(),
            ci_class: form.ci_class.trim().to_string(),
            source: form.source.trim().to_string(),
            note: form.note.trim().to_string(),
        };
        let chars = |s: &str| s.chars().count();
        if f.title.is_empty() || chars(&f.title) > TITLE_MAX {
            errors.push(invalid("title", "required", format!("1 to {TITLE_MAX} characters")));
        }
        for (field, text) in [("symptom", &f.symptom), ("cause", &f.cause)] {
            if chars(text) > TEXT_MAX {
                errors.push(invalid(field, "length", format!("at most {TEXT_MAX} characters")));
            }
        }
        if f.solution.is_empty() {
            errors.push(invalid("solution", "required", "what solves it"));
        } else if chars(&f.solution) > SOLUTION_MAX {
            errors.push(invalid("solution", "length", format!("at most {SOLUTION_MAX} characters")));
        }
        if !f.ci_class.is_empty() && crate::cmdb::class(&f.ci_class).is_none() {
            errors.push(invalid("ci_class", "choice", "one of the CI classes"));
        }
        if !f.source.is_empty() && Source::parse(&f.source).is_none() {
            errors.push(invalid("source", "format", "incident:N or problem:N"));
        }
        if chars(&f.note) > 200 {
            errors.push(invalid("note", "length", "at most 200 characters"));
        }
        if errors.is_empty() { Ok(f) } else { Err(KbError::Invalid(errors)) }
    }

    /// The words the store indexes for a text.
    fn tokens(t: &Text) -> String {
        words::index_text(&format!("{}\n{}\n{}\n{}", t.title, t.symptom, t.cause, t.solution))
    }

    /// Indexes the articles missing from the search (after a copy to another
    /// database, which rebuilds the index rather than copying it), a page at a time;
    /// returns how many.
    pub async fn index_missing(&self) -> Result<usize, KbError> {
        Ok(index_missing(&self.tables()).await?)
    }

    /// A new article (published at once); returns its id. A source incident must be
    /// resolved or closed; a problem is taken at its word until problems are kept.
    pub async fn create(&self, caller: &Caller, form: &ArticleForm) -> Result<i64, KbError> {
        Self::write_check(caller)?;
        let f = Self::checked(form)?;
        self.source_check(caller, &f.source).await?;
        let now = self.fhir.now_ms();
        let text = Text {
            version: 1,
            title: f.title.clone(),
            symptom: f.symptom,
            cause: f.cause,
            solution: f.solution,
            ci_class: Some(f.ci_class.clone()).filter(|c| !c.is_empty()),
            author: caller.actor().to_string(),
            at: now,
            note: Some(f.note).filter(|n| !n.is_empty()),
            source: Some(f.source.clone()).filter(|s| !s.is_empty()),
        };
        let article = Article {
            title: f.title,
            ci_class: text.ci_class.clone(),
            source: Some(f.source).filter(|s| !s.is_empty()),
            status: "published".into(),
            author: caller.actor().to_string(),
            created_at: now,
            ..Article::default()
        };
        let id = self.tables().create(&article, &text, &Self::tokens(&text)).await?;
        let from = article.source.map(|s| format!(" from {s}")).unwrap_or_default();
        self.audit(caller, "kb-create", format!("article {id}{from}")).await?;
        Ok(id)
    }

    /// A source incident must be a resolved or closed ticket.
    async fn source_check(&self, caller: &Caller, source: &str) -> Result<(), KbError> {
        if let Some(Source::Incident(id)) = Source::parse(source) {
            self.source_ticket(caller, id).await?;
        }
        Ok(())
    }

    /// [`Kb::resolved_ticket`], a missing ticket named as the source field's fault.
    async fn source_ticket(&self, caller: &Caller, id: i64) -> Result<lianyi_store::desk::Ticket, KbError> {
        self.resolved_ticket(caller, id).await.map_err(|e| match e {
            KbError::NotFound => KbError::Invalid(vec![invalid("source", "unknown", format!("no ticket {id}"))]),
            other => other,
        })
    }

    /// The ticket behind `incident:id`, if it is resolved or closed.
    async fn resolved_ticket(&self, caller: &Caller, id: i64) -> Result<lianyi_store::desk::Ticket, KbError> {
        Self::write_check(caller)?;
        let t = self.fhir.operations().desk().get(id).await?.ok_or(KbError::NotFound)?;
        if !matches!(t.status.as_str(), "resolved" | "closed") {
            return Err(KbError::Invalid(vec![invalid("source", "state", "the ticket is not resolved yet")]));
        }
        Ok(t)
    }

    /// The article a source suggests, for the engineer to complete: from a resolved
    /// incident, its title, its description as the symptom, its resolution as the
    /// solution and its CI's class. A problem gives only its reference for now.
    pub async fn draft(&self, caller: &Caller, source: Source) -> Result<ArticleForm, KbError> {
        Self::write_check(caller)?;
        let mut form = ArticleForm { source: source.to_string(), ..ArticleForm::default() };
        if let Source::Incident(id) = source {
            let t = self.resolved_ticket(caller, id).await?;
            form.title = t.title.clone();
            form.symptom =
                if t.description.trim().is_empty() { t.title } else { format!("{}\n{}", t.title, t.description) };
            form.solution = t.resolution.unwrap_or_default();
            if let Some(ci) = t.ci {
                form.ci_class = self.fhir.operations().cmdb().get(ci).await?.map(|c| c.class).unwrap_or_default();
            }
        }
        Ok(form)
    }

    /// One step: the draft of `source` with the fields `given` fills in laid over it,
    /// stored as a new article.
    pub async fn create_from(&self, caller: &Caller, source: Source, given: &ArticleForm) -> Result<i64, KbError> {
        let mut form = self.draft(caller, source).await?;
        let over = |mine: &mut String, theirs: &str| {
            if !theirs.trim().is_empty() {
                *mine = theirs.to_string();
            }
        };
        over(&mut form.title, &given.title);
        over(&mut form.symptom, &given.symptom);
        over(&mut form.cause, &given.cause);
        over(&mut form.solution, &given.solution);
        over(&mut form.ci_class, &given.ci_class);
        over(&mut form.note, &given.note);
        self.create(caller, &form).await
    }

    /// A new version of an article still at `version`; returns the new text version.
    /// The form's source, if any, is this version's (a resolved incident that taught
    /// it), not the article's.
    pub async fn edit(&self, caller: &Caller, id: i64, version: i64, form: &ArticleForm) -> Result<i64, KbError> {
        Self::write_check(caller)?;
        let f = Self::checked(form)?;
        let a = self.tables().get(id).await?.ok_or(KbError::NotFound)?;
        if a.version != version {
            return Err(KbError::Changed);
        }
        self.source_check(caller, &f.source).await?;
        let source = Some(f.source).filter(|s| !s.is_empty());
        let text = Text {
            version: 0,
            title: f.title,
            symptom: f.symptom,
            cause: f.cause,
            solution: f.solution,
            ci_class: Some(f.ci_class).filter(|c| !c.is_empty()),
            author: caller.actor().to_string(),
            at: self.fhir.now_ms(),
            note: Some(f.note).filter(|n| !n.is_empty()),
            source,
        };
        let latest = self.tables().edit(id, version, &text, &Self::tokens(&text)).await?;
        let from = text.source.map(|s| format!(" from {s}")).unwrap_or_default();
        self.audit(caller, "kb-edit", format!("article {id} version {latest}{from}")).await?;
        Ok(latest)
    }

    /// The next version of article `id` as an incident suggests it, for the engineer
    /// to complete and save with [`Kb::edit`]: the current text with the ticket's
    /// resolution added to the solution and its title and description to the symptom
    /// (each only when the article does not say it already), and the incident as the
    /// version's source. Returns the article's version (for the edit) and the form.
    pub async fn improvement(&self, caller: &Caller, id: i64, ticket: i64) -> Result<(i64, ArticleForm), KbError> {
        Self::write_check(caller)?;
        let p = self.get(caller, id, None).await?;
        let t = self.source_ticket(caller, ticket).await?;
        let mut form = ArticleForm {
            title: p.text.title,
            symptom: p.text.symptom,
            cause: p.text.cause,
            solution: p.text.solution,
            ci_class: p.text.ci_class.unwrap_or_default(),
            source: Source::Incident(ticket).to_string(),
            note: String::new(),
        };
        let add = |text: &mut String, line: &str| {
            let line = line.trim();
            if !line.is_empty() && !text.contains(line) {
                if !text.trim().is_empty() {
                    text.push('\n');
                }
                text.push_str(line);
            }
        };
        add(&mut form.symptom, &t.title);
        add(&mut form.symptom, &t.description);
        add(&mut form.solution, t.resolution.as_deref().unwrap_or_default());
        Ok((p.article.version, form))
    }

    /// Retires an article (no longer found or suggested) or publishes it again.
    pub async fn set_retired(&self, caller: &Caller, id: i64, version: i64, retired: bool) -> Result<(), KbError> {
        Self::write_check(caller)?;
        self.tables().get(id).await?.ok_or(KbError::NotFound)?;
        let (status, action) = if retired { ("retired", "kb-retire") } else { ("published", "kb-publish") };
        self.tables().set_status(id, version, status, self.fhir.now_ms(), caller.actor()).await?;
        self.audit(caller, action, format!("article {id}")).await
    }

    /// An article with its current text, or text version `version`, and its history.
    /// Staff outside the IT team see published articles only.
    pub async fn get(&self, caller: &Caller, id: i64, version: Option<i64>) -> Result<Page, KbError> {
        Self::read_check(caller)?;
        let article = self.tables().get(id).await?.ok_or(KbError::NotFound)?;
        if article.status != "published" && !Self::may_write(caller) {
            return Err(KbError::NotFound);
        }
        let versions = self.tables().texts(id).await?;
        let wanted = version.unwrap_or(article.latest);
        let text = versions.iter().find(|t| t.version == wanted).cloned().ok_or(KbError::NotFound)?;
        Ok(Page { article, text, versions })
    }

    /// The articles written from a ticket or problem, newest first.
    pub async fn written_from(&self, caller: &Caller, source: Source) -> Result<Vec<Article>, KbError> {
        Self::read_check(caller)?;
        let mut list = self.tables().from_source(&source.to_string()).await?;
        if !Self::may_write(caller) {
            list.retain(|a| a.status == "published");
        }
        Ok(list)
    }

    /// Articles matching `q` (every word, else — marked partial — any word of two
    /// or more characters), best first; with no words, the newest. Retired articles
    /// only for the IT team when `retired`.
    pub async fn search(
        &self,
        caller: &Caller,
        q: &str,
        ci_class: Option<&str>,
        retired: bool,
        limit: i64,
    ) -> Result<Found, KbError> {
        Self::read_check(caller)?;
        let words = words::query_words(q);
        if !q.trim().is_empty() && words.is_empty() {
            // Only punctuation or stop words: nothing to look for.
            return Ok(Found::default());
        }
        let mut query = KbQuery {
            words,
            any: false,
            ci_class: ci_class.map(str::trim).filter(|c| !c.is_empty()).map(str::to_string),
            retired: retired && Self::may_write(caller),
            limit: limit.clamp(1, 200),
        };
        let hits = |rows: Vec<(Article, Text)>| rows.into_iter().map(|(article, text)| Hit { article, text }).collect();
        let found = self.tables().find(&query).await?;
        if !found.is_empty() || query.words.len() < 2 {
            return Ok(Found { hits: hits(found), partial: false });
        }
        query.words = words::strong_words(&query.words);
        query.any = true;
        if query.words.is_empty() {
            return Ok(Found::default());
        }
        let found = self.tables().find(&query).await?;
        Ok(Found { partial: !found.is_empty(), hits: hits(found) })
    }

    /// Published articles that match what someone is typing (a fault's title and
    /// details, or a resolution): at most `limit`, none for fewer than two characters.
    pub async fn suggest(&self, caller: &Caller, typed: &str, limit: i64) -> Result<Vec<Hit>, KbError> {
        if typed.trim().chars().count() < 2 {
            Self::read_check(caller)?;
            return Ok(Vec::new());
        }
        Ok(self.search(caller, typed, None, false, limit).await?.hits)
    }
}

#[cfg(test)]
mod tests {
    use super::{ArticleForm, Kb, KbError, Source};

    #[test]
    fn sources_read_and_write_as_kind_and_number() {
        assert_eq!(Source::parse("incident:12"), Some(Source::Incident(12)));
        assert_eq!(Source::parse(" problem:3 "), Some(Source::Problem(3)));
        assert_eq!(Source::parse("incident:0"), None);
        assert_eq!(Source::parse("change:4"), None);
        assert_eq!(Source::parse("incident:x"), None);
        assert_eq!(Source::Problem(7).to_string(), "problem:7");
    }

    #[test]
    fn a_form_names_every_broken_rule() {
        let bad = ArticleForm {
            title: "  ".into(),
            solution: "".into(),
            ci_class: "toaster".into(),
            source: "ticket-9".into(),
            cause: "x".repeat(4001),
            ..Default::default()
        };
        let Err(KbError::Invalid(errors)) = Kb::checked(&bad) else { panic!("accepted") };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["title", "cause", "solution", "ci_class", "source"]);
        let good = ArticleForm {
            title: " 打印机无法打印 ".into(),
            solution: "重启打印服务".into(),
            ci_class: "printer".into(),
            ..Default::default()
        };
        assert_eq!(Kb::checked(&good).map(|f| f.title).ok().as_deref(), Some("打印机无法打印"));
    }
}
