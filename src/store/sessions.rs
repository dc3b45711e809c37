//! login sessions and their refresh tokens: create, rotate, revoke, load the revoked, prune.
