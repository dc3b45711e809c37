//! process leases: each process's row, renewed on a timer, and the count of live ones.
