//! chats: create (private pairs de-duplicated), read as a member sees them, list, update, delete; the rules of who may see, send, edit and manage a chat.
