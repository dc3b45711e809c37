//! chat membership: add, remove (with the creator's hand-over), read.
