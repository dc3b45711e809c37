//! messages: the send batch, history pages, edit, delete, read cursors.
