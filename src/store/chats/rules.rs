//! The rules of a chat: who may change, delete, add to, leave, edit and delete in it, as
//! methods of the caller's `ChatAccess`, so that the check before the lock and the same check
//! after it cannot drift apart.

use crate::store::{StoreError, StoreResult};

/// A chat as one of its members sees it, and what that member may do in it. Every rule of
/// who may do what in a chat is a method here, so that a check before the lock and the same
/// check after it cannot drift apart.
#[derive(Debug, Clone)]
pub struct ChatAccess {
    pub chat_id: i64,
    pub caller: i64,
    /// `private` or `group`.
    pub kind: String,
    pub creator_id: i64,
    pub is_active: bool,
}

impl ChatAccess {
    fn is_creator(&self) -> bool {
        self.creator_id == self.caller
    }

    fn is_group(&self) -> bool {
        self.kind == "group"
    }

    /// Changing the title or the active flag: the creator.
    pub fn may_change(&self) -> StoreResult<()> {
        forbid_unless(self.is_creator(), "only the chat's creator may change it")
    }

    /// Deleting the chat: the creator.
    pub fn may_delete(&self) -> StoreResult<()> {
        forbid_unless(self.is_creator(), "only the chat's creator may delete it")
    }

    /// Adding members: the creator of a group.
    pub fn may_add_members(&self) -> StoreResult<()> {
        forbid_unless(self.is_group(), "members can only be added to group chats")?;
        forbid_unless(self.is_creator(), "only the chat's creator may add members")
    }

    /// Removing `user_id`: anyone may leave a group; only its creator removes others. Nobody
    /// leaves a private chat (its creator may delete it).
    pub fn may_remove(&self, user_id: i64) -> StoreResult<()> {
        forbid_unless(
            user_id == self.caller || self.is_creator(),
            "only the chat's creator may remove other members",
        )?;
        forbid_unless(
            self.is_group(),
            "nobody leaves a private chat: its creator may delete it",
        )
    }

    /// Editing a message sent by `sender`: its sender, while the chat is active.
    pub fn may_edit(&self, sender: i64) -> StoreResult<()> {
        forbid_unless(sender == self.caller, "only the sender may edit a message")?;
        if !self.is_active {
            return Err(StoreError::ChatInactive);
        }
        Ok(())
    }

    /// Reacting to a message: any member, while the chat is active (taking a reaction back
    /// needs only membership).
    pub fn may_react(&self) -> StoreResult<()> {
        if !self.is_active {
            return Err(StoreError::ChatInactive);
        }
        Ok(())
    }

    /// Deleting a message sent by `sender`: its sender or the chat's creator.
    pub fn may_delete_message(&self, sender: i64) -> StoreResult<()> {
        forbid_unless(
            sender == self.caller || self.is_creator(),
            "only the sender or the chat's creator may delete a message",
        )
    }
}

fn forbid_unless(allowed: bool, why: &'static str) -> StoreResult<()> {
    if allowed {
        Ok(())
    } else {
        Err(StoreError::Forbidden(why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(kind: &str, creator_id: i64, is_active: bool) -> ChatAccess {
        ChatAccess {
            chat_id: 1,
            caller: 10,
            kind: kind.into(),
            creator_id,
            is_active,
        }
    }

    fn forbidden(r: StoreResult<()>) -> &'static str {
        match r {
            Err(StoreError::Forbidden(why)) => why,
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }

    #[test]
    fn only_the_creator_manages_a_chat() {
        let creator = access("group", 10, true);
        let member = access("group", 11, true);
        assert!(creator.may_change().is_ok() && creator.may_delete().is_ok());
        assert!(creator.may_add_members().is_ok());
        forbidden(member.may_change());
        forbidden(member.may_delete());
        forbidden(member.may_add_members());
        // Private chats take no members, whoever asks.
        let why = forbidden(access("private", 10, true).may_add_members());
        assert!(why.contains("group"), "{why}");
    }

    #[test]
    fn members_leave_groups_and_the_creator_removes_them() {
        let member = access("group", 11, true);
        assert!(member.may_remove(10).is_ok(), "leaving");
        forbidden(member.may_remove(12));
        assert!(access("group", 10, true).may_remove(12).is_ok());
        let why = forbidden(access("private", 10, true).may_remove(10));
        assert!(why.contains("private"), "{why}");
        // A stranger to the role is told about the role first, not the chat's type.
        let why = forbidden(access("private", 11, true).may_remove(12));
        assert!(why.contains("creator"), "{why}");
    }

    #[test]
    fn senders_edit_while_active_and_creators_delete_any_message() {
        let member = access("group", 11, true);
        assert!(member.may_edit(10).is_ok());
        forbidden(member.may_edit(11));
        assert!(matches!(
            access("group", 11, false).may_edit(10),
            Err(StoreError::ChatInactive)
        ));
        // The sender is told they are not the sender before that the chat is inactive.
        forbidden(access("group", 11, false).may_edit(12));
        assert!(member.may_delete_message(10).is_ok());
        forbidden(member.may_delete_message(12));
        assert!(access("group", 10, true).may_delete_message(12).is_ok());
        // Deleting works in an inactive chat too.
        assert!(access("group", 11, false).may_delete_message(10).is_ok());
    }
}
