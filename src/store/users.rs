//! users: registration, lookup and search by name prefix or whole email.
