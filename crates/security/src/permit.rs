//! Permission handles: proof, checked by the type system, that a caller may perform
//! one interaction on one resource type. Only [`Caller::permit`] makes one, after the
//! scope check; the services' operations on health data take a [`Permit`], not a
//! caller, so a read that skipped the check does not compile (lldap's access control
//! by types). Which rows the caller then sees (campuses, a patient's compartment,
//! records opened by break-the-glass) travels with the permit's caller.

use std::marker::PhantomData;

use crate::caller::Caller;
use crate::scope::Perm;

mod sealed {
    pub trait Sealed {}
}

/// One of the interactions a permit is for. Sealed: the five below are all there are.
pub trait Interaction: sealed::Sealed {
    const PERM: Perm;
}

/// Read one resource (or one of its versions).
#[derive(Debug)]
pub struct Read;
/// Search a type.
#[derive(Debug)]
pub struct Search;
/// Create resources of a type.
#[derive(Debug)]
pub struct Create;
/// Update resources of a type.
#[derive(Debug)]
pub struct Update;
/// Delete resources of a type.
#[derive(Debug)]
pub struct Delete;

impl sealed::Sealed for Read {}
impl Interaction for Read {
    const PERM: Perm = Perm::Read;
}
impl sealed::Sealed for Search {}
impl Interaction for Search {
    const PERM: Perm = Perm::Search;
}
impl sealed::Sealed for Create {}
impl Interaction for Create {
    const PERM: Perm = Perm::Create;
}
impl sealed::Sealed for Update {}
impl Interaction for Update {
    const PERM: Perm = Perm::Update;
}
impl sealed::Sealed for Delete {}
impl Interaction for Delete {
    const PERM: Perm = Perm::Delete;
}

/// The caller may perform `I` on [`Permit::resource_type`]. Fields private: made only
/// by [`Caller::permit`].
#[derive(Debug, Clone)]
pub struct Permit<I: Interaction> {
    caller: Caller,
    resource_type: String,
    interaction: PhantomData<I>,
}

impl<I: Interaction> Permit<I> {
    /// Who holds it (for the audit record and the rows they may see).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }
}

/// Why no permit was given; safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

impl Caller {
    /// A permit for `I` on `resource_type`, when the caller is authenticated and its
    /// grants allow it (at some campus: which rows remains the caller's campuses).
    pub fn permit<I: Interaction>(&self, resource_type: &str) -> Result<Permit<I>, Denied> {
        self.may(resource_type, I::PERM)?;
        Ok(Permit { caller: self.clone(), resource_type: resource_type.to_string(), interaction: PhantomData })
    }

    /// The check behind every permit: authenticated, and a grant allows `perm` on
    /// `resource_type`. For services checking many types at once (a bundle).
    pub fn may(&self, resource_type: &str, perm: Perm) -> Result<(), Denied> {
        if !self.is_authenticated() {
            return Err(Denied("authentication is required".into()));
        }
        if !self.access().allows(resource_type, perm) {
            return Err(Denied(format!("your scopes do not allow {} on {resource_type}", perm.name())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SystemTask;

    #[test]
    fn permits_follow_the_grants() {
        let task = Caller::task(SystemTask::Operator("test".into()));
        assert!(task.permit::<Read>("Patient").is_ok());
        let nobody = Caller::anonymous(None);
        assert_eq!(nobody.permit::<Read>("Patient").unwrap_err().0, "authentication is required");
    }
}
