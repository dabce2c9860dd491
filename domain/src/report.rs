//! Reports: one stream per report (`report-<id>`), filed by a user, handled once by an
//! operator, who may act on the reported user or group from it.

use crate::event::{Event, ReportHandled};

/// What an operator did about a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportAction {
    /// Looked at; nothing else done.
    Dismissed,
    /// The reported user was disabled.
    UserDisabled,
    /// The reported user was deleted.
    UserDeleted,
    /// The reported group was locked.
    GroupLocked,
    /// The reported group was dissolved.
    GroupDissolved,
}

impl ReportAction {
    pub const ALL: [Self; 5] = [Self::Dismissed, Self::UserDisabled, Self::UserDeleted, Self::GroupLocked, Self::GroupDissolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dismissed => "dismissed",
            Self::UserDisabled => "user_disabled",
            Self::UserDeleted => "user_deleted",
            Self::GroupLocked => "group_locked",
            Self::GroupDissolved => "group_dissolved",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == raw)
    }

    /// Whether the action applies to a report about this kind of thing (`user`, `group`).
    pub fn fits(self, reported_type: &str) -> bool {
        match self {
            Self::Dismissed => true,
            Self::UserDisabled | Self::UserDeleted => reported_type == "user",
            Self::GroupLocked | Self::GroupDissolved => reported_type == "group",
        }
    }
}

/// The most characters an operator's note on a report may have.
pub const MAX_NOTE_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub id: i64,
    pub reported_type: String,
    pub reported_id: i64,
    pub handled: bool,
}

pub type State = Option<Report>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("no such report")]
    NotFound,
    #[error("the report was already handled")]
    AlreadyHandled,
    #[error("that action does not apply to what was reported")]
    ActionDoesNotFit,
    #[error("the note is too long")]
    NoteTooLong,
}

pub fn evolve(state: State, event: &Event) -> State {
    match (state, event) {
        (None, Event::ReportFiled(e)) => {
            Some(Report { id: e.report_id, reported_type: e.reported_type.clone(), reported_id: e.reported_id, handled: false })
        }
        (Some(mut r), Event::ReportHandled(_)) => {
            r.handled = true;
            Some(r)
        }
        (state, _) => state,
    }
}

/// An operator handles a pending report (once), recording what they did about it.
pub fn handle(state: &State, action: ReportAction, note: &str, at: i64) -> Result<Vec<Event>, ReportError> {
    let report = state.as_ref().ok_or(ReportError::NotFound)?;
    if report.handled {
        return Err(ReportError::AlreadyHandled);
    }
    if !action.fits(&report.reported_type) {
        return Err(ReportError::ActionDoesNotFit);
    }
    let note = note.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ReportError::NoteTooLong);
    }
    Ok(vec![Event::ReportHandled(ReportHandled { report_id: report.id, action: action.as_str().to_owned(), note: note.to_owned(), at })])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserId;
    use crate::event::ReportFiled;

    fn filed(kind: &str) -> State {
        let e = Event::ReportFiled(ReportFiled {
            report_id: 7,
            user_id: UserId(1),
            reported_id: 2,
            reported_type: kind.into(),
            category: "spam".into(),
            content: "ads".into(),
            at: 1,
        });
        evolve(None, &e)
    }

    #[test]
    fn a_report_is_handled_once_with_an_action_that_fits() {
        assert_eq!(handle(&None, ReportAction::Dismissed, "", 2), Err(ReportError::NotFound));
        assert_eq!(handle(&filed("user"), ReportAction::GroupLocked, "", 2), Err(ReportError::ActionDoesNotFit));
        assert_eq!(handle(&filed("group"), ReportAction::UserDeleted, "", 2), Err(ReportError::ActionDoesNotFit));
        assert_eq!(handle(&filed("user"), ReportAction::Dismissed, &"x".repeat(MAX_NOTE_CHARS + 1), 2), Err(ReportError::NoteTooLong));
        let Ok(events) = handle(&filed("user"), ReportAction::UserDisabled, " repeat offender ", 2) else { panic!("handled") };
        assert_eq!(
            events,
            vec![Event::ReportHandled(ReportHandled {
                report_id: 7,
                action: "user_disabled".into(),
                note: "repeat offender".into(),
                at: 2
            })]
        );
        let handled = evolve(filed("user"), &events[0]);
        assert_eq!(handle(&handled, ReportAction::Dismissed, "", 3), Err(ReportError::AlreadyHandled));
    }

    #[test]
    fn actions_round_trip_their_names() {
        for a in ReportAction::ALL {
            assert_eq!(ReportAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(ReportAction::parse("nuke"), None);
    }
}
